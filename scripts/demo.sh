#!/usr/bin/env bash
# make demo: the whole drym cycle on the embedded default (a local directory
# destination), in temp dirs, without root or network: init (host key,
# settings, escrow zip), backup, test restore, then the three Nagios checks.
set -euo pipefail
BIN=${1:-bin}
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/drym-demo.XXXXXX")
chmod 755 "$DEMO" # as on a real host, user nagios may look at what the runner wrote
export DRYM_CONFIG="$DEMO/etc/drym.toml"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

# A small server-like tree: configs, a log, a private key file, a symlink.
SRC="$DEMO/srv"
chmod 755 "$DEMO"  # the checks may run as another user (nagios) in a real setup
mkdir -p "$SRC/etc/nginx/sites-enabled" "$SRC/var/log" "$SRC/home/ops/.ssh"
printf 'server { listen 80; root /var/www; }\n' > "$SRC/etc/nginx/nginx.conf"
ln -s ../nginx.conf "$SRC/etc/nginx/sites-enabled/default"
for i in $(seq 1 2000); do echo "$(date -u +%FT%TZ) GET /item/$i 200"; done > "$SRC/var/log/access.log"
printf 'not really a key\n' > "$SRC/home/ops/.ssh/id_ed25519" && chmod 600 "$SRC/home/ops/.ssh/id_ed25519"
printf 'caf\xc3\xa9\n' > "$SRC/etc/menü.txt"

run "$BIN/backup_runner" init --source "$SRC" --dest "dir://$DEMO/backups" \
  --escrow "dir://$DEMO/escrow" --state-dir "$DEMO/state" --key-file "$DEMO/etc/host-key.asc" --host demo-host
run "$BIN/backup_runner" backup
run "$BIN/backup_runner" test-restore
run "$BIN/backup_runner" list
run "$BIN/backup_runner" status

# The checks read what the runner wrote; their exit codes are Nagios states.
check() { say "$*"; set +e; "$@"; echo "(exit $?)"; set -e; }
check "$BIN/check_backup_age" --config "$DRYM_CONFIG"
check "$BIN/check_test_restore" --config "$DRYM_CONFIG"
check "$BIN/check_key_escrow" --config "$DRYM_CONFIG"

say "ls -R $DEMO/backups $DEMO/escrow"
ls -lR "$DEMO/backups" "$DEMO/escrow"
printf '\nEverything is in %s (settings: %s). Remove it with: rm -rf %s\n' "$DEMO" "$DRYM_CONFIG" "$DEMO"
