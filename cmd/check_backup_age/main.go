package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drym-backup/drym/internal/evidence"
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
	Host          string          `arg:"--host" placeholder:"HOST" help:"judge HOST from the destination alone, as the monitoring server does (no state dir, no NRPE): the newest backup by the server's time, its signed statement, the keys it is encrypted to (4 requests, 2 more with an escrow location); reads --monitoring-config"`
	Monitoring    string          `arg:"--monitoring-config,env:DRYM_MONITORING_CONFIG" placeholder:"FILE" help:"monitoring settings for --host: destination, escrow, pinned keys, read_profile [default: /etc/drym/monitoring.toml]"`
	plugin.Common
}

// Validate refuses flag combinations that mean nothing together.
func (a *args) Validate() error {
	if a.Host == "" {
		return nil
	}
	switch {
	case !evidence.ValidHost(a.Host):
		return fmt.Errorf("--host %q is not a host name", a.Host)
	case a.Remote || a.RemoteVerify:
		return errors.New("--host judges the destination itself: --remote and --remote-verify are for a check on the host")
	case a.StateDir != "":
		return errors.New("--host reads no state directory: drop --state-dir")
	}
	return nil
}

func (args) Description() string {
	return "check_backup_age: is the last drym backup of this host recent, complete and (with --remote) really in the destination?\n" +
		"Reads only the status file (state_dir/backup.json); runs as user nagios. With --host, judges a host from the destination alone."
}

func (args) Epilogue() string {
	return `States: OK recent backup · WARNING older than -w, warnings (changed or unreadable files), shrank, running past
--max-runtime, unsigned (--remote), destination replaces objects or its append-only probes could not tell ·
CRITICAL older than -c, failed, runner died, not set up, no backup yet, object missing / of another size or time /
statement or signature missing, bad or foreign (--remote), the host can delete its backups · UNKNOWN bad flags,
unreadable/unknown status file, status file of another host, clock skew, timeout.
--remote proves existence, size, time and the signed statement; --remote-verify also the sha256 (reads it all).
--host HOST: the verdict from the destination alone (monitoring server; 4 requests, 2 more with an escrow).
Perfdata: age=s;w;c;0 size=B duration=s files (--host: age size requests).
Example: check_backup_age -w 26h -c 50h --remote -t 20 · check_backup_age --host web1 -t 30`
}

func main() {
	var a args
	plugin.Check{Name: "check_backup_age", Args: &a, Run: func(ctx context.Context) plugin.Result {
		if a.Host != "" {
			return storage(ctx, &a, time.Now())
		}
		f := gather(ctx, &a)
		return evaluate(f, a, time.Now())
	}}.Main()
}
