package escrow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/drym-backup/drym/internal/store"
)

// maxRevs bounds how many differing zips one day can get before shipping
// gives up (a loop, not a real admin).
const maxRevs = 20

// Shipped says what Ship did.
type Shipped struct {
	Name   string
	SHA256 string
	// Already is true when an equivalent zip was there and was kept.
	Already bool
	// Note explains an Already that could not be verified.
	Note string
}

// Ship stores z in w under its name, never replacing anything. When the name
// is taken it reads the existing zip through r (read credentials; nil when
// there are none) and, if it escrows the same thing, reports it as already
// shipped; if it differs (the settings changed since the earlier zip of
// the same day), z goes under the next revision name. When the existing zip
// cannot be read, it is kept and Ship says so in Note.
func Ship(ctx context.Context, w, r store.Store, z *Zip) (Shipped, error) {
	mine, err := Inspect(bytes.NewReader(z.Data), int64(len(z.Data)), DefaultLimits)
	if err != nil {
		return Shipped{}, fmt.Errorf("the zip just built does not pass inspection (a drym bug): %w", err)
	}
	// The newest zip already escrows the same key and settings (shipped on
	// an earlier day): nothing new to ship, so re-running init or escrow
	// every day does not pile up copies.
	if r != nil {
		if got, ok := sameAsLatest(ctx, r, z, mine); ok {
			return got, nil
		}
	}
	for rev := 1; rev <= maxRevs; rev++ {
		name := z.Name(rev)
		_, err := w.Put(ctx, name, bytes.NewReader(z.Data))
		if err == nil {
			return Shipped{Name: name, SHA256: z.SHA256}, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return Shipped{}, fmt.Errorf("shipping %s to %s: %w", name, w, err)
		}
		if r == nil {
			return Shipped{Name: name, Already: true, Note: "not compared: no read access to the escrow location"}, nil
		}
		data, err := Fetch(ctx, r, name, DefaultLimits.MaxZip)
		if err != nil {
			return Shipped{Name: name, Already: true, Note: fmt.Sprintf("not compared: %v", err)}, nil
		}
		sum := sha256.Sum256(data)
		got := Shipped{Name: name, SHA256: hex.EncodeToString(sum[:]), Already: true}
		if bytes.Equal(data, z.Data) {
			return got, nil
		}
		theirs, err := Inspect(bytes.NewReader(data), int64(len(data)), DefaultLimits)
		if err == nil && Equivalent(mine, theirs) {
			return got, nil
		}
		// Differs (or is damaged): keep it, and ship under the next name.
	}
	return Shipped{}, fmt.Errorf("%d differing escrow zips for %s on one day in %s: not shipping more (look at them)", maxRevs, z.Host, w)
}

func sameAsLatest(ctx context.Context, r store.Store, z *Zip, mine *Facts) (Shipped, bool) {
	info, err := Latest(ctx, r, z.Host)
	if err != nil {
		return Shipped{}, false
	}
	data, err := Fetch(ctx, r, info.Name, DefaultLimits.MaxZip)
	if err != nil {
		return Shipped{}, false
	}
	theirs, err := Inspect(bytes.NewReader(data), int64(len(data)), DefaultLimits)
	if err != nil || !Equivalent(mine, theirs) {
		return Shipped{}, false
	}
	sum := sha256.Sum256(data)
	return Shipped{Name: info.Name, SHA256: hex.EncodeToString(sum[:]), Already: true}, true
}

// Fetch reads a whole object of at most limit bytes.
func Fetch(ctx context.Context, s store.Store, name string, limit int64) ([]byte, error) {
	rc, err := s.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", name, s, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s in %s is larger than %d bytes", ErrBroken, name, s, limit)
	}
	return data, nil
}

// Latest returns the newest escrow zip of host in s: by the day in its name,
// then its revision, then its modification time (two keys on one day).
// store.ErrNotFound when there is none.
func Latest(ctx context.Context, s store.Store, host string) (store.Info, error) {
	var best store.Info
	var bestN NameInfo
	found := false
	err := s.List(ctx, NamePrefix+host+"-", func(i store.Info) error {
		n, ok := ParseName(host, i.Name)
		if !ok {
			return nil
		}
		if !found || newer(n, i, bestN, best) {
			best, bestN, found = i, n, true
		}
		return nil
	})
	if err != nil {
		return store.Info{}, err
	}
	if !found {
		return store.Info{}, fmt.Errorf("%s: no %s%s-*.zip: %w", s, NamePrefix, host, store.ErrNotFound)
	}
	return best, nil
}

func newer(n NameInfo, i store.Info, bn NameInfo, b store.Info) bool {
	if !n.Day.Equal(bn.Day) {
		return n.Day.After(bn.Day)
	}
	if !i.ModTime.Equal(b.ModTime) {
		return i.ModTime.After(b.ModTime)
	}
	return n.Rev > bn.Rev
}
