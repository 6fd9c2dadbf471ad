package main

import (
	"context"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
)

// args are check_test_restore's flags. The defaults say "a test restore
// within a week": the weekly timer (Sunday 05:00 plus up to an hour) may
// run a day late before WARNING and two before CRITICAL, so it never flaps.
type args struct {
	Warning      plugin.AgeRange `arg:"-w,--warning" default:"8d" placeholder:"AGE" help:"WARNING when the last successful test restore is older: a duration (8d, 1w1d, seconds) or a Nagios range of them"`
	Critical     plugin.AgeRange `arg:"-c,--critical" default:"9d" placeholder:"AGE" help:"CRITICAL when the last successful test restore is older"`
	MaxBackupAge plugin.Duration `arg:"--max-backup-age" default:"2d" placeholder:"DURATION" help:"WARNING when the backup it tested was already older than this when the test ran"`
	MaxRuntime   plugin.Duration `arg:"--max-runtime" default:"12h" placeholder:"DURATION" help:"WARNING when a test restore has been running longer than this"`
	plugin.Common
}

func (args) Description() string {
	return "check_test_restore: did the last drym test restore of this host succeed, recently, on a recent backup?\n" +
		"Reads only the status file (state_dir/test-restore.json); runs as user nagios."
}

func (args) Epilogue() string {
	return `States: OK recent, verified test restore · WARNING older than -w, tested an old backup, verified nothing,
running past --max-runtime, future-dated objects in the destination · CRITICAL older than -c, failed (first
mismatch shown), died, never, not set up · UNKNOWN bad flags, unreadable/unknown status file, status file of
another host, clock skew, a tested backup dated after the test, timeout.
Perfdata: age=s;w;c;0 backup_age=s;;max;0 files size=B duration=s.
Example: check_test_restore -w 8d -c 9d --max-backup-age 2d`
}

func main() {
	var a args
	plugin.Check{Name: "check_test_restore", Args: &a, Run: func(ctx context.Context) plugin.Result {
		f := gather(ctx, &a)
		return evaluate(f, a, time.Now())
	}}.Main()
}
