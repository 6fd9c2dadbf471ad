/*
check_key_escrow is the Nagios/Icinga check that the copy of the host key kept
off the host (the escrow zip) is the key this host really encrypts its backups
to, and that the zip is intact.

A zip with the right name is not enough: the check opens the newest escrow zip
of this host in [escrow] url (a directory glob, or an S3 listing with
read_profile), or the one given with --zip, reads every member fully (so every
CRC is checked) with bounds on entry count, sizes and compression ratio (a zip
bomb costs bounded memory and time), never extracts anything to disk, requires
every member, verifies SHA256SUMS, parses the keys, and compares fingerprints:

	escrowed key == public key file == key of the last successful backup
	             == secret key file (only when readable, i.e. run as root)

It runs as user nagios: the secret key is optional input. It never writes.

# Usage

	check_key_escrow [--zip FILE] [--expiry-warning DURATION] [--expiry-critical DURATION]
	                 [-w AGE] [-c AGE] [--key-owner USER]
	                 [-t DURATION] [--config FILE] [--state-dir DIR] [-v]

# Flags

	    --zip FILE                 check this zip instead of the newest in [escrow] url
	    --expiry-warning DURATION  WARNING when the host key expires within this (default 30d)
	    --expiry-critical DURATION CRITICAL when it expires within this (default 7d)
	-w, --warning AGE              WARNING when the zip is older (default: never)
	-c, --critical AGE             CRITICAL when the zip is older (default: never)
	    --key-owner USER           who must own the secret key file (default root)
	-t, --timeout DURATION         give up with UNKNOWN after this long (default 10s)
	    --config FILE              settings file (default /etc/drym/drym.toml, env DRYM_CONFIG)
	    --state-dir DIR            status directory (default: state_dir from the settings)
	-v, --verbose                  log each step on stderr
	-h, --help / --version         (exit 0)

# States

	State     When                                                   Fix
	OK        the zip is intact and holds the host key               —
	WARNING   escrow is stale: escrowed drym.toml differs from the   backup_runner escrow
	          current settings
	WARNING   the key expires within --expiry-warning                backup_runner init --rotate-key; backup_runner escrow
	WARNING   secret key file mode wider than 0600                   chmod 600 /etc/drym/host-key.asc
	WARNING   secret key file not owned by --key-owner               chown root /etc/drym/host-key.asc
	WARNING   the last backup_runner escrow failed                   fix the cause; backup_runner escrow
	CRITICAL  escrowed key ≠ host key / last backup's key / secret   backup_runner escrow (both fingerprints shown)
	CRITICAL  the zip is of another host                             backup_runner escrow
	CRITICAL  the zip is unusable: truncated, not a zip, CRC error,  backup_runner escrow
	          zip bomb, unsafe names, SHA256SUMS mismatch, missing
	          members, unparsable key or settings
	CRITICAL  no zip for this host; --zip file missing               backup_runner escrow
	CRITICAL  no [escrow] url configured                             add it to drym.toml; backup_runner escrow
	CRITICAL  not set up; public or secret key file missing          backup_runner init
	CRITICAL  the key expires within --expiry-critical, or expired   backup_runner init --rotate-key; backup_runner escrow
	CRITICAL  encrypted secret member not addressed to a team key    backup_runner escrow
	UNKNOWN   bad flags; unreadable settings, public key or status   fix the command line / permissions
	UNKNOWN   escrow location unreachable or denied                  check [escrow] read_profile credentials
	UNKNOWN   no answer within -t                                    fix the hung mount or store, or raise -t

The worst state wins (CRITICAL > UNKNOWN > WARNING); the first line names it,
the others follow in the long output with the full fingerprints.

# Performance data

	zip_age=<s>s;<w>;<c>;0      seconds since the zip was shipped (file or object time)
	key_expiry=<s>s;<w>:;<c>:   seconds until the host key expires (only when it does)
	time=<n>ms                  how long the check took

# Examples

	check_key_escrow
	OK: escrow zip drym-escrow-web1-3F2A…-20260301.zip (9d old, in s3://escrow/drym) holds host key 3F2A…, the same as the public key file, the last backup's key; key never expires

	# NRPE (nrpe.cfg):
	command[check_key_escrow]=/usr/lib/nagios/plugins/check_key_escrow -t 20

# Exit codes

0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for bad flags).
*/
package main
