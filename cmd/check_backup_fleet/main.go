package main

import (
	"context"
	"errors"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
)

// args are check_backup_fleet's flags.
type args struct {
	Warning       plugin.AgeRange `arg:"-w,--warning" default:"26h" placeholder:"AGE" help:"a host is WARNING when its newest backup is older: a duration (26h, 1w2d, seconds) or a Nagios range of them"`
	Critical      plugin.AgeRange `arg:"-c,--critical" default:"50h" placeholder:"AGE" help:"a host is CRITICAL when its newest backup is older (the listing of each host starts at this age plus 24h)"`
	ShrinkWarning plugin.Percent  `arg:"--shrink-warning" default:"50%" placeholder:"PERCENT" help:"a host is WARNING when its newest object is smaller than the one before by more than this (0 disables)"`
	Inventory     string          `arg:"--inventory" placeholder:"FILE" help:"the hosts that must be backed up, one name a line, # comments [default: inventory in the monitoring settings; none: every host in the destination]"`
	EscrowProof   bool            `arg:"--escrow-proof" help:"open each host's escrow zip and prove its key opens the newest backup (where the zips are readable: the office); without it the public records are compared"`
	Concurrency   int             `arg:"--concurrency" default:"16" placeholder:"N" help:"hosts judged at once"`
	Worst         int             `arg:"--worst" default:"5" placeholder:"N" help:"non-OK hosts named on the first line, worst first"`
	Monitoring    string          `arg:"--monitoring-config,env:DRYM_MONITORING_CONFIG" placeholder:"FILE" help:"monitoring settings: destination, escrow, pinned keys, inventory, read_profile [default: /etc/drym/monitoring.toml]"`
	plugin.Base
}

func (args) Description() string {
	return "check_backup_fleet: is every host backed up? One verdict over every host, from the destination alone.\n" +
		"Lists the hosts in the destination, judges each (as check_backup_age --host) with a constant number of\n" +
		"requests, and compares them with the inventory. Runs on the monitoring server with read-only credentials."
}

func (args) Epilogue() string {
	return `States: the worst host's: OK every host backed up recently · WARNING a host older than -w, shrank,
future-named objects, a host in the destination but not in the inventory (unmonitored) · CRITICAL a host older
than -c, never backed up (an inventory host without a backup), unsigned or damaged newest backup, encrypted to
no escrowed key · UNKNOWN a host not reached within -t, destination unreachable or denied, bad settings.
Requests: one listing per 1,000 hosts, then 4 per host (2 more with an escrow location).
Perfdata: hosts hosts_ok hosts_warning hosts_critical hosts_unknown oldest_age=s requests.
Example: check_backup_fleet --inventory /etc/drym/hosts -t 60`
}

// Validate refuses values that cannot work.
func (a *args) Validate() error {
	switch {
	case a.Concurrency < 1 || a.Concurrency > 256:
		return errors.New("--concurrency must be between 1 and 256")
	case a.Worst < 1:
		return errors.New("--worst must be at least 1")
	}
	return nil
}

func main() {
	var a args
	plugin.Check{Name: "check_backup_fleet", Args: &a, Run: func(ctx context.Context) plugin.Result {
		return evaluate(sweep(ctx, &a, time.Now()), a)
	}}.Main()
}
