package evidence

import (
	"context"
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/store"
)

// Statement is what the store holds of a backup's signed statement
// (<object>.sha256) and its signature (<object>.sig), and what checking
// them found. Gathered by ReadStatement, judged by JudgeStatement.
type Statement struct {
	// Object is the backup object's name within the host's folder.
	Object string
	// Err is reading <object>.sha256 (store.ErrNotFound when missing).
	Err error
	// Parsed is the statement; ParseErr why it is not one, or does not
	// match the object (statement.ErrMalformed, ErrMismatch).
	Parsed   statement.Statement
	ParseErr error
	// SigErr is reading <object>.sig (store.ErrNotFound when missing).
	SigErr error
	// KeysFrom says where the keys checked against came from ("" when
	// there were none: the signature was not checked).
	KeysFrom string
	// Signer is the fingerprint of the key whose signature verified;
	// VerifyErr why none did (statement.ErrBadSignature, ErrOtherKey).
	Signer    string
	VerifyErr error
	// Requests is how many reads ReadStatement made.
	Requests int
}

// ErrNoKeys means the keys to check a signature against could not be read.
var ErrNoKeys = errors.New("cannot read the host public key")

// Signed reports whether the statement carries a good signature.
func (s Statement) Signed() bool { return s.Signer != "" }

// ReadStatement reads and checks the statement and signature of object
// (of size bytes, in host's folder st): two small GETs. keys are the host's
// public keys (current and retired); none means the signature cannot be
// checked, and keysFrom says where they came from. skipSig skips reading a
// signature that a listing already showed is not there.
func ReadStatement(ctx context.Context, st store.Store, host, object string, size int64, keys openpgp.EntityList, keysFrom string, skipSig bool) Statement {
	s := Statement{Object: object}
	plugin.Doing(ctx, "reading %s%s from %s", object, statement.SidecarSuffix, st)
	data, err := store.ReadRange(ctx, st, object+statement.SidecarSuffix, 0, statement.MaxSize+1)
	s.Requests++
	if err != nil {
		s.Err = err
		return s
	}
	if s.Parsed, s.ParseErr = statement.Parse(data, object); s.ParseErr == nil {
		s.ParseErr = s.Parsed.Check(host, size)
	}
	if s.ParseErr != nil {
		return s
	}
	if skipSig {
		s.SigErr = fmt.Errorf("%s%s: %w", object, statement.SignatureSuffix, store.ErrNotFound)
		return s
	}
	plugin.Doing(ctx, "reading %s%s from %s", object, statement.SignatureSuffix, st)
	sig, err := store.ReadRange(ctx, st, object+statement.SignatureSuffix, 0, statement.MaxSize+1)
	s.Requests++
	if err != nil {
		s.SigErr = err
		return s
	}
	if len(keys) == 0 {
		return s
	}
	s.KeysFrom = keysFrom
	signer, err := statement.Verify(data, sig, keys)
	if err != nil {
		s.VerifyErr = err
		return s
	}
	s.Signer = crypt.Fingerprint(signer)
	return s
}

// StatementWording is how JudgeStatement words its findings for a caller.
type StatementWording struct {
	// Name is the object as messages name it ("web1/<name>").
	Name string
	// Where is the store, for messages.
	Where string
	// Fix is what a host does about a bad or missing statement ("run
	// backup_runner backup", "run backup_runner backup on web1").
	Fix string
	// Unsigned is the state of a legacy (unsigned) statement: WARNING
	// where a legacy backup may be the newest, CRITICAL where only a
	// signed one may be.
	Unsigned plugin.State
	// MissingState is the state of a missing statement.
	MissingState plugin.State
}

// JudgeStatement raises what a Statement says: missing, unreadable, not a
// statement, not matching the object, unsigned, badly or foreign-signed,
// or (notes) signed by the host key. It returns true when the statement
// vouches for the object (a good signature, or a legacy one where allowed,
// or one whose signature could not be checked for want of keys).
//
// The cases are in order of precedence: nothing can be said of a signature
// before its statement was read and matched the object.
func JudgeStatement(r *plugin.Result, s Statement, w StatementWording) bool {
	side := w.Name + statement.SidecarSuffix
	sig := w.Name + statement.SignatureSuffix
	switch {
	case errors.Is(s.Err, store.ErrNotFound):
		r.Raise(w.MissingState, fmt.Sprintf("the statement %s is missing from %s (deleted, or the upload was cut short): %s", side, w.Where, w.Fix))
		return false
	case s.Err != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read the statement %s: %v (check the read credentials)", side, s.Err))
		return false
	case s.ParseErr != nil:
		r.Raise(plugin.Critical, fmt.Sprintf("the statement %s in %s cannot vouch for the object: %v: %s and find out who wrote it", side, w.Where, s.ParseErr, w.Fix))
		return false
	case s.Parsed.Legacy && (s.SigErr == nil || errors.Is(s.SigErr, store.ErrNotFound)):
		r.Raise(w.Unsigned, fmt.Sprintf("the backup %s is unsigned (a one-line sidecar, from a drym before signed statements): upgrade drym on the host and %s", w.Name, w.Fix))
		return w.Unsigned != plugin.Critical
	case errors.Is(s.SigErr, store.ErrNotFound):
		r.Raise(plugin.Critical, fmt.Sprintf("the signature %s is missing from %s: the statement is unproven: %s and find out who removed it", sig, w.Where, w.Fix))
		return false
	case s.SigErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read the signature %s: %v (check the read credentials)", sig, s.SigErr))
		return false
	case s.KeysFrom == "":
		r.Addf("statement %s: host %s, %d bytes, sha256 %.16s…; signature present, not checked (no host public key known)", side, s.Parsed.Host, s.Parsed.Size, s.Parsed.SHA256)
		return true
	case errors.Is(s.VerifyErr, ErrNoKeys):
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot check the signature %s: %v (the check runs as user nagios: make the public key readable by group nagios)", sig, s.VerifyErr))
		return false
	case errors.Is(s.VerifyErr, statement.ErrOtherKey):
		r.Raise(plugin.Critical, fmt.Sprintf("%s is signed by a key that is not the host key (%s): it is not the host's own backup: find out who wrote it, then %s", sig, s.KeysFrom, w.Fix))
		return false
	case s.VerifyErr != nil:
		r.Raise(plugin.Critical, fmt.Sprintf("%s does not verify against the host key (%s): %v: the statement was altered: find out who wrote it, then %s", sig, s.KeysFrom, s.VerifyErr, w.Fix))
		return false
	}
	r.Addf("statement %s: host %s, %d bytes, sha256 %.16s…, signed by %s (%s)", side, s.Parsed.Host, s.Parsed.Size, s.Parsed.SHA256, short(s.Signer), s.KeysFrom)
	return true
}

// short is the first 16 digits of a fingerprint: enough to tell keys apart.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}
