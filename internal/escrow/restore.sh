#!/bin/sh
# restore.sh: restore a drym backup with stock tools, from this folder alone.
#
#   sh restore.sh [latest|NAME] TARGET_DIR
#
# Needs gpg, zstd, tar and sha256sum (plus aws-cli for an s3:// destination).
# The key is imported into a temporary GNUPGHOME that is removed afterwards;
# your own keyring is only used to decrypt host-key.asc.gpg when the key in
# this folder is encrypted to the team's keys.
#
# Where the backups are comes from drym.toml ([destination] url, endpoint,
# region, read_profile). DRYM_SOURCE overrides the url, e.g. when the backup
# directory is mounted elsewhere on this machine:
#   DRYM_SOURCE=/mnt/backups sh restore.sh latest /srv/restore
set -eu

here=$(cd "$(dirname "$0")" && pwd)
die() { echo "restore.sh: $*" >&2; exit 1; }

case $# in
1) which=latest; target=$1 ;;
2) which=$1; target=$2 ;;
*) echo "usage: sh restore.sh [latest|NAME] TARGET_DIR" >&2; exit 2 ;;
esac

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
cleanup() {
	gpgconf --kill gpg-agent >/dev/null 2>&1 || true
	rm -rf "$tmp"
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

pattern='^[0-9]\{8\}T[0-9]\{6\}Z-[0-9a-f]\{32\}\.tar\.zst\.gpg$'
case $which in
latest) name= ;;
*)
	name=${which##*/}
	case $name in *.tar.zst.gpg) ;; *) name=$name.tar.zst.gpg ;; esac
	;;
esac

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
	if [ -z "$name" ]; then
		awsc s3 ls "$base" >"$tmp/list" || die "cannot list $base (credentials: profile '${profile:-default}')"
		name=$(sed -n 's/^.*[[:space:]]\([^[:space:]]*\)$/\1/p' "$tmp/list" | grep "$pattern" | LC_ALL=C sort | tail -n 1)
		[ -n "$name" ] || die "no backup of $host in $base"
	fi
	echo "restore.sh: downloading $base$name" >&2
	awsc s3 cp --quiet "$base$name" "$tmp/$name" || die "cannot download $base$name"
	obj="$tmp/$name"
	sidecar=
	if awsc s3 cp --quiet "$base$name.sha256" "$tmp/$name.sha256" 2>/dev/null; then sidecar="$tmp/$name.sha256"; fi
	;;
dir://* | file://* | /*)
	dir=${url#dir://}
	dir=${dir#file://}
	dir="$dir/$host"
	[ -d "$dir" ] || die "no backup directory $dir (mount the destination, or set DRYM_SOURCE to where it is)"
	if [ -z "$name" ]; then
		name=$(ls -1 "$dir" | grep "$pattern" | LC_ALL=C sort | tail -n 1)
		[ -n "$name" ] || die "no backup of $host in $dir"
	fi
	obj="$dir/$name"
	[ -f "$obj" ] || die "no backup $obj"
	sidecar=
	if [ -f "$obj.sha256" ]; then sidecar="$obj.sha256"; fi
	;;
*) die "unsupported destination url $url (want dir:///path, /path or s3://bucket/prefix)" ;;
esac

if [ -n "$sidecar" ]; then
	want=$(sed -n '1s/^\([0-9a-fA-F]\{64\}\).*/\1/p' "$sidecar")
	got=$(sha256sum <"$obj" | cut -d' ' -f1)
	[ "$want" = "$got" ] || die "$name: sha256 $got does not match its .sha256 sidecar ($want): the object is damaged; try an older one"
	echo "restore.sh: $name matches its .sha256 sidecar" >&2
else
	echo "restore.sh: warning: no $name.sha256 sidecar; relying on the OpenPGP integrity check alone" >&2
fi

mkdir -p "$target"
echo "restore.sh: restoring $name into $target" >&2
# POSIX sh has no pipefail: each stage records its own exit status.
set +e
{
	gpg --batch --quiet --decrypt "$obj" 2>"$tmp/gpg.log"
	echo $? >"$tmp/gpg.rc"
} | {
	zstd -d -q -c
	echo $? >"$tmp/zstd.rc"
} | tar -x -f - -C "$target"
tarrc=$?
set -e
gpgrc=$(cat "$tmp/gpg.rc")
zstdrc=$(cat "$tmp/zstd.rc")
if [ "$gpgrc" != 0 ]; then
	cat "$tmp/gpg.log" >&2
	die "gpg could not decrypt $name (exit $gpgrc): wrong key, or the object is damaged"
fi
[ "$zstdrc" = 0 ] || die "zstd could not decompress $name (exit $zstdrc): the object is damaged"
[ "$tarrc" = 0 ] || die "tar could not extract $name (exit $tarrc)"
echo "restore.sh: restored $name into $target (the file list with sha256s is $target/.drym/manifest.json)" >&2
