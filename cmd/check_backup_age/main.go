package main

import (
	"context"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
)

// args are check_backup_age's flags. The check's own flags come first so
// they lead the usage line.
type args struct {
	Warning       plugin.AgeRange `arg:"-w,--warning" default:"26h" placeholder:"AGE" help:"WARNING when the last successful backup is older: a duration (26h, 1w2d, seconds) or a Nagios range of them"`
	Critical      plugin.AgeRange `arg:"-c,--critical" default:"50h" placeholder:"AGE" help:"CRITICAL when the last successful backup is older"`
	MaxRuntime    plugin.Duration `arg:"--max-runtime" default:"12h" placeholder:"DURATION" help:"WARNING when a backup has been running longer than this"`
	ShrinkWarning plugin.Percent  `arg:"--shrink-warning" default:"50%" placeholder:"PERCENT" help:"WARNING when the backup's data shrank by more than this since the previous backup (0 disables)"`
	Remote        bool            `arg:"--remote" help:"also confirm in the destination that the recorded object exists with the recorded size, was stored within the recorded run, and has a statement signed by the host key that names the recorded sha256 (a HEAD and two small GETs; read credentials). The object's content is not read"`
	RemoteVerify  bool            `arg:"--remote-verify" help:"--remote, and read the whole object and hash it: proves the sha256, at the cost of downloading every byte of the backup on each check (raise -t to match)"`
	plugin.Common
}

func (args) Description() string {
	return "check_backup_age: is the last drym backup of this host recent, complete and (with --remote) really in the destination?\n" +
		"Reads only the status file (state_dir/backup.json); runs as user nagios."
}

func (args) Epilogue() string {
	return `States: OK recent backup · WARNING older than -w, warnings, shrank, running past --max-runtime ·
CRITICAL older than -c, failed, runner died, not set up, no backup yet, object missing (--remote) ·
UNKNOWN bad flags, unreadable/unknown status file, clock skew, timeout.
Perfdata: age=s;w;c;0 size=B duration=s files.
Example: check_backup_age -w 26h -c 50h --remote -t 20`
}

func main() {
	var a args
	plugin.Check{Name: "check_backup_age", Args: &a, Run: func(ctx context.Context) plugin.Result {
		f := gather(ctx, &a)
		return evaluate(f, a, time.Now())
	}}.Main()
}
