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

// Ship stores z in w under its name, never replacing anything, with its
// public record (RecordName) beside it. The zip is stored private where the
// store has file modes (it may hold the bare secret key); the record is not.
//
// When the newest zip of the host in r (read credentials; nil when there
// are none) already escrows the same thing (Equivalent: same key, same
// settings), nothing new is shipped. Otherwise z goes under the first free
// revision of its day's name: never "already shipped" because an older
// revision matches, since the check judges the newest zip and an alert
// must be cleared by shipping (a setting changed and changed back the same
// day ships a third zip). When a name is taken and r is nil, the zip there
// cannot be compared: it is kept and Ship says so in Note.
func Ship(ctx context.Context, w, r store.Store, z *Zip) (Shipped, error) {
	mine, err := Inspect(bytes.NewReader(z.Data), int64(len(z.Data)), DefaultLimits)
	if err != nil {
		return Shipped{}, fmt.Errorf("the zip just built does not pass inspection (a drym bug): %w", err)
	}
	var readErr error
	if r != nil {
		got, ok, err := sameAsLatest(ctx, r, z, mine)
		if ok {
			return got, shipRecord(ctx, w, z, got)
		}
		readErr = err
	}
	for rev := 1; rev <= maxRevs; rev++ {
		name := z.Name(rev)
		_, err := store.PutPrivate(ctx, w, name, bytes.NewReader(z.Data))
		if err == nil {
			got := Shipped{Name: name, SHA256: z.SHA256}
			return got, shipRecord(ctx, w, z, got)
		}
		if !errors.Is(err, store.ErrExists) {
			return Shipped{}, fmt.Errorf("shipping %s to %s: %w", name, w, err)
		}
		if r == nil {
			return Shipped{Name: name, Already: true, Note: "not compared: no read access to the escrow location"}, nil
		}
		if readErr != nil {
			// The newest zip could not be read: no telling whether a
			// new one is needed, so none is piled up.
			return Shipped{Name: name, Already: true, Note: fmt.Sprintf("not compared: %v", readErr)}, nil
		}
		// Taken by an older zip (the newest was compared above): keep it,
		// and try the next name.
	}
	return Shipped{}, fmt.Errorf("%d differing escrow zips for %s on one day in %s: not shipping more (look at them)", maxRevs, z.Host, w)
}

// shipRecord stores the public record of the zip got names, unless one is
// there already (a zip shipped before records existed gets one now).
func shipRecord(ctx context.Context, w store.Store, z *Zip, got Shipped) error {
	if got.SHA256 != z.SHA256 {
		// An equivalent zip with other bytes (an encrypted secret key
		// member differs on every build): its record, if any, describes it.
		return nil
	}
	rec := z.Record
	rec.Zip, rec.ZipSHA256, rec.ZipSize = got.Name, z.SHA256, int64(len(z.Data))
	data, err := rec.Marshal()
	if err != nil {
		return err
	}
	_, err = w.Put(ctx, RecordName(got.Name), bytes.NewReader(data))
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("shipping the escrow record %s to %s: %w", RecordName(got.Name), w, err)
	}
	return nil
}

// sameAsLatest reports whether the newest zip of the host in r escrows what
// z does. err is set when that zip could not be read (denied, unreachable);
// no zip at all, or a damaged one, is simply "not the same".
func sameAsLatest(ctx context.Context, r store.Store, z *Zip, mine *Facts) (Shipped, bool, error) {
	info, err := Latest(ctx, r, z.Host)
	if errors.Is(err, store.ErrNotFound) {
		return Shipped{}, false, nil
	}
	if err != nil {
		return Shipped{}, false, err
	}
	data, err := Fetch(ctx, r, info.Name, DefaultLimits.MaxZip)
	if errors.Is(err, ErrBroken) {
		return Shipped{}, false, nil
	}
	if err != nil {
		return Shipped{}, false, err
	}
	theirs, err := Inspect(bytes.NewReader(data), int64(len(data)), DefaultLimits)
	if err != nil || !Equivalent(mine, theirs) {
		return Shipped{}, false, nil
	}
	sum := sha256.Sum256(data)
	return Shipped{Name: info.Name, SHA256: hex.EncodeToString(sum[:]), Already: true}, true, nil
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
		return nil, Broken("%s in %s is larger than %d bytes", name, s, limit)
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
