package evidence

import (
	"context"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
)

// Listing bounds. A host that backs up daily has a few objects in the
// window; the bounds only bite when something else put objects there.
const (
	// MaxUploadLag is how long after its name's time (the start of the
	// run) an object may be stored: a name earlier than its storing by more
	// is a replayed or copied object, not a backup of that time.
	MaxUploadLag = 24 * time.Hour
	// pageSize is the objects asked for in one listing request.
	pageSize = store.MaxPage
	// maxPages bounds the listing of the window.
	maxPages = 3
	// lookBack is where the second listing of a host with no backup in
	// the window starts, before the third lists from the very first name.
	lookBack = 35 * 24 * time.Hour
)

// Object is one backup object as a listing shows it, with its companions.
type Object struct {
	store.Info
	// Made is the time in its name (when its run started).
	Made time.Time
	// StatementSize and SignatureSize are the sizes of <name>.sha256 and
	// <name>.sig, -1 when the listing has none.
	StatementSize, SignatureSize int64
}

// Listing is what the bounded listing of a host's folder found.
type Listing struct {
	// Start is the time the window starts at: the listing began at the
	// first name after it.
	Start time.Time
	// Backups are the objects in the window that may be backups, oldest
	// first: names of drym backups, not in the future, stored when their
	// name says.
	Backups []Object
	// Future are objects named more than status.ClockSkew after now, or
	// after they were stored: never taken as fresh. FutureCount counts
	// them all, including those past the listing's end.
	Future      []Object
	FutureCount int
	// Replayed are objects stored more than MaxUploadLag after their
	// name's time.
	Replayed []Object
	// Truncated: the window held more objects than maxPages pages, so
	// the newest may not have been seen.
	Truncated bool
	// Before is the newest backup found before the window (for a host
	// without one in it), and BeforePartial says whether older listings
	// were cut short (a newer one may exist before the window).
	Before        *Object
	BeforePartial bool
	// Never: the host's folder holds no backup object at all.
	Never bool
	// Requests is how many listing requests were made.
	Requests int
}

// maxKept bounds the objects a Listing keeps of each kind for reporting.
const maxKept = 20

// Find lists host's folder from the start of the window (now − window) in
// bounded pages and sorts what it finds. A host with a backup in the
// window costs one request however many objects are stored; one without
// costs at most two more (one from lookBack before the window, one from
// the first name), to tell "stale" from "never backed up".
func Find(ctx context.Context, st store.Store, now time.Time, window time.Duration) (Listing, error) {
	l := Listing{Start: now.Add(-window)}
	start := l.Start.UTC().Format(nameTime)
	token := ""
	for page := 0; ; page++ {
		plugin.Doing(ctx, "listing %s from %s", st, start)
		p, err := store.ListPage(ctx, st, "", start, token, pageSize)
		l.Requests++
		if err != nil {
			return l, err
		}
		last := l.sort(p.Objects, now)
		if p.Next == "" || last {
			break
		}
		if page+1 == maxPages {
			l.Truncated = true
			break
		}
		token = p.Next
	}
	if len(l.Backups) > 0 || l.Truncated {
		return l, nil
	}
	return l, l.before(ctx, st, now)
}

// before looks for the newest backup before the window: first from
// lookBack before it, then from the first name. Never is set when the
// folder's first page holds no backup at all.
func (l *Listing) before(ctx context.Context, st store.Store, now time.Time) error {
	for _, from := range []string{l.Start.Add(-lookBack).UTC().Format(nameTime), ""} {
		plugin.Doing(ctx, "listing %s from %q", st, from)
		p, err := store.ListPage(ctx, st, "", from, "", pageSize)
		l.Requests++
		if err != nil {
			return err
		}
		var old Listing
		old.sort(p.Objects, now)
		if n := len(old.Backups); n > 0 {
			b := old.Backups[n-1]
			// A cut page may hide newer ones between it and the window.
			l.Before, l.BeforePartial = &b, p.Next != ""
			return nil
		}
		if from == "" {
			l.Never, l.BeforePartial = p.Next == "", p.Next != ""
		}
	}
	return nil
}

// nameTime is the time layout that starts every backup name.
const nameTime = "20060102T150405Z"

// sort files one page of objects into l and reports whether the page ended
// in names from the future (everything after them is too: stop listing).
func (l *Listing) sort(objs []store.Info, now time.Time) (futureTail bool) {
	for _, o := range objs {
		if name, ok := strings.CutSuffix(o.Name, statement.SidecarSuffix); ok {
			l.companion(name, o.Size, true)
			continue
		}
		if name, ok := strings.CutSuffix(o.Name, statement.SignatureSuffix); ok {
			l.companion(name, o.Size, false)
			continue
		}
		made, err := backup.ParseName(o.Name)
		if err != nil {
			continue
		}
		obj := Object{Info: o, Made: made, StatementSize: -1, SignatureSize: -1}
		switch {
		case made.Sub(now) > status.ClockSkew || (!o.ModTime.IsZero() && made.Sub(o.ModTime) > status.ClockSkew):
			l.FutureCount++
			if len(l.Future) < maxKept {
				l.Future = append(l.Future, obj)
			}
		case !o.ModTime.IsZero() && o.ModTime.Sub(made) > MaxUploadLag:
			if len(l.Replayed) < maxKept {
				l.Replayed = append(l.Replayed, obj)
			}
		default:
			l.Backups = append(l.Backups, obj)
		}
	}
	if n := len(objs); n > 0 {
		last := strings.TrimSuffix(strings.TrimSuffix(objs[n-1].Name, statement.SignatureSuffix), statement.SidecarSuffix)
		if made, err := backup.ParseName(last); err == nil {
			return made.Sub(now) > status.ClockSkew
		}
	}
	return false
}

// companion records a statement or signature listed after its object.
func (l *Listing) companion(name string, size int64, isStatement bool) {
	for _, list := range [][]Object{l.Backups, l.Future, l.Replayed} {
		for i := len(list) - 1; i >= 0 && i >= len(list)-4; i-- {
			if list[i].Name != name {
				continue
			}
			if isStatement {
				list[i].StatementSize = size
			} else {
				list[i].SignatureSize = size
			}
			return
		}
	}
}
