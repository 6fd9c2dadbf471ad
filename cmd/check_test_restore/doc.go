/*
check_test_restore is the Nagios/Icinga check that the last drym test restore
of this host succeeded, recently, on a recent backup: a backup is not done
until a restore was tested.

backup_runner test-restore (weekly, from drym-test-restore.timer) downloads
the latest backup, decrypts and decompresses it, and verifies every file
against the manifest inside; it records the outcome in state_dir/
test-restore.json. This check reads only that file. It needs no root: run it
as user nagios, locally or through NRPE. It never writes anything.

# Usage

	check_test_restore [-w AGE] [-c AGE] [--max-backup-age DURATION]
	                   [--max-runtime DURATION]
	                   [-t DURATION] [--config FILE] [--state-dir DIR] [-v]

# Flags

	-w, --warning AGE              WARNING when the last successful test restore is older (default 8d)
	-c, --critical AGE             CRITICAL when it is older (default 9d)
	    --max-backup-age DURATION  WARNING when the backup it tested was already older than this
	                               when the test ran (default 2d)
	    --max-runtime DURATION     WARNING when a test restore has been running longer (default 12h)
	-t, --timeout DURATION         give up with UNKNOWN after this long (default 10s, not 0)
	    --config FILE              settings file (default /etc/drym/drym.toml, env DRYM_CONFIG)
	    --state-dir DIR            status directory (default: state_dir from the settings);
	                               enough on its own when there is no settings file
	-v, --verbose                  log each step on stderr (stderr is silent otherwise)
	-h, --help                     help (exit 0)
	    --version                  version (exit 0)

AGE and DURATION are Go durations with days and weeks (36h, 8d, 1w1d) or plain
seconds. -w and -c also take Nagios ranges of them. The defaults say "a test
restore within a week": the weekly timer (Sunday 05:00 plus up to an hour of
random delay) may be a day late before WARNING and two days before CRITICAL,
so it never flaps.

# States

	State     When                                          Fix
	OK        last test restore succeeded, younger than -w,  —
	          verified every file of a recent backup
	WARNING   last success older than -w                    run backup_runner test-restore; systemctl status drym-test-restore.timer
	WARNING   the backup it tested was older than           backups are not current: see check_backup_age,
	          --max-backup-age when the test ran            run backup_runner backup, then backup_runner test-restore
	WARNING   verified nothing (no manifest in the backup)  run backup_runner backup, then backup_runner test-restore
	WARNING   the destination holds objects dated in the    look at them (backup_runner list); fix the clock
	          future (future_count): never tested            of the host that made them (timedatectl status)
	WARNING   a test restore runs longer than --max-runtime backup_runner status; look at the process
	CRITICAL  last success older than -c                    run backup_runner test-restore; check the timer
	CRITICAL  last test restore failed (first mismatch or   fix the cause, run backup_runner test-restore
	          the error is shown)
	CRITICAL  died (status "running", pid gone)             run backup_runner test-restore; journalctl -u drym-test-restore
	CRITICAL  never (no test-restore.json, or no success)   run backup_runner test-restore
	CRITICAL  not set up (no settings, no state dir)        run backup_runner init
	UNKNOWN   bad flag or threshold                         fix the command line (see --help)
	UNKNOWN   status file unreadable, corrupt, or of an     fix permissions for group nagios / run
	          unknown schema                                backup_runner test-restore / upgrade drym
	UNKNOWN   timestamps in the future (clock skew)         fix the clock (NTP)
	UNKNOWN   the tested backup is dated more than 5m after look at backup_runner list, fix the clock,
	          the test started: a future-dated object was   run backup_runner test-restore
	          taken as the latest (never clamped to 0)
	UNKNOWN   status file of another host than the settings give each settings file its own state_dir
	UNKNOWN   no answer within -t                           fix the hung mount, or raise -t

While a test restore is running (and its pid alive) the check judges the
previous success. When several things are wrong the worst state wins
(CRITICAL > UNKNOWN > WARNING) and the first line names the worst; the others
follow in the long output.

# Performance data

	age=<s>s;<w>;<c>;0           seconds since the last successful test restore finished
	backup_age=<s>s;;<max>;0     how old the tested backup was when the test started
	files=<n>                    files verified
	size=<n>B                    bytes verified
	duration=<s>s                how long the test restore took
	time=<n>ms                   how long the check took

backup_age, files, size and duration are emitted when the last run succeeded.

# Examples

	check_test_restore
	OK: test restore 2d ago verified 14203 files (1.5 GiB) of backup 20260313T075640Z-… (then 4h old), took 3m20s

	# Nagios command, local:
	define command {
	    command_name check_drym_test_restore
	    command_line /usr/lib/nagios/plugins/check_test_restore -w $ARG1$ -c $ARG2$ --max-backup-age 2d
	}

	# NRPE (nrpe.cfg), fixed arguments:
	command[check_test_restore]=/usr/lib/nagios/plugins/check_test_restore -w 8d -c 9d

# Exit codes

0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for bad flags).
*/
package main
