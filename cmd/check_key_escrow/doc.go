/*
check_key_escrow is the Nagios/Icinga check that the copy of the host key kept
off the host (the escrow zip) is the key this host really encrypts its backups
to, and that the zip is intact.

A zip with the right name is not enough: the check opens the newest escrow zip
of this host in [escrow] url (a directory glob, or an S3 listing with
read_profile), or the one given with --zip, reads every member fully (so every
CRC is checked) with bounds on entry count, sizes and compression ratio (a zip
bomb costs bounded memory and time), never extracts anything to disk, requires
every member, verifies SHA256SUMS, parses the keys, and compares:

	escrowed key == public key file == key of the last successful backup
	             == secret key file (only when readable, i.e. run as root)
	the escrowed secret covers every encryption subkey of the host key, and
	every key ID the last backup was encrypted to (backup.json key_ids, and
	test-restore.json's when it tested that backup; extra recipients aside)

It runs as user nagios: the secret key is optional input, and so is the zip.
In a dir:// drop the zip holds the bare secret key and is 0600: user nagios
cannot read it, and then the check judges the zip by its public record
<zip>.json (0644, shipped beside it), its size in the escrow location and
escrow.json. That proves a zip of the recorded size is there and takes the
keys it holds from the record (the host's word); the OK line says the zip was
not opened. Run it as root to open the zip. It never writes.

With --host HOST it runs where the zips live (the office, or root on the
drop's host) and proves HOST's newest zip against HOST's newest backup in the
destination of /etc/drym/monitoring.toml: every key ID of the backup's
session key packets must be an encryption key of the escrowed key, and a bare
escrowed secret key must really decrypt the session key and the first block of
the encrypted data (a few KiB read, never the whole backup).

# Usage

	check_key_escrow [--zip FILE] [--expiry-warning DURATION] [--expiry-critical DURATION]
	                 [-w AGE] [-c AGE] [--key-owner USER]
	                 [-t DURATION] [--config FILE] [--state-dir DIR] [-v]
	check_key_escrow --host HOST [--monitoring-config FILE] [-t DURATION] [-v]

# Flags

	    --zip FILE                 check this zip instead of the newest in [escrow] url
	    --expiry-warning DURATION  WARNING when the host key expires within this (default 30d)
	    --expiry-critical DURATION CRITICAL when it expires within this (default 7d)
	-w, --warning AGE              WARNING when the zip is older (default: never)
	-c, --critical AGE             CRITICAL when the zip is older (default: never)
	    --key-owner USER           who must own the secret key file (default root)
	    --host HOST                prove HOST's escrow against its newest backup, from the store
	    --monitoring-config FILE   monitoring settings for --host (default /etc/drym/monitoring.toml)
	-t, --timeout DURATION         give up with UNKNOWN after this long (default 10s, not 0)
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
	CRITICAL  the escrow lacks an encryption subkey of the host key, backup_runner escrow
	          or a key ID the last backup was encrypted to
	CRITICAL  (as nagios) the zip's size differs from its record,   backup_runner escrow; find out who
	          or escrow.json's hash from the record's               replaced it
	CRITICAL  the record does not describe the zip beside it       backup_runner escrow
	CRITICAL  --host: the escrowed key cannot open the newest       backup_runner escrow on HOST
	          backup (host key rotated, subkey added)
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
	UNKNOWN   escrow location unreachable or denied (S3)             check [escrow] read_profile credentials
	UNKNOWN   the drop directory not listable by user nagios         let group nagios list it (zips stay 0600)
	UNKNOWN   zip unreadable (as nagios) and no public record        backup_runner escrow, or run as root
	UNKNOWN   status files of another host than the settings         give each settings file its own state_dir
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
