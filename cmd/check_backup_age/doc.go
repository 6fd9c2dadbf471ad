/*
check_backup_age is the Nagios/Icinga check that the last drym backup of this
host succeeded, is recent enough, is complete, and (with --remote) is really
in the destination.

It reads only the status file backup_runner writes (state_dir/backup.json,
/var/lib/drym/backup.json by default) and, with --remote, asks the destination
about the one object recorded there. It needs no root: run it as user nagios,
locally or through NRPE. It never writes anything.

# Usage

	check_backup_age [-w AGE] [-c AGE] [--max-runtime DURATION]
	                 [--shrink-warning PERCENT] [--remote]
	                 [-t DURATION] [--config FILE] [--state-dir DIR] [-v]

# Flags

	-w, --warning AGE           WARNING when the last successful backup is older (default 26h)
	-c, --critical AGE          CRITICAL when it is older (default 50h)
	    --max-runtime DURATION  WARNING when a backup has been running longer (default 12h)
	    --shrink-warning PCT    WARNING when the backup's data shrank by more than this since
	                            the previous backup; 0 disables (default 50%)
	    --remote                also check the destination: the recorded object exists with
	                            the recorded size, and its .sha256 sidecar holds the recorded
	                            hash. Two requests (HEAD + a small GET) however many backups
	                            are stored; uses read_profile from the settings.
	-t, --timeout DURATION      give up with UNKNOWN after this long (default 10s)
	    --config FILE           settings file (default /etc/drym/drym.toml, env DRYM_CONFIG)
	    --state-dir DIR         status directory (default: state_dir from the settings);
	                            enough on its own when there is no settings file
	-v, --verbose               log each step on stderr (stderr is silent otherwise)
	-h, --help                  help (exit 0)
	    --version               version (exit 0)

AGE and DURATION are Go durations with days and weeks (90m, 26h, 7d, 1w2d) or
plain seconds (93600). -w and -c also take Nagios ranges of them (10h:26h,
@~:1h, …). The defaults let a daily timer run late by two hours without a
warning, and miss a whole day before going CRITICAL, so it never flaps.

# States

	State     When                                         Fix
	OK        last backup succeeded and is younger than -w  —
	WARNING   last success older than -w                   run backup_runner backup; systemctl status drym-backup.timer
	WARNING   last backup had warnings (unreadable files)  fix the files; backup_runner status lists them
	WARNING   data shrank more than --shrink-warning       check whether sources were deleted or excluded
	WARNING   a backup runs longer than --max-runtime      backup_runner status; look at the process
	WARNING   --remote: .sha256 sidecar missing            run backup_runner backup
	WARNING   the destination ignores If-None-Match and    enable bucket versioning or Object Lock;
	          nothing keeps the bytes it replaces          backup_runner doctor
	WARNING   a probe of the append-only promise could     backup_runner doctor
	          not tell (the error is shown)
	CRITICAL  last success older than -c                   run backup_runner backup; check the timer
	CRITICAL  last backup failed (the error is shown)      fix the cause, run backup_runner backup
	CRITICAL  runner died (status "running", pid gone)     run backup_runner backup; journalctl -u drym-backup
	CRITICAL  not set up (no settings, no state dir)       run backup_runner init
	CRITICAL  no backup yet (no backup.json)               run backup_runner backup
	CRITICAL  --remote: object missing, wrong size or hash run backup_runner backup; check the bucket
	CRITICAL  this host's credentials can delete its       deny s3:DeleteObject and
	          backups (the last backup's probes)           s3:DeleteObjectVersion; backup_runner doctor
	UNKNOWN   bad flag or threshold                        fix the command line (see --help)
	UNKNOWN   status file unreadable, corrupt, or of an    fix permissions for group nagios / run
	          unknown schema                               backup_runner backup / upgrade drym
	UNKNOWN   timestamps in the future (clock skew)        fix the clock (NTP)
	UNKNOWN   --remote: destination unreachable or denied  check read_profile credentials
	UNKNOWN   no answer within -t                          fix the hung mount or store, or raise -t

Every backup to S3 ends with cheap probes of the destination's append-only
promise (backup.json "append_only": a conditional PUT of one fixed probe
object, a DELETE of a name that does not exist, plain and of a version, and
the bucket's versioning and Object Lock settings); the check judges what the
last probes found. A dir:// destination records nothing, and the check says
nothing about it: backup_runner doctor explains what a directory cannot
promise.

While a backup is running (and its pid alive) the check judges the previous
successful backup, so a long run does not flap the service. When several
things are wrong the worst state wins (CRITICAL > UNKNOWN > WARNING) and the
first line names the worst; the others follow in the long output.

# Performance data

	age=<s>s;<w>;<c>;0   seconds since the last successful backup finished
	size=<n>B            bytes stored (the encrypted object)
	duration=<s>s        how long that backup took, seconds
	files=<n>            regular files in it
	time=<n>ms           how long the check took

# Examples

	check_backup_age
	OK: last backup 3h12m ago: 1.2 GiB in 14203 files, took 4m10s, to s3://backups/drym

	# Nagios command, local:
	define command {
	    command_name check_drym_backup_age
	    command_line /usr/lib/nagios/plugins/check_backup_age -w $ARG1$ -c $ARG2$ --remote -t 20
	}

	# NRPE (nrpe.cfg), fixed arguments:
	command[check_backup_age]=/usr/lib/nagios/plugins/check_backup_age -w 26h -c 50h

# Exit codes

0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for bad flags).
*/
package main
