package evidence

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/store"
)

// Params says where one host's evidence lives and how to read it.
type Params struct {
	Host string
	// Backups is the host's folder in the destination; Where the
	// destination's URL, for messages.
	Backups store.Store
	Where   string
	// Escrow is the escrow location (flat), nil when none is given.
	Escrow store.Store
	// OpenZip asks for the zip itself (the office-side proof), not just
	// its public record.
	OpenZip bool
	// Keys are the host's pinned public keys (KeysFrom says from where);
	// KeysNote why there are none (no file for the host), KeysErr why they
	// could not be read. Without pinned keys the escrowed public key is
	// used, when there is one.
	Keys     openpgp.EntityList
	KeysFrom string
	KeysNote string
	KeysErr  error
	// Now and Window: the listing starts at Now − Window.
	Now    time.Time
	Window time.Duration
}

// maxExamined bounds the candidates whose statement is read (two GETs
// each) before giving up on finding a signed backup.
const maxExamined = 3

// Candidate is a backup object examined as the newest: its statement, or
// why it was refused without reading one.
type Candidate struct {
	Object
	Statement Statement
	// Refused says why it was refused without a request ("" when its
	// statement was read).
	Refused string
}

// Host is everything found about one host; Judge* weigh it without I/O.
type Host struct {
	Host, Where string
	Now         time.Time
	Window      time.Duration
	// ListErr: the folder could not be listed (unreachable, denied,
	// timed out).
	ListErr error
	Listing Listing
	// Examined are the candidates looked at, newest first; Newest is the
	// accepted one (nil when none was), Previous the backup before it.
	Examined []Candidate
	Newest   *Candidate
	Previous *Object
	// KeyIDs are the PKESK key IDs at the start of Newest; HeadErr why
	// its first bytes could not be read, ParseErr why they hold no
	// session key packets.
	KeyIDs   []uint64
	HeadErr  error
	ParseErr error
	// OpenedBy is the escrowed key ID whose secret opened Newest (the
	// office proof), OpenErr why it did not.
	OpenedBy uint64
	OpenErr  error
	Escrow   *Escrow
	// KeysFrom says where the keys signatures were checked against came
	// from ("" when none: signatures were not checked); KeysNote why
	// pinned keys were not used; KeysErr a pinned key that could not be
	// read (nothing else is gathered then).
	KeysFrom string
	KeysNote string
	KeysErr  error
	Requests int
}

// Gather reads one host's evidence: the escrow (when given), the bounded
// listing, the statement and signature of the newest candidates, and the
// first few KiB of the accepted one.
func Gather(ctx context.Context, p Params) *Host {
	h := &Host{Host: p.Host, Where: p.Where, Now: p.Now, Window: p.Window}
	keys, from := p.Keys, p.KeysFrom
	h.KeysNote, h.KeysErr = p.KeysNote, p.KeysErr
	if h.KeysErr != nil {
		return h
	}
	if p.Escrow != nil {
		h.Escrow = ReadEscrow(ctx, p.Escrow, p.Host, p.OpenZip)
		h.Requests += h.Escrow.Requests
		if len(keys) == 0 {
			keys, from = h.Escrow.Keys()
		}
	}
	h.KeysFrom = from
	h.Listing, h.ListErr = Find(ctx, p.Backups, p.Now, p.Window)
	h.Requests += h.Listing.Requests
	if h.ListErr != nil {
		return h
	}
	h.pick(ctx, p.Backups, keys)
	if h.Newest == nil {
		return h
	}
	plugin.Doing(ctx, "reading the first %d bytes of %s from %s", HeadSize, h.Newest.Name, p.Backups)
	head, err := store.ReadRange(ctx, p.Backups, h.Newest.Name, 0, HeadSize)
	h.Requests++
	if err != nil {
		h.HeadErr = err
		return h
	}
	h.KeyIDs, h.ParseErr = Recipients(head)
	if h.ParseErr == nil && h.Escrow != nil && h.Escrow.Secret != nil {
		h.OpenedBy, h.OpenErr = OpenProof(head, h.Escrow.Secret)
	}
	return h
}

// pick examines the candidates newest first and accepts the first whose
// statement vouches for it: a statement matching its size, signed by the
// host key when one is known. Refusals cost no request; a read statement
// costs two, and at most maxExamined are read.
func (h *Host) pick(ctx context.Context, st store.Store, keys openpgp.EntityList) {
	b := h.Listing.Backups
	read := 0
	for i := len(b) - 1; i >= 0 && read < maxExamined; i-- {
		c := Candidate{Object: b[i]}
		switch {
		case c.Size == 0:
			c.Refused = "empty"
		case c.StatementSize < 0:
			c.Refused = "no statement"
		case len(keys) > 0 && c.SignatureSize < 0:
			c.Refused = "unsigned"
		default:
			read++
			c.Statement = ReadStatement(ctx, st, h.Host, c.Name, c.Size, keys, h.KeysFrom, c.SignatureSize < 0)
			h.Requests += c.Statement.Requests
		}
		if len(h.Examined) < maxKept {
			h.Examined = append(h.Examined, c)
		}
		if c.Refused != "" {
			continue
		}
		w := StatementWording{Name: h.Host + "/" + c.Name, Unsigned: plugin.Warning, MissingState: plugin.Critical}
		if len(keys) > 0 {
			w.Unsigned = plugin.Critical
		}
		if JudgeStatement(&plugin.Result{}, c.Statement, w) {
			h.Newest = &c
			if i > 0 {
				prev := b[i-1]
				h.Previous = &prev
			}
			return
		}
	}
}

// PinnedFor reads host's pinned keys from dir (none configured: all
// empty). A host without a pinned key gets a note (the escrowed key may
// stand in); a key file that cannot be read is an error.
func PinnedFor(dir, host string) (keys openpgp.EntityList, from, note string, err error) {
	if dir == "" {
		return nil, "", "", nil
	}
	keys, path, err := PinnedKeys(dir, host)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Sprintf("no pinned key for %s in %s", host, dir), nil
	}
	if err != nil {
		return nil, "", "", err
	}
	return keys, "pinned key " + path, "", nil
}
