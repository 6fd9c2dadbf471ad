package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

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
