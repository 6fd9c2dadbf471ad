package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/store"
)

// Escrow is what an escrow location holds for one host: its newest zip,
// the public record shipped beside it and, when this user may read it and
// asked to, the zip itself opened.
type Escrow struct {
	Where string
	// Err: the location could not be listed. None: no zip for the host.
	Err  error
	None bool
	Zip  store.Info
	// Record is the public record <zip>.json (nil when there is none:
	// RecordErr says why, store.ErrNotFound when it is missing).
	Record    *escrow.Record
	RecordErr error
	// Opened is the inspected zip when it was read; OpenErr why it is
	// unusable (escrow.ErrBroken) or could not be read; Unreadable when
	// this user may not read it (the monitoring policy at work).
	Opened     *escrow.Facts
	OpenErr    error
	Unreadable error
	SHA256     string
	// Public is the escrowed public key (the zip's member, else the
	// record's); Secret the escrowed secret key when the zip holds it bare
	// and was opened.
	Public *openpgp.Entity
	Secret *openpgp.Entity
	// EncIDs are the escrowed encryption keys: with their secret from an
	// opened zip with a bare secret key, else as the record says.
	EncIDs []uint64
	// Requests made.
	Requests int
}

// ReadEscrow finds host's newest zip in st (one listing), reads its record
// (one small GET) and, with open, the zip (one GET of a few KiB).
func ReadEscrow(ctx context.Context, st store.Store, host string, open bool) *Escrow {
	e := &Escrow{Where: st.String()}
	plugin.Doing(ctx, "listing %s for %s%s-*.zip", st, escrow.NamePrefix, host)
	info, err := escrow.Latest(ctx, st, host)
	e.Requests++
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.None = true
		return e
	case err != nil:
		e.Err = err
		return e
	}
	e.Zip = info
	plugin.Doing(ctx, "reading %s from %s", escrow.RecordName(info.Name), st)
	data, err := store.ReadRange(ctx, st, escrow.RecordName(info.Name), 0, escrow.MaxRecord+1)
	e.Requests++
	if err == nil {
		e.Record, err = escrow.ParseRecord(data, info.Name)
	}
	e.RecordErr = err
	if e.Record != nil {
		if keys, err := crypt.ParseKeys([]byte(e.Record.PublicKey)); err == nil && crypt.Fingerprint(keys[0]) == e.Record.Fingerprint {
			e.Public = keys[0]
		}
		e.EncIDs, _ = ParseIDs(e.Record.EncryptionKeyIDs)
	}
	if open {
		e.open(ctx, st)
	}
	return e
}

// open reads and inspects the zip; what it holds replaces the record's word.
func (e *Escrow) open(ctx context.Context, st store.Store) {
	plugin.Doing(ctx, "reading %s from %s", e.Zip.Name, st)
	data, err := store.ReadRange(ctx, st, e.Zip.Name, 0, escrow.DefaultLimits.MaxZip+1)
	e.Requests++
	switch {
	case store.IsDenied(err):
		e.Unreadable = err
		return
	case err != nil:
		e.OpenErr = err
		return
	}
	sum := sha256.Sum256(data)
	e.SHA256 = hex.EncodeToString(sum[:])
	z, err := escrow.Inspect(bytes.NewReader(data), int64(len(data)), escrow.DefaultLimits)
	if err != nil {
		e.OpenErr = err
		return
	}
	e.Opened = z
	if pub, err := crypt.ParseKeys(z.Contents[escrow.MemberPublic]); err == nil {
		e.Public = pub[0]
	}
	if ids, err := EscrowedKeyIDs(z); err == nil {
		e.EncIDs = ids
	} else {
		e.OpenErr = escrow.Broken("%v", err)
	}
	if !z.SecretEncrypted {
		if sec, err := crypt.ParseKeys(z.Contents[escrow.MemberSecret]); err == nil {
			e.Secret = sec[0]
		}
	}
}

// Keys returns the escrowed public key for checking signatures, and says
// where it came from.
func (e *Escrow) Keys() (openpgp.EntityList, string) {
	if e == nil || e.Public == nil {
		return nil, ""
	}
	if e.Opened != nil {
		return openpgp.EntityList{e.Public}, "the public key in escrow zip " + e.Zip.Name
	}
	return openpgp.EntityList{e.Public}, "the public key in escrow record " + escrow.RecordName(e.Zip.Name) + ", the host's own word"
}
