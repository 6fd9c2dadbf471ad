package backup

// What a reader may trust. SEIPD's modification detection code is no MAC:
// anyone who holds the host's public key (it is in the escrow zip and
// world-readable on the host) and may write to the destination can store an
// object that decrypts and verifies, under a name dated as late as they
// like. So a reader trusts an object only when the host's signed statement
// about it (<name>.sha256 with <name>.sig) verifies with the host key or a
// retired host key and agrees with the object, and "latest" is the newest
// such object that is not dated in the future. All of it is decided from two
// small reads per object, before a byte of the object is read.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
)

// ErrNoSignature means a signed-format statement has no <name>.sig beside
// it: unlike a legacy object, that is never accepted.
var ErrNoSignature = errors.New("signature missing")

// Trust is what a reader learned about one backup object from its
// statement and signature.
type Trust struct {
	Name string
	Size int64 // the object's size in the store
	// Statement is the parsed statement (a legacy one-line sidecar has
	// Legacy set); zero when there is none or it is unreadable.
	Statement statement.Statement
	// Signer is the key whose good signature made the statement
	// trusted; nil otherwise.
	Signer *openpgp.Entity
	// Err is nil when the statement is signed by one of the keys given
	// and agrees with the object. Otherwise it says why not, naming the
	// object and the fix; errors.Is tells ErrUnsigned (a legacy object,
	// accepted only when asked for), ErrNoSignature, statement.ErrOtherKey,
	// ErrBadSignature, ErrMismatch and ErrMalformed apart.
	Err error
}

// Unsigned reports whether the object is a legacy one: no statement, or a
// one-line sidecar, and no signature (made by drym before it signed its
// backups, or planted).
func (t Trust) Unsigned() bool { return errors.Is(t.Err, statement.ErrUnsigned) }

// Want is the SHA-256 the statement records for the object ("" if none).
func (t Trust) Want() string { return t.Statement.SHA256 }

// Verdict is a short word for list: "signed", "UNSIGNED", or "UNTRUSTED".
func (t Trust) Verdict() string {
	switch {
	case t.Err == nil:
		return "signed"
	case t.Unsigned():
		return "UNSIGNED"
	}
	return "UNTRUSTED"
}

// CheckStatement reads name's statement and signature from s (two small
// reads) and judges them against the keys (the host key and its retired
// predecessors), the host whose folder s is, and size, the object's size as
// the store reports it. The error is for a store that cannot be read; the
// verdict is in Trust.Err.
func CheckStatement(ctx context.Context, s store.Store, host, name string, size int64, keys openpgp.EntityList) (Trust, error) {
	t := Trust{Name: name, Size: size}
	data, err := readSmall(ctx, s, name+SidecarSuffix)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return t, err
	}
	haveStmt := err == nil
	sig, err := readSmall(ctx, s, name+SignatureSuffix)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return t, err
	}
	haveSig := err == nil
	t.Err = judge(&t, host, data, haveStmt, sig, haveSig, keys)
	return t, nil
}

// verdict is an error whose message is written for the user while
// errors.Is still tells its kind (a statement sentinel).
type verdict struct {
	kind error
	msg  string
}

func (v *verdict) Error() string { return v.msg }
func (v *verdict) Unwrap() error { return v.kind }

func fail(kind error, format string, args ...any) error {
	return &verdict{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func judge(t *Trust, host string, data []byte, haveStmt bool, sig []byte, haveSig bool, keys openpgp.EntityList) error {
	name := t.Name
	stmtName, sigName := name+SidecarSuffix, name+SignatureSuffix
	const planted = "do not restore it: it was not made by this host, or was altered; find out who wrote it"
	const legacy = "made before drym signed its backups, or planted; if you know it is an old backup of this host, pass --allow-unsigned"
	if !haveStmt {
		if haveSig {
			return fail(statement.ErrMalformed, "%s exists but the statement %s does not: %s", sigName, stmtName, planted)
		}
		return fail(statement.ErrUnsigned, "%s is not signed (no statement %s, no %s): %s", name, SidecarSuffix, SignatureSuffix, legacy)
	}
	st, err := statement.Parse(data, name)
	if err != nil {
		return fmt.Errorf("%s: %w: %s", stmtName, err, planted)
	}
	t.Statement = st
	if st.Legacy {
		if haveSig {
			return fail(statement.ErrMalformed, "%s is a one-line sidecar, yet %s exists (drym signs only statements): %s", stmtName, sigName, planted)
		}
		return fail(statement.ErrUnsigned, "%s is not signed (a one-line sidecar, no %s): %s", name, SignatureSuffix, legacy)
	}
	if !haveSig {
		return fail(ErrNoSignature, "%s is missing: the statement about %s is not signed (a backup cut short, or planted): use another backup", sigName, name)
	}
	signer, err := statement.Verify(data, sig, keys)
	switch {
	case errors.Is(err, statement.ErrOtherKey):
		by := statement.Issuer(sig)
		if by == "" {
			by = "an unknown key"
		} else {
			by = "key " + by
		}
		return fail(statement.ErrOtherKey, "%s is signed by %s, not by this host's key %s or a retired one: %s", sigName, by, fingerprints(keys), planted)
	case err != nil:
		return fmt.Errorf("%s does not verify %s (%w): %s", sigName, stmtName, err, planted)
	}
	if err := st.Check(host, t.Size); err != nil {
		return fmt.Errorf("%s (signed by %s): %w: the object was replaced or damaged after the host signed; use another backup", stmtName, crypt.Fingerprint(signer), err)
	}
	t.Signer = signer
	return nil
}

func fingerprints(keys openpgp.EntityList) string {
	if len(keys) == 0 {
		return "(none)"
	}
	return crypt.Fingerprint(keys[0])
}

// readSmall reads a statement or signature, bounded by statement.MaxSize
// (one byte more is read, so an oversized one fails to parse).
func readSmall(ctx context.Context, s store.Store, name string) ([]byte, error) {
	r, err := s.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, statement.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s from %s: %w", name, s, err)
	}
	return data, nil
}

// Future reports whether an object named name is dated more than
// status.ClockSkew after now: made with a clock that was ahead, or planted.
func Future(name string, now time.Time) bool {
	t, err := ParseName(name)
	return err == nil && t.Sub(now) > status.ClockSkew
}

// Objects lists the backup objects in s, newest first.
func Objects(ctx context.Context, s store.Store) ([]store.Info, error) {
	var out []store.Info
	err := s.List(ctx, "", func(i store.Info) error {
		if IsName(i.Name) {
			out = append(out, i)
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// MaxCandidates bounds how many of the newest objects Latest checks (two
// small reads each) before it gives up.
const MaxCandidates = 20

// Choice is what Latest found.
type Choice struct {
	// Trust is the chosen object's verdict (Err is nil).
	Trust
	// Future names the objects dated more than status.ClockSkew ahead of
	// now, newest first, at most status.MaxListed; FutureCount counts them
	// all. None of them is ever chosen.
	Future      []string
	FutureCount int
	// Skipped are the newer objects passed over, and why.
	Skipped []Trust
}

// ErrNoTrusted means no object qualified as latest.
var ErrNoTrusted = errors.New("no trusted backup")

// Latest returns the newest backup object in s whose name is dated at most
// status.ClockSkew after now and whose statement carries a good signature by
// one of keys and agrees with the object, walking back from the newest at
// most MaxCandidates objects. Future-dated, unsigned and untrusted objects
// are reported in the Choice (also with an error), never chosen. The
// error wraps store.ErrNotFound when s holds no backup at all, ErrNoTrusted
// when none qualified.
func Latest(ctx context.Context, s store.Store, host string, keys openpgp.EntityList, now time.Time) (Choice, error) {
	objs, err := Objects(ctx, s)
	if err != nil {
		return Choice{}, fmt.Errorf("cannot list %s: %w", s, err)
	}
	var c Choice
	var cands []store.Info
	for _, o := range objs {
		if Future(o.Name, now) {
			c.FutureCount++
			if len(c.Future) < status.MaxListed {
				c.Future = append(c.Future, o.Name)
			}
			continue
		}
		cands = append(cands, o)
	}
	if len(objs) == 0 {
		return c, fmt.Errorf("no backups in %s: run backup_runner backup first: %w", s, store.ErrNotFound)
	}
	for i, o := range cands {
		if i == MaxCandidates {
			return c, fmt.Errorf("%w: none of the newest %d of %d backups in %s carries a good signature by this host's key (the newest: %v); only %d are tried: pass --backup NAME to choose an older one (see backup_runner list)",
				ErrNoTrusted, MaxCandidates, len(cands), s, c.Skipped[0].Err, MaxCandidates)
		}
		t, err := CheckStatement(ctx, s, host, o.Name, o.Size, keys)
		if err != nil {
			return c, err
		}
		if t.Err == nil {
			c.Trust = t
			return c, nil
		}
		c.Skipped = append(c.Skipped, t)
	}
	switch {
	case len(cands) == 0:
		return c, fmt.Errorf("%w: all %d backups in %s are dated more than %s in the future (newest %s): fix the clock (NTP), or find out who wrote them",
			ErrNoTrusted, c.FutureCount, s, status.ClockSkew, c.Future[0])
	case c.Skipped[0].Unsigned():
		return c, fmt.Errorf("%w: no backup in %s carries a good signature by this host's key (%d checked; the newest: %v); to read an unsigned one, name it: --backup NAME --allow-unsigned",
			ErrNoTrusted, s, len(cands), c.Skipped[0].Err)
	default:
		return c, fmt.Errorf("%w: no backup in %s carries a good signature by this host's key (%d checked; the newest: %v)",
			ErrNoTrusted, s, len(cands), c.Skipped[0].Err)
	}
}
