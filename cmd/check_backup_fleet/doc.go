/*
check_backup_fleet is the Nagios/Icinga check that every host of a fleet is
backed up, judged from the destination alone: it needs no agent, no NRPE and
no state directory, only read-only credentials for the bucket (or a readable
directory), so a host that was never set up, lost its NRPE configuration or
is compromised still gets a verdict.

It reads the monitoring settings (/etc/drym/monitoring.toml: the
destination, optionally the escrow location, a directory of pinned host
public keys and an inventory), lists the host folders of the destination
(one request per 1,000 hosts), and judges every host the way
check_backup_age --host does: the newest backup by the server's time,
cross-checked with the time in its name, its signed statement, the keys its
session key is encrypted to. A host costs 4 requests however many objects it
stored (2 more with an escrow location). It never writes anything.

# Usage

	check_backup_fleet [-w AGE] [-c AGE] [--shrink-warning PERCENT]
	                   [--inventory FILE] [--escrow-proof] [--concurrency N]
	                   [--worst N] [--monitoring-config FILE] [-t DURATION] [-v]

# Flags

	-w, --warning AGE             a host is WARNING when its newest backup is older (default 26h)
	-c, --critical AGE            a host is CRITICAL when it is older (default 50h)
	    --shrink-warning PCT      a host is WARNING when its newest object is this much smaller than
	                              the one before (default 50%)
	    --inventory FILE          the hosts that must be backed up, one a line (default: inventory
	                              in the settings; without one every host found is judged)
	    --escrow-proof            open each escrow zip and prove its key opens the newest backup
	                              (where the zips are readable); default: compare the public records
	    --concurrency N           hosts judged at once (default 16)
	    --worst N                 non-OK hosts named on the first line (default 5)
	    --monitoring-config FILE  monitoring settings (default /etc/drym/monitoring.toml,
	                              env DRYM_MONITORING_CONFIG)
	-t, --timeout DURATION        the whole sweep ends within this; hosts not judged by then are
	                              UNKNOWN (default 10s)
	-v, --verbose                 log each step on stderr
	-h, --help / --version        (exit 0)

# States

The check's state is its worst host's; each non-OK host has a line of its
own in the long output, worst first, with its fix.

	State     When (for a host)                                     Fix
	OK        newest backup younger than -w, signed, in its escrow  —
	WARNING   newest backup older than -w                           backup_runner backup on it; its timer
	WARNING   newest object much smaller than the one before        check its sources
	WARNING   objects named in the future, or replayed              look at them; fix the clock
	WARNING   in the destination, not in the inventory (unmonitored) add it to the inventory
	CRITICAL  newest backup older than -c                           backup_runner backup on it; its timer
	CRITICAL  never backed up (an inventory host with no backup)    backup_runner init on it
	CRITICAL  newest object empty, without statement, of another    backup_runner backup on it; find out
	          size than stated, unsigned or signed by another key   who wrote it
	CRITICAL  newest backup encrypted to no key in its escrow,      backup_runner escrow on it
	          or no escrow zip (with an escrow location)
	UNKNOWN   not judged within -t                                  raise -t or --concurrency
	UNKNOWN   destination unreachable or denied, bad settings or    check read_profile and the policy;
	          inventory                                             correct the file

# Performance data

	hosts=<n> hosts_ok=<n> hosts_warning=<n> hosts_critical=<n> hosts_unknown=<n>
	oldest_age=<s>s;<w>;<c>;0   the age of the oldest newest backup of any host
	requests=<n>                requests made to the store
	time=<n>ms                  how long the sweep took

# Examples

	check_backup_fleet --inventory /etc/drym/hosts -t 60
	CRITICAL: 1 CRITICAL (db2), 1 WARNING (lab7), 40 OK of 42 hosts: see each host below; check_backup_age --host HOST judges one

# Exit codes

0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for bad flags).
*/
package main
