#!/bin/sh
# restore.sh: restore a drym backup with stock tools, from this folder alone.
#
#   sh restore.sh [--allow-unsigned] [latest|NAME] TARGET_DIR
#
# TARGET_DIR must be new or empty: nothing is overwritten, and nothing is
# written there until the backup is proven (see below).
# Needs gpg, zstd, GNU tar (for extended attributes, ACLs and file
# capabilities, which it restores with --xattrs --xattrs-include='*' --acls)
# and sha256sum (plus aws-cli for an s3:// destination).
# The key is imported into a temporary GNUPGHOME that is removed afterwards;
# your own keyring is only used to decrypt host-key.asc.gpg when the key in
# this folder is encrypted to the team's keys.
#
# Nothing is decrypted before it is trusted: the host's statement about the
# backup (NAME.sha256) must carry a good signature by the host key in this
# folder (NAME.sig, checked with gpg --verify), then the object must match it
# (sha256sum -c). Anyone who may write to the destination can store an
# object encrypted to the host's public key; only the host key signs.
# "latest" is the newest backup so signed whose name is dated at most 5
# minutes ahead of this machine's clock. A backup made before drym signed
# its backups has no NAME.sig: name it and add --allow-unsigned to restore
# it anyway.
#
# Where the backups are comes from drym.toml ([destination] url, endpoint,
# region, read_profile). DRYM_SOURCE overrides the url, e.g. when the backup
# directory is mounted elsewhere on this machine:
#   DRYM_SOURCE=/mnt/backups sh restore.sh latest /srv/restore
set -eu

here=$(cd "$(dirname "$0")" && pwd)
die() { echo "restore.sh: $*" >&2; exit 1; }

allow_unsigned=
if [ "${1:-}" = --allow-unsigned ]; then
	allow_unsigned=1
	shift
fi
case $# in
1) which=latest; target=$1 ;;
2) which=$1; target=$2 ;;
*) echo "usage: sh restore.sh [--allow-unsigned] [latest|NAME] TARGET_DIR" >&2; exit 2 ;;
esac
if [ -n "$allow_unsigned" ] && [ "$which" = latest ]; then
	echo "restore.sh: --allow-unsigned needs a backup NAME: latest is always a signed backup" >&2
	exit 2
fi

for tool in gpg zstd tar sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: apt-get install gnupg zstd tar coreutils)"
done
[ -f "$here/drym.toml" ] || die "no drym.toml beside restore.sh: run it from the unzipped escrow folder"

# The folder must be intact before its key and settings are trusted.
(cd "$here" && sha256sum -c --quiet SHA256SUMS) || die "SHA256SUMS does not match: this escrow folder is damaged or altered; use another copy"

# toml KEY [TABLE]: a value from drym.toml as drym writes it ("key = value",
# tables in [brackets]); quotes are removed.
toml() {
	want=${2:-}
	cur=
	while IFS= read -r line || [ -n "$line" ]; do
		line=$(printf '%s' "$line" | sed 's/^[[:space:]]*//')
		case $line in
		'#'*) continue ;;
		'['*) cur=${line#\[}; cur=${cur%%\]*}; continue ;;
		esac
		[ "$cur" = "$want" ] || continue
		case $line in
		"$1 "=* | "$1"=*)
			printf '%s\n' "${line#*=}" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/'
			return 0
			;;
		esac
	done <"$here/drym.toml"
}

host=$(toml host)
url=${DRYM_SOURCE:-$(toml url destination)}
endpoint=$(toml endpoint destination)
region=$(toml region destination)
profile=$(toml read_profile destination)
[ -n "$host" ] || die "no host in drym.toml"
[ -n "$url" ] || die "no [destination] url in drym.toml (set DRYM_SOURCE)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/drym-restore.XXXXXX")
user_gnupghome=${GNUPGHOME:-}
GNUPGHOME="$tmp/gnupg"
export GNUPGHOME
mkdir -m 700 "$GNUPGHOME"
staging=
cleanup() {
	gpgconf --kill gpg-agent >/dev/null 2>&1 || true
	rm -rf "$tmp"
	if [ -n "$staging" ]; then rm -rf "$staging"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

key="$here/host-key.asc"
if [ ! -f "$key" ] && [ -f "$here/host-key.asc.gpg" ]; then
	echo "restore.sh: the host key is encrypted to the team's keys: decrypting it with your own key" >&2
	if [ -n "$user_gnupghome" ]; then
		GNUPGHOME=$user_gnupghome gpg --quiet --output "$tmp/host-key.asc" --decrypt "$here/host-key.asc.gpg" ||
			die "cannot decrypt host-key.asc.gpg: you need the secret key of one of the team keys it is encrypted to"
	else
		(unset GNUPGHOME && gpg --quiet --output "$tmp/host-key.asc" --decrypt "$here/host-key.asc.gpg") ||
			die "cannot decrypt host-key.asc.gpg: you need the secret key of one of the team keys it is encrypted to"
	fi
	key="$tmp/host-key.asc"
fi
[ -f "$key" ] || die "no host-key.asc in $here"
gpg --batch --quiet --import "$key" 2>"$tmp/import.log" || { cat "$tmp/import.log" >&2; die "cannot import $key"; }
# The host key's fingerprint: a signature counts only when it is by this key.
fpr=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | sed -n 's/^fpr:::::::::\([0-9A-F]*\):$/\1/p' | head -n 1)
[ -n "$fpr" ] || die "no secret key in $key"

pattern='^[0-9]\{8\}T[0-9]\{6\}Z-[0-9a-f]\{32\}\.tar\.zst\.gpg$'
case $which in
latest) name= ;;
*)
	name=${which##*/}
	case $name in *.tar.zst.gpg) ;; *) name=$name.tar.zst.gpg ;; esac
	;;
esac

mkdir -m 700 "$tmp/m"
case $url in
s3://*)
	command -v aws >/dev/null 2>&1 || die "aws-cli is not installed (apt-get install awscli): the backups are in $url"
	rest=${url#s3://}
	bucket=${rest%%/*}
	prefix=${rest#"$bucket"}
	prefix=${prefix#/}
	prefix=${prefix%/}
	base="s3://$bucket/${prefix:+$prefix/}$host/"
	awsc() {
		if [ -n "$endpoint" ]; then set -- --endpoint-url "$endpoint" "$@"; fi
		if [ -n "$region" ]; then set -- --region "$region" "$@"; fi
		if [ -n "$profile" ]; then set -- --profile "$profile" "$@"; fi
		aws "$@"
	}
	list() { awsc s3 ls "$base" >"$tmp/list" || die "cannot list $base (credentials: profile '${profile:-default}')"; sed -n 's/^.*[[:space:]]\([^[:space:]]*\)$/\1/p' "$tmp/list"; }
	# fetch NAME: copy a small object beside the backup into $tmp/m; 1 if absent.
	fetch() { awsc s3 cp --quiet "$base$1" "$tmp/m/$1" >/dev/null 2>&1; }
	where=$base
	;;
dir://* | file://* | /*)
	dir=${url#dir://}
	dir=${dir#file://}
	dir="$dir/$host"
	[ -d "$dir" ] || die "no backup directory $dir (mount the destination, or set DRYM_SOURCE to where it is)"
	list() { ls -1 "$dir"; }
	fetch() { [ -f "$dir/$1" ] && cp "$dir/$1" "$tmp/m/$1"; }
	where=$dir/
	;;
*) die "unsupported destination url $url (want dir:///path, /path or s3://bucket/prefix)" ;;
esac

# check NAME: judge the backup's statement and signature (two small reads).
# Returns 0 when NAME.sha256 is signed by the host key, is about NAME and
# host $host, and holds one checksum line; 1 for an unsigned backup (a
# one-line sidecar or none, and no NAME.sig); 2 for anything else. $why
# says what is wrong.
check() {
	n=$1
	why=
	rm -f "$tmp/m/$n.sha256" "$tmp/m/$n.sig"
	hs=
	hg=
	if fetch "$n.sha256"; then hs=1; fi
	if fetch "$n.sig"; then hg=1; fi
	if [ -z "$hs" ]; then
		if [ -n "$hg" ]; then
			why="$n.sig exists but the statement $n.sha256 does not: do not restore it (not made by this host, or altered)"
			return 2
		fi
		why="$n is not signed (no $n.sha256, no $n.sig): made before drym signed its backups, or planted"
		return 1
	fi
	if [ "$(head -n 1 "$tmp/m/$n.sha256")" != "# drym backup statement 1" ]; then
		if [ -n "$hg" ]; then
			why="$n.sha256 is not a drym statement, yet $n.sig exists: do not restore it (not made by this host, or altered)"
			return 2
		fi
		why="$n is not signed (a one-line $n.sha256, no $n.sig): made before drym signed its backups, or planted"
		return 1
	fi
	if [ -z "$hg" ]; then
		why="$n.sig is missing: the statement about $n is not signed (a backup cut short, or planted); use another backup"
		return 2
	fi
	# Stock gpg: exit 0 and a VALIDSIG by the host key, nothing else.
	if ! gpg --batch --status-fd 1 --verify "$tmp/m/$n.sig" "$tmp/m/$n.sha256" >"$tmp/verify.out" 2>"$tmp/verify.log"; then
		if grep -q '^\[GNUPG:\] ERRSIG' "$tmp/verify.out"; then
			# The signer's fingerprint (gpg ≥ 2.2.7 adds it), else its key ID.
			by=$(sed -n -e 's/^\[GNUPG:\] ERRSIG .* \([0-9A-F]\{40\}\)$/\1/p' -e 's/^\[GNUPG:\] ERRSIG \([0-9A-F]\{16\}\) [^ ]* [^ ]* [^ ]* [^ ]* [^ ]*$/\1/p' "$tmp/verify.out" | head -n 1)
			why="$n.sig is signed by key ${by:-?}, not by the host key $fpr: do not restore it (not made by this host; find out who wrote it). If it predates a key rotation, use the escrow zip of that key"
		else
			why="$n.sig does not verify $n.sha256 (bad signature): do not restore it (not made by this host, or altered)"
		fi
		return 2
	fi
	signer=$(sed -n 's/^\[GNUPG:\] VALIDSIG .* \([0-9A-F]\{40\}\)$/\1/p' "$tmp/verify.out" | head -n 1)
	if [ "$signer" != "$fpr" ] || grep -q '^\[GNUPG:\] \(BADSIG\|ERRSIG\|EXPKEYSIG\|REVKEYSIG\)' "$tmp/verify.out"; then
		why="$n.sig: no good signature by the host key $fpr: do not restore it"
		return 2
	fi
	sums=$(grep -v '^#' "$tmp/m/$n.sha256" | grep -c . || true)
	line=$(grep -v '^#' "$tmp/m/$n.sha256" | grep . || true)
	if [ "$sums" != 1 ] || [ "${line#*  }" != "$n" ]; then
		why="$n.sha256 (signed by the host key) is about another object: do not restore $n (a statement copied beside a planted object)"
		return 2
	fi
	if ! grep -qxF "# host $host" "$tmp/m/$n.sha256"; then
		why="$n.sha256 (signed by the host key) is for another host than $host: do not restore $n"
		return 2
	fi
	return 0
}

pattern='^[0-9]\{8\}T[0-9]\{6\}Z-[0-9a-f]\{32\}\.tar\.zst\.gpg$'
unsigned=
case $which in
latest)
	# Newest first; names dated more than 5 minutes ahead of this
	# machine's clock are never latest (a clock that ran ahead, or planted).
	cutoff=$(date -u -d "@$(($(date -u +%s) + 300))" +%Y%m%dT%H%M%SZ) || die "date cannot compute the time 5 minutes from now (GNU date needed)"
	list >"$tmp/all"
	grep "$pattern" "$tmp/all" | LC_ALL=C sort -r >"$tmp/names" || true
	[ -s "$tmp/names" ] || die "no backup of $host in $where"
	name=
	tried=0
	while IFS= read -r n; do
		t=${n%%-*}
		if [ "$t" != "$cutoff" ] && [ "$(printf '%s\n%s\n' "$t" "$cutoff" | LC_ALL=C sort | tail -n 1)" = "$t" ]; then
			echo "restore.sh: skipping $n: dated in the future (after $cutoff; clock ahead, or planted)" >&2
			continue
		fi
		if [ "$tried" -ge 20 ]; then
			die "none of the newest 20 backups in $where is signed by the host key: name an older one (sh restore.sh NAME TARGET_DIR)"
		fi
		tried=$((tried + 1))
		if check "$n"; then
			name=$n
			break
		fi
		echo "restore.sh: skipping $why" >&2
	done <"$tmp/names"
	[ -n "$name" ] || die "no backup of $host in $where is signed by the host key $fpr (an unsigned one made before drym signed its backups: sh restore.sh --allow-unsigned NAME TARGET_DIR)"
	;;
*)
	name=${which##*/}
	case $name in *.tar.zst.gpg) ;; *) name=$name.tar.zst.gpg ;; esac
	echo "$name" | grep -q "$pattern" || die "$which is not a backup name (<UTC time>-<32 hex>.tar.zst.gpg)"
	list >"$tmp/all"
	grep -qxF "$name" "$tmp/all" || die "no backup $name in $where"
	set +e
	check "$name"
	rc=$?
	set -e
	case $rc in
	0) ;;
	1)
		[ -n "$allow_unsigned" ] || die "$why; to restore it anyway: sh restore.sh --allow-unsigned $name TARGET_DIR"
		unsigned=1
		echo "restore.sh: WARNING: $name is UNSIGNED: nothing proves this host made it; restoring it because --allow-unsigned says so" >&2
		;;
	*) die "$why" ;;
	esac
	;;
esac
if [ -z "$unsigned" ]; then
	echo "restore.sh: $name.sha256 has a good signature by the host key $fpr" >&2
fi

# Verify before write: the object streams once through sha256sum and
# gpg | zstd | tar into a private staging directory inside TARGET_DIR, and
# only when the object's SHA-256 equals the signed statement's and gpg's
# integrity check passed are the entries moved into place. A damaged or
# altered object leaves nothing in TARGET_DIR. Streaming also means the
# bytes decrypted are the bytes hashed (no second read of a file someone
# could swap), and nothing is downloaded to a temporary copy first.
if [ -e "$target" ] && [ -n "$(ls -A "$target" 2>/dev/null)" ]; then
	die "$target is not empty: restore.sh restores into a new or empty directory only (it never overwrites)"
fi
mkdir -p "$target"
staging=$(mktemp -d "$target/.drym-unverified.XXXXXX") || die "cannot create a staging directory in $target"
want=
if [ -f "$tmp/m/$name.sha256" ]; then
	want=$(grep -v '^#' "$tmp/m/$name.sha256" | grep . | cut -c1-64 | tr 'A-F' 'a-f')
else
	echo "restore.sh: warning: no $name.sha256; relying on the OpenPGP integrity check alone" >&2
fi
case $url in
s3://*)
	echo "restore.sh: restoring $base$name into $target" >&2
	object() { awsc s3 cp --quiet "$base$name" -; }
	;;
*)
	[ -f "$dir/$name" ] || die "no backup $dir/$name"
	echo "restore.sh: restoring $dir/$name into $target" >&2
	object() { cat "$dir/$name"; }
	;;
esac
mkfifo "$tmp/hash.fifo"
sha256sum <"$tmp/hash.fifo" >"$tmp/objsum" &
hasher=$!
# POSIX sh has no pipefail: each stage records its own exit status.
set +e
{
	object
	echo $? >"$tmp/get.rc"
} | tee "$tmp/hash.fifo" | {
	gpg --batch --quiet --decrypt 2>"$tmp/gpg.log"
	echo $? >"$tmp/gpg.rc"
} | {
	zstd -d -q -c
	echo $? >"$tmp/zstd.rc"
} | tar --xattrs --xattrs-include='*' --acls -x -p -f - -C "$staging"
tarrc=$?
wait "$hasher"
set -e
discard() { rm -rf "$staging"; die "$@"; }
getrc=$(cat "$tmp/get.rc")
gpgrc=$(cat "$tmp/gpg.rc")
zstdrc=$(cat "$tmp/zstd.rc")
got=$(cut -c1-64 "$tmp/objsum")
[ "$getrc" = 0 ] || discard "cannot read $name from $where (exit $getrc): nothing was restored"
if [ -n "$want" ] && [ "$got" != "$want" ]; then
	discard "$name does not match its signed statement (sha256 $got, the statement says $want): the object was replaced or damaged; nothing was restored; try an older one"
fi
if [ "$gpgrc" != 0 ]; then
	cat "$tmp/gpg.log" >&2
	discard "gpg could not decrypt $name (exit $gpgrc): wrong key, or the object is damaged; nothing was restored"
fi
[ "$zstdrc" = 0 ] || discard "zstd could not decompress $name (exit $zstdrc): the object is damaged; nothing was restored"
[ "$tarrc" = 0 ] || discard "tar could not extract $name (exit $tarrc); nothing was restored"
[ -z "$want" ] || echo "restore.sh: $name matches its signed statement (sha256)" >&2
# Proven: move the entries into place.
find "$staging" -mindepth 1 -maxdepth 1 -exec mv -- {} "$target"/ \; || die "cannot move the restored files from $staging into $target"
rmdir "$staging"
staging=
echo "restore.sh: restored $name into $target (the file list with sha256s is $target/.drym/manifest.json)" >&2
