/*
check_backup_age is the Nagios/Icinga check that the last drym backup of this
host succeeded, is recent enough, is complete, and (with --remote) is really
in the destination; with --host it judges a host from the destination alone,
on the monitoring server.

It reads only the status file backup_runner writes (state_dir/backup.json,
/var/lib/drym/backup.json by default) and, with --remote, asks the destination
about the one object recorded there. It needs no root: run it as user nagios,
locally or through NRPE. It never writes anything.

# Usage

	check_backup_age [-w AGE] [-c AGE] [--max-runtime DURATION]
	                 [--shrink-warning PERCENT] [--remote | --remote-verify]
	                 [-t DURATION] [--config FILE] [--state-dir DIR] [-v]
	check_backup_age --host HOST [--monitoring-config FILE]
	                 [-w AGE] [-c AGE] [--shrink-warning PERCENT] [-t DURATION] [-v]

# Flags

	-w, --warning AGE           WARNING when the last successful backup is older (default 26h)
	-c, --critical AGE          CRITICAL when it is older (default 50h)
	    --max-runtime DURATION  WARNING when a backup has been running longer (default 12h)
	    --shrink-warning PCT    WARNING when the backup's data shrank by more than this since
	                            the previous backup; 0 disables (default 50%)
	    --remote                also check the destination: the recorded object exists with
	                            the recorded size, was stored within the recorded run (its
	                            name's time and the server's), and its statement .sha256
	                            names the recorded hash, host and size, signed (.sig) by the
	                            host key. A HEAD and two small GETs however many backups are
	                            stored; uses read_profile from the settings. The object
	                            itself is not read: its sha256 is the statement's word.
	    --remote-verify         --remote, and read the whole object and hash it: proves the
	                            sha256, at the cost of downloading the backup on every check
	                            (raise -t to match)
	    --host HOST             judge HOST from the destination alone, as the monitoring
	                            server does: no state dir, no NRPE (see below)
	    --monitoring-config F   monitoring settings for --host (default
	                            /etc/drym/monitoring.toml, env DRYM_MONITORING_CONFIG)
	-t, --timeout DURATION      give up with UNKNOWN after this long (default 10s, not 0)
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
	WARNING   last backup had warnings: files that changed fix the files; backup_runner status lists them
	          while read (in the backup as read) or that
	          could not be read (not in the backup)
	WARNING   data shrank more than --shrink-warning       check whether sources were deleted or excluded
	WARNING   a backup runs longer than --max-runtime      backup_runner status; look at the process
	WARNING   --remote: the backup is unsigned (a legacy   upgrade drym; run backup_runner backup
	          sidecar), or a legacy run's sidecar missing
	WARNING   the destination ignores If-None-Match and    enable bucket versioning or Object Lock;
	          nothing keeps the bytes it replaces          backup_runner doctor
	WARNING   a probe of the append-only promise could     backup_runner doctor
	          not tell (the error is shown)
	CRITICAL  last success older than -c                   run backup_runner backup; check the timer
	CRITICAL  last backup failed (the error is shown)      fix the cause, run backup_runner backup
	CRITICAL  runner died (status "running", pid gone)     run backup_runner backup; journalctl -u drym-backup
	CRITICAL  not set up (no settings, no state dir)       run backup_runner init
	CRITICAL  no backup yet (no backup.json)               run backup_runner backup
	CRITICAL  --remote: object missing, of another size,   run backup_runner backup; check the bucket;
	          stored outside the recorded run, not a drym  find out who wrote it
	          name; a success recorded without an object;
	          statement missing, not matching, or naming
	          another sha256; signature missing, bad or by
	          another key; --remote-verify: hash differs
	CRITICAL  this host's credentials can delete its       deny s3:DeleteObject and
	          backups (the last backup's probes)           s3:DeleteObjectVersion; backup_runner doctor
	UNKNOWN   bad flag or threshold (also -t 0)            fix the command line (see --help)
	UNKNOWN   status file unreadable, corrupt, or of an    fix permissions for group nagios / run
	          unknown schema                               backup_runner backup / upgrade drym
	UNKNOWN   status file of another host than the         give each settings file its own state_dir
	          settings (both named)
	UNKNOWN   timestamps in the future (clock skew)        fix the clock (NTP)
	UNKNOWN   --remote: destination unreachable or denied, check read_profile credentials / group
	          host public key unreadable                   nagios
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

# From the store: --host

With --host HOST the check runs on the monitoring server and reads no status
file: it lists HOST's folder in the destination of /etc/drym/monitoring.toml
from the start key now − (-c + 24h), takes the newest object whose statement
matches its size and (when a host key is known: pinned in the keys directory,
or the escrowed one) is signed by the host key, ages it by the server's time
cross-checked with its name, and reads its first 8 KiB for the keys it is
encrypted to: 4 requests however many objects are stored, 2 more to compare
them with the escrow's public record. docs/CHECKS.md has the settings file
and what each finding means.

	State     When                                         Fix
	OK        newest backup younger than -w, as above      —
	WARNING   older than -w; much smaller than the one     run backup_runner backup on HOST; its timer
	          before (--shrink-warning)
	WARNING   objects named in the future or replayed      look at them; fix the clock
	CRITICAL  older than -c; never backed up               run backup_runner backup / init on HOST
	CRITICAL  newest object empty, without statement, of   run backup_runner backup on HOST; find out
	          another size than stated, unsigned or signed who wrote it
	          by another key; not an OpenPGP message
	CRITICAL  encrypted to no key in the escrow; no zip    run backup_runner escrow on HOST
	UNKNOWN   destination unreachable, denied, timed out;  check read_profile and the read-only
	          no public record beside the escrow zip;      policy; run backup_runner escrow on HOST
	          too many objects in the window

# Performance data

	age=<s>s;<w>;<c>;0   seconds since the last successful backup finished
	size=<n>B            bytes stored (the encrypted object)
	duration=<s>s        how long that backup took, seconds
	files=<n>            regular files in it
	requests=<n>         (--host) requests made to the store
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
