package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/safefile"
	"github.com/drym-backup/drym/internal/status"
)

// StatusError turns an error from status.Read or status.CheckClock into a
// result. missing is what a missing file means ("no backup yet") and fix the
// command that writes the file ("run backup_runner backup"):
//
//   - status.ErrNotExist → CRITICAL "no backup yet: run backup_runner backup (no …/backup.json)"
//   - unknown schema, corrupt file, future timestamps, unreadable → UNKNOWN,
//     naming the file, the cause and the fix.
func StatusError(err error, missing, fix string) Result {
	msg := err.Error()
	switch {
	case errors.Is(err, status.ErrNotExist):
		path := strings.TrimSuffix(msg, ": "+status.ErrNotExist.Error())
		return Result{State: Critical, Summary: fmt.Sprintf("%s: %s (no %s)", missing, fix, path)}
	case errors.Is(err, status.ErrUnknownSchema):
		return Result{State: Unknown, Summary: msg}
	case errors.Is(err, status.ErrCorrupt):
		return Result{State: Unknown, Summary: fmt.Sprintf("%s: %s to rewrite it", msg, fix)}
	case errors.Is(err, status.ErrFuture):
		return Result{State: Unknown, Summary: fmt.Sprintf("%s; fix the clock (timedatectl status), then %s", msg, fix)}
	case errors.Is(err, safefile.ErrNotRegular):
		return Result{State: Unknown, Summary: fmt.Sprintf("%s: move it away, then %s", msg, fix)}
	case errors.Is(err, fs.ErrPermission):
		return Result{State: Unknown, Summary: fmt.Sprintf("%s (the check runs as user nagios: make the state directory and its files readable by group nagios)", msg)}
	}
	return Result{State: Unknown, Summary: msg}
}

// HostMismatch is UNKNOWN naming both hosts when a status file is of
// another host than the settings: two settings files sharing a state
// directory would make one host's failures read as the other's success.
// ok is false when they agree (or there is no settings file to compare).
func HostMismatch(statusPath, statusHost, settingsPath, settingsHost string) (r Result, bad bool) {
	if settingsHost == "" || statusHost == settingsHost {
		return Result{}, false
	}
	return Result{State: Unknown, Summary: fmt.Sprintf(
		"%s is of host %q but the settings %s are for host %q: do two hosts share this state directory? give each settings file its own state_dir (backup_runner init --state-dir DIR)",
		statusPath, statusHost, settingsPath, settingsHost)}, true
}

// JobStatus is what a check read of its job's status file in the state
// directory: how the reading went (StatusRead: the settings file and host,
// the status file, the errors), the settings it found the directory by, and
// whether a running job's process is alive.
type JobStatus struct {
	StatusRead
	Settings *config.Config // nil without a settings file (--state-dir alone)
	Alive    bool           // the job is running and its pid is alive and is the job
}

// ReadJobStatus finds the state directory (see Settings), reads the status
// file named file into v (a *status.Backup or *status.TestRestore) and, when
// it says the job is running, asks whether its process is alive (the
// difference between a run in progress and a runner that died).
func (c *Common) ReadJobStatus(ctx context.Context, file string, v interface{ Base() *status.Common }) JobStatus {
	var js JobStatus
	cfg, stateDir, err := c.Settings(ctx)
	if err != nil {
		js.SettingsErr = err
		return js
	}
	if cfg != nil {
		js.Settings, js.SettingsPath, js.SettingsHost = cfg, cfg.Path, cfg.Host
	}
	js.Path = filepath.Join(stateDir, file)
	Doing(ctx, "reading %s", js.Path)
	if js.ReadErr = status.Read(js.Path, v); js.ReadErr != nil {
		return js
	}
	if b := v.Base(); b.State == status.Running {
		Doing(ctx, "looking for %s pid %d", b.Job, b.PID)
		js.Alive = status.JobAlive(b.PID, b.Started)
	}
	return js
}
