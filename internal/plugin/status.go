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
