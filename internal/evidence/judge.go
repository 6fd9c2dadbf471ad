package evidence

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

// Limits are the thresholds of the storage-side verdict.
type Limits struct {
	Warning, Critical plugin.AgeRange
	// Shrink: WARNING when the newest object is smaller than the one
	// before by more than this percentage (0 disables).
	Shrink plugin.Percent
}

func fixBackup(host string) string { return "run backup_runner backup on " + host }
func fixEscrow(host string) string { return "run backup_runner escrow on " + host }

// JudgeBackup weighs one host's evidence (pure: no I/O, no clock): the
// newest backup's age from the server's time, its statement and
// signature, the keys it is encrypted to against the escrow, and what else
// the listing found. It returns the age of the newest backup (-1: none).
func JudgeBackup(r *plugin.Result, h *Host, lim Limits) time.Duration {
	if !judgeReach(r, h) {
		return -1
	}
	judgeListing(r, h)
	judgeRefused(r, h)
	if h.Newest == nil {
		return judgeNone(r, h)
	}
	n := h.Newest
	age := max(h.Now.Sub(n.ModTime), 0)
	for _, t := range []struct {
		s    plugin.State
		rng  plugin.AgeRange
		flag string
	}{{plugin.Critical, lim.Critical, "-c"}, {plugin.Warning, lim.Warning, "-w"}} {
		if t.rng.AlertAge(age) {
			r.Raise(t.s, fmt.Sprintf("the last backup of %s was stored %s ago, %s (%s): %s and check its timer (systemctl status drym-backup.timer)",
				h.Host, plugin.Ago(h.Now, n.ModTime), t.rng.Describe(), t.flag, fixBackup(h.Host)))
			break
		}
	}
	r.Addf("newest backup: %s/%s, %s, named %s, stored %s", h.Host, n.Name, units.Bytes(n.Size), plugin.Stamp(n.Made), plugin.Stamp(n.ModTime))
	JudgeStatement(r, n.Statement, StatementWording{Name: h.Host + "/" + n.Name, Where: h.Where, Fix: fixBackup(h.Host),
		Unsigned: unsignedState(h), MissingState: plugin.Critical})
	if judgeHead(r, h) && h.Escrow != nil {
		judgeEscrowKeys(r, h)
	}
	judgeShrink(r, h, lim.Shrink)
	if r.State == plugin.OK {
		r.Summary = fmt.Sprintf("%s: last backup %s ago, %s, %s%s", h.Host, plugin.Ago(h.Now, n.ModTime), units.Bytes(n.Size), signedBy(h), escrowed(h))
	}
	r.Perfdata = append(r.Perfdata, plugin.Seconds("age", age.Seconds(), lim.Warning.Range, lim.Critical.Range), plugin.Bytes("size", n.Size))
	return age
}

// judgeReach raises what kept the host's evidence from being read at
// all; false when there is nothing more to judge.
func judgeReach(r *plugin.Result, h *Host) bool {
	switch {
	case h.KeysErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read the pinned key of %s: %v (the check runs as user nagios: make the keys directory readable by group nagios)", h.Host, h.KeysErr))
		return false
	case h.ListErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot list the backups of %s in %s: %v (%s)", h.Host, h.Where, h.ListErr, accessHint(h.Where, h.ListErr)))
		return false
	}
	return true
}

// accessHint is the fix for a store that could not be read: permissions
// for a directory, credentials and the policy for S3.
func accessHint(where string, err error) string {
	s3 := strings.HasPrefix(where, "s3://")
	switch {
	case s3 && store.IsDenied(err):
		return "check read_profile in the monitoring settings and that the read-only policy allows s3:ListBucket and s3:GetObject there"
	case s3:
		return "is the endpoint reachable? check endpoint and read_profile in the monitoring settings"
	case errors.Is(err, fs.ErrPermission):
		return "the check runs as user nagios: make the directory readable by group nagios"
	}
	return "is it mounted?"
}

// judgeListing raises objects that are not taken as the newest backup:
// named in the future, replayed, or too many to list within the bounds.
func judgeListing(r *plugin.Result, h *Host) {
	l := h.Listing
	if l.FutureCount > 0 {
		r.Raise(plugin.Warning, fmt.Sprintf("%d object(s) in %s/%s are named in the future or after they were stored (first: %s): planted, or a host clock ahead; never taken as the newest backup: look at them with backup_runner list on %s and fix the clock (timedatectl status)",
			l.FutureCount, h.Where, h.Host, l.Future[0].Name, h.Host))
		for _, o := range l.Future {
			r.Addf("future-named: %s (stored %s)", o.Name, plugin.Stamp(o.ModTime))
		}
	}
	if len(l.Replayed) > 0 {
		r.Raise(plugin.Warning, fmt.Sprintf("%d object(s) in %s/%s were stored more than %s after the time in their name (first: %s): copied or replayed, not backups of that time; never taken as the newest: find out who wrote them (backup_runner list on %s)",
			len(l.Replayed), h.Where, h.Host, plugin.HumanDuration(MaxUploadLag), l.Replayed[0].Name, h.Host))
	}
	if l.Truncated {
		r.Raise(plugin.Unknown, fmt.Sprintf("more than %d objects in %s/%s are named within the last %s: the newest backup may not be among those read (planted objects?): look at the folder with backup_runner list on %s and remove what drym did not write",
			maxPages*pageSize, h.Where, h.Host, plugin.HumanDuration(h.Window), h.Host))
	}
}

// judgeRefused raises the candidates examined and refused as the newest
// backup, newest first.
func judgeRefused(r *plugin.Result, h *Host) {
	for _, c := range h.Examined {
		if h.Newest != nil && c.Name == h.Newest.Name {
			return
		}
		name := h.Host + "/" + c.Name
		switch c.Refused {
		case "empty":
			r.Raise(plugin.Critical, fmt.Sprintf("the newest object %s in %s is empty (0 bytes): it is no backup: %s and find out who wrote it", name, h.Where, fixBackup(h.Host)))
		case "no statement":
			r.Raise(plugin.Critical, fmt.Sprintf("the statement %s%s is missing from %s: the newest object is unproven (deleted, or the upload was cut short): %s",
				name, statement.SidecarSuffix, h.Where, fixBackup(h.Host)))
		case "unsigned":
			r.Raise(plugin.Critical, fmt.Sprintf("%s has no signature %s%s though the host key is known (%s): it is not taken as the newest backup: %s (a drym that signs) and find out who wrote it",
				name, name, statement.SignatureSuffix, h.KeysFrom, fixBackup(h.Host)))
		default:
			JudgeStatement(r, c.Statement, StatementWording{Name: name, Where: h.Where, Fix: fixBackup(h.Host),
				Unsigned: unsignedState(h), MissingState: plugin.Critical})
		}
	}
}

func unsignedState(h *Host) plugin.State {
	if h.KeysFrom != "" {
		return plugin.Critical
	}
	return plugin.Warning
}

// judgeNone raises a host without an acceptable backup in the window:
// never backed up, stale, or only refused objects. It returns the age of
// the newest backup found before the window (-1: none).
func judgeNone(r *plugin.Result, h *Host) time.Duration {
	l := h.Listing
	window := plugin.HumanDuration(h.Window)
	switch {
	case l.Before != nil:
		age := max(h.Now.Sub(l.Before.ModTime), 0)
		newer := ""
		if l.BeforePartial {
			newer = " (a listing page was full: a newer one may lie between it and the window)"
		}
		r.Raise(plugin.Critical, fmt.Sprintf("no backup of %s in the last %s: the newest found, %s, was stored %s ago%s: %s and check its timer (systemctl status drym-backup.timer)",
			h.Host, window, l.Before.Name, plugin.Ago(h.Now, l.Before.ModTime), newer, fixBackup(h.Host)))
		r.Perfdata = append(r.Perfdata, plugin.Seconds("age", age.Seconds(), plugin.Range{}, plugin.Range{}))
		return age
	case l.Never:
		r.Raise(plugin.Critical, fmt.Sprintf("never backed up: %s holds no backup of %s: run backup_runner init on %s (then backup_runner backup)", h.Where, h.Host, h.Host))
	case len(h.Examined) > 0:
		r.Raise(plugin.Critical, fmt.Sprintf("no acceptable backup of %s in the last %s (every candidate was refused, see below): %s", h.Host, window, fixBackup(h.Host)))
	default:
		r.Raise(plugin.Critical, fmt.Sprintf("no backup of %s in the last %s, nor among the first %d objects of its folder in %s: %s", h.Host, window, pageSize, h.Where, fixBackup(h.Host)))
	}
	return -1
}

// judgeHead raises a newest backup whose first bytes could not be read or
// are not an OpenPGP message encrypted to a key; false then.
func judgeHead(r *plugin.Result, h *Host) bool {
	name := h.Host + "/" + h.Newest.Name
	switch {
	case h.HeadErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read the first bytes of %s: %v (%s)", name, h.HeadErr, accessHint(h.Where, h.HeadErr)))
		return false
	case h.ParseErr != nil:
		r.Raise(plugin.Critical, fmt.Sprintf("the newest backup %s is not an OpenPGP message encrypted to a key (%v): it cannot be restored: %s and find out who wrote it", name, h.ParseErr, fixBackup(h.Host)))
		return false
	}
	r.Addf("encrypted to key ID(s) %s", FormatIDs(h.KeyIDs))
	return true
}

// judgeEscrowKeys raises a newest backup encrypted to no key in the host's
// escrow: a restore from the escrow would fail.
func judgeEscrowKeys(r *plugin.Result, h *Host) {
	e := h.Escrow
	if !judgeEscrowFound(r, h) {
		return
	}
	name := h.Host + "/" + h.Newest.Name
	if len(e.EncIDs) == 0 {
		judgeNoRecord(r, h)
		return
	}
	if in := Missing(h.KeyIDs, Missing(h.KeyIDs, e.EncIDs)); len(in) == 0 {
		r.Raise(plugin.Critical, fmt.Sprintf("the newest backup %s is encrypted to no key in %s's escrow (it is for %s; escrow zip %s holds %s): a restore from the escrow would fail: %s",
			name, h.Host, FormatIDs(h.KeyIDs), e.Zip.Name, FormatIDs(e.EncIDs), fixEscrow(h.Host)))
		return
	}
	r.Addf("escrow: %s in %s (%s) holds %s", e.Zip.Name, e.Where, escrowSource(e), FormatIDs(e.EncIDs))
}

// judgeEscrowFound raises an escrow location that cannot be listed or
// holds no zip for the host; false then.
func judgeEscrowFound(r *plugin.Result, h *Host) bool {
	e := h.Escrow
	switch {
	case e.Err != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot list the escrow location %s: %v (%s)", e.Where, e.Err, accessHint(e.Where, e.Err)))
		return false
	case e.None:
		r.Raise(plugin.Critical, fmt.Sprintf("no escrow zip for %s in %s: the host key exists only on %s: %s", h.Host, e.Where, h.Host, fixEscrow(h.Host)))
		return false
	}
	return true
}

// judgeNoRecord raises an escrow whose keys are unknown: no usable record,
// and the zip not opened.
func judgeNoRecord(r *plugin.Result, h *Host) {
	e := h.Escrow
	rec := escrow.RecordName(e.Zip.Name)
	var broken *escrow.BrokenError
	switch {
	case errors.As(e.OpenErr, &broken):
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s in %s is unusable: %s: %s", e.Zip.Name, e.Where,
			broken.Reason, fixEscrow(h.Host)))
	case e.OpenErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read escrow zip %s: %v (%s)", e.Zip.Name, e.OpenErr, accessHint(e.Where, e.OpenErr)))
	case errors.Is(e.RecordErr, store.ErrNotFound):
		r.Raise(plugin.Unknown, fmt.Sprintf("no public record %s beside %s's escrow zip in %s: its keys cannot be compared without opening it: %s (a drym that ships the record)",
			rec, h.Host, e.Where, fixEscrow(h.Host)))
	default:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot use the escrow record %s: %v (%s)", rec, e.RecordErr, accessHint(e.Where, e.RecordErr)))
	}
}

func escrowSource(e *Escrow) string {
	if e.Opened != nil {
		return "opened"
	}
	return "as its record says"
}

// judgeShrink raises a newest object much smaller than the one before.
func judgeShrink(r *plugin.Result, h *Host, limit plugin.Percent) {
	p := h.Previous
	if p == nil || limit <= 0 || p.Size == 0 {
		return
	}
	cur, old := h.Newest.Size, p.Size
	if float64(cur) < float64(old)*(1-float64(limit)/100) {
		r.Raise(plugin.Warning, fmt.Sprintf("the newest backup of %s is %.0f%% smaller than the one before (%s → %s, over --shrink-warning %s): were sources deleted or excluded on %s? compare with backup_runner list on %s",
			h.Host, 100*(1-float64(cur)/float64(old)), units.Bytes(old), units.Bytes(cur), limit, h.Host, h.Host))
	}
	r.Addf("previous backup: %s/%s, %s, stored %s", h.Host, p.Name, units.Bytes(p.Size), plugin.Stamp(p.ModTime))
}

// signedBy says in the OK summary what vouched for the backup.
func signedBy(h *Host) string {
	st := h.Newest.Statement
	switch {
	case st.Signed():
		return "signed by the host key (" + h.KeysFrom + ")"
	case st.Parsed.Legacy:
		return "unsigned (legacy sidecar)"
	case h.KeysNote != "":
		return "signature not checked (" + h.KeysNote + ", and no escrowed key)"
	}
	return "signature not checked (no host key known: pin one in the keys directory or give an escrow location)"
}

func escrowed(h *Host) string {
	if h.Escrow == nil || len(h.Escrow.EncIDs) == 0 {
		return ""
	}
	return ", encrypted to a key in its escrow"
}
