package evidence

import (
	"context"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/store"
)

// Opened is the monitoring settings with the destination and escrow
// location opened once, for one host or a whole fleet.
type Opened struct {
	*Settings
	Dest   store.Store
	Escrow store.Store // nil without [escrow]
}

// Open opens the stores the settings name, with the read credentials.
func Open(ctx context.Context, s *Settings) (*Opened, error) {
	o := &Opened{Settings: s}
	plugin.Doing(ctx, "opening %s", s.Destination.URL)
	var err error
	if o.Dest, err = store.Open(ctx, s.Destination, "", store.Read); err != nil {
		return nil, err
	}
	if s.Escrow.URL != "" {
		plugin.Doing(ctx, "opening %s", s.Escrow.URL)
		if o.Escrow, err = store.Open(ctx, s.Escrow, "", store.Read); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Params returns what Gather needs for host: its folder, the escrow, its
// pinned keys, the window from now.
func (o *Opened) Params(host string, now time.Time, window time.Duration, openZip bool) (Params, error) {
	folder, err := store.Scope(o.Dest, host)
	if err != nil {
		return Params{}, err
	}
	p := Params{Host: host, Backups: folder, Where: o.Destination.URL, Escrow: o.Escrow, OpenZip: openZip, Now: now, Window: window}
	p.Keys, p.KeysFrom, p.KeysNote, p.KeysErr = PinnedFor(o.Keys, host)
	return p, nil
}

// Window is how far back the listing of a host starts: the critical age
// (the newest backup must be younger) plus MaxUploadLag (its name, the
// start of its run, may be that much older than its storing), so the
// backup before it is usually listed too.
func Window(critical plugin.AgeRange) time.Duration {
	c := 50 * time.Hour
	if r := critical.Range; r.IsSet() && !r.Inside && !r.NoEnd && r.End > 0 {
		c = time.Duration(r.End * float64(time.Second))
	}
	return c + MaxUploadLag
}
