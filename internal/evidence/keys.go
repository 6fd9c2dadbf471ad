// Package evidence is what drym's checks prove from the store itself rather
// than from the files a host writes about itself: a backup's signed
// statement, the keys its session key is encrypted to, whether an escrowed
// key really opens it, and the newest backup of a host found with a
// constant number of requests however many objects are stored.
//
// Gathering functions do the I/O (bounded, through store.Pager); the
// judging functions are pure and raise on a plugin.Result, so the host-side
// checks (--remote), the storage-side checks (--host) and the fleet sweep
// word the same finding the same way.
package evidence

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
)

// HostKeys reads the host's public key (beside keyFile) and the public
// halves of its retired keys (keyFile.<fp16>.retired-<time>.pub): a backup
// made before a rotation is signed by a retired key.
func HostKeys(keyFile string) (openpgp.EntityList, error) {
	keys, err := crypt.ReadKeyFile(config.PublicKeyPath(keyFile))
	if err != nil {
		return nil, err
	}
	retired, _ := filepath.Glob(keyFile + ".*.retired-*.pub")
	for _, p := range retired {
		if old, err := crypt.ReadKeyFile(p); err == nil {
			keys = append(keys, old...)
		}
	}
	return keys, nil
}

// PinnedKeys reads the pinned public keys of host from dir: <host>.asc or
// <host>.pub.asc (several keys in one file are the current and retired
// ones). fs.ErrNotExist when neither file exists.
func PinnedKeys(dir, host string) (openpgp.EntityList, string, error) {
	for _, name := range []string{host + ".pub.asc", host + ".asc"} {
		p := filepath.Join(dir, name)
		keys, err := crypt.ReadKeyFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return keys, p, err
	}
	return nil, "", fmt.Errorf("no %s.pub.asc or %s.asc in %s: %w", host, host, dir, fs.ErrNotExist)
}

// canEncrypt reports whether a (sub)key signature allows encryption.
func canEncrypt(flagsValid, comms, storage bool) bool {
	return flagsValid && (comms || storage)
}

// EncryptionKeyIDs returns the IDs of every encryption-capable key of e:
// its subkeys flagged for encryption, and the primary key when it is.
// These are the keys a backup to e may be encrypted to.
func EncryptionKeyIDs(e *openpgp.Entity) []uint64 {
	var ids []uint64
	if sig, _ := e.PrimarySelfSignature(); sig != nil && canEncrypt(sig.FlagsValid, sig.FlagEncryptCommunications, sig.FlagEncryptStorage) {
		ids = append(ids, e.PrimaryKey.KeyId)
	}
	for _, s := range e.Subkeys {
		if s.Sig != nil && canEncrypt(s.Sig.FlagsValid, s.Sig.FlagEncryptCommunications, s.Sig.FlagEncryptStorage) {
			ids = append(ids, s.PublicKey.KeyId)
		}
	}
	return ids
}

// SecretEncryptionKeyIDs returns those of EncryptionKeyIDs(e) whose secret
// is in e (not a stub, as gpg exports a subkey whose secret it lacks).
func SecretEncryptionKeyIDs(e *openpgp.Entity) []uint64 {
	var ids []uint64
	if sig, _ := e.PrimarySelfSignature(); sig != nil && canEncrypt(sig.FlagsValid, sig.FlagEncryptCommunications, sig.FlagEncryptStorage) &&
		e.PrivateKey != nil && !e.PrivateKey.Dummy() {
		ids = append(ids, e.PrimaryKey.KeyId)
	}
	for _, s := range e.Subkeys {
		if s.Sig != nil && canEncrypt(s.Sig.FlagsValid, s.Sig.FlagEncryptCommunications, s.Sig.FlagEncryptStorage) &&
			s.PrivateKey != nil && !s.PrivateKey.Dummy() {
			ids = append(ids, s.PublicKey.KeyId)
		}
	}
	return ids
}

// FormatID renders a key ID as the status files and gpg show it.
func FormatID(id uint64) string { return fmt.Sprintf("%016X", id) }

// FormatIDs renders key IDs, comma-separated.
func FormatIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = FormatID(id)
	}
	return strings.Join(s, ", ")
}

// ParseIDs parses 16-hex-digit key IDs (as status files and escrow records
// hold them).
func ParseIDs(hex []string) ([]uint64, error) {
	ids := make([]uint64, 0, len(hex))
	for _, h := range hex {
		id, err := strconv.ParseUint(h, 16, 64)
		if err != nil || len(h) != 16 {
			return nil, fmt.Errorf("%q is not a 16-hex-digit key ID", h)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Missing returns the IDs of want that are not in have.
func Missing(want, have []uint64) []uint64 {
	var out []uint64
	for _, id := range want {
		if !slices.Contains(have, id) {
			out = append(out, id)
		}
	}
	return out
}

// EscrowedKeyIDs returns the encryption key IDs an inspected escrow zip
// holds: those whose secret is in a bare secret key member, or, for a
// secret encrypted to the team (which only the team can open), those of
// the public key member.
func EscrowedKeyIDs(z *escrow.Facts) ([]uint64, error) {
	member := escrow.MemberSecret
	if z.SecretEncrypted {
		member = escrow.MemberPublic
	}
	keys, err := crypt.ParseKeys(z.Contents[member])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", member, err)
	}
	if z.SecretEncrypted {
		return EncryptionKeyIDs(keys[0]), nil
	}
	return SecretEncryptionKeyIDs(keys[0]), nil
}
