// Package crypt creates drym's host keys and encrypts and decrypts backup
// streams with OpenPGP.
//
// Everything here is chosen so that Debian's gpg 2.2 can decrypt a drym backup
// on a machine that has nothing but the escrowed key: v4 keys with legacy
// Curve25519 (EdDSA primary, ECDH cv25519 subkey), and SEIPDv1 packets with an
// MDC, never the AEAD/SEIPDv2 packets gpg 2.2 does not read.
package crypt

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/drym-backup/drym/internal/safefile"
)

// config is the one packet.Config every drym operation uses.
func config() *packet.Config {
	return &packet.Config{
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone, // zstd already did it
		Algorithm:              packet.PubKeyAlgoEdDSA,
		Curve:                  packet.Curve25519,
		// AEADConfig stays nil: SEIPDv1 only, which gpg 2.2 decrypts.
	}
}

// Generate creates a host key for host: a v4 EdDSA/cv25519 key without
// passphrase (cron must be able to use it) and without expiry.
func Generate(host string) (*openpgp.Entity, error) {
	c := config()
	c.Time = time.Now
	e, err := openpgp.NewEntity("drym host key "+host, "", "drym@"+host, c)
	if err != nil {
		return nil, fmt.Errorf("cannot generate host key: %w", err)
	}
	return e, nil
}

// Fingerprint is the upper-case hex v4 fingerprint (40 digits) of a key.
func Fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
}

// ArmorSecret returns the armored secret key (primary and subkeys).
func ArmorSecret(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, fmt.Errorf("cannot serialize secret key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// ArmorPublic returns the armored public key.
func ArmorPublic(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, fmt.Errorf("cannot serialize public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// WriteKeyFiles writes the secret key to secretPath with mode 0600 from the
// moment the file exists (O_CREATE|O_EXCL with the mode, so there is no window
// with a wider mode and an existing key is never replaced), and the public key
// to publicPath with mode 0644; then it fsyncs their directories, so the
// new names survive a crash too.
func WriteKeyFiles(e *openpgp.Entity, secretPath, publicPath string) error {
	sec, err := ArmorSecret(e)
	if err != nil {
		return err
	}
	pub, err := ArmorPublic(e)
	if err != nil {
		return err
	}
	if err := writeExcl(secretPath, sec, 0o600); err != nil {
		return err
	}
	if err := writeExcl(publicPath, pub, 0o644); err != nil {
		return err
	}
	if err := safefile.SyncDir(filepath.Dir(secretPath)); err != nil {
		return err
	}
	if d := filepath.Dir(publicPath); d != filepath.Dir(secretPath) {
		return safefile.SyncDir(d)
	}
	return nil
}

func writeExcl(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	// The umask may have narrowed the mode; it must not be wider, and a
	// public key must be readable by the nagios user.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return f.Close()
}

// MaxKeyFileSize bounds key files read: real ones are a few KiB.
const MaxKeyFileSize = 1 << 20

// ReadKeyFile reads an armored (or binary) key file holding one or more keys.
// Error messages name the file, never the key material.
func ReadKeyFile(path string) (openpgp.EntityList, error) {
	data, err := safefile.ReadFile(path, MaxKeyFileSize)
	if err != nil {
		return nil, err
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// ParseKeys parses armored or binary OpenPGP keys.
func ParseKeys(data []byte) (openpgp.EntityList, error) {
	var keys openpgp.EntityList
	var err error
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		keys, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		keys, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("not a readable OpenPGP key: %v", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("no OpenPGP key in it")
	}
	return keys, nil
}

// Encrypter is the writer Encrypt returns.
type Encrypter interface {
	io.WriteCloser
	// KeyIDs returns the key IDs (KeyID) of the public-key encrypted
	// session key packets the encrypter wrote, in order.
	KeyIDs() []string
}

// Encrypt returns a writer that encrypts what is written to it to every key
// in to, writing the OpenPGP message (binary, SEIPDv1 with MDC, AES-256) to w.
// Close flushes the final packet; it does not close w.
func Encrypt(w io.Writer, to []*openpgp.Entity) (Encrypter, error) {
	if len(to) == 0 {
		return nil, errors.New("no recipient keys")
	}
	// The same packets openpgp.Encrypt(w, to, nil, &FileHints{IsBinary:
	// true}, config()) writes, several times faster (seipd.go).
	pt, err := newSEIPDWriter(w, to, config())
	if err != nil {
		return nil, fmt.Errorf("cannot start encryption: %w", err)
	}
	return pt, nil
}

// ErrIntegrity means the encrypted data was modified or truncated: the
// modification detection code (MDC) did not match, or the stream ended early.
var ErrIntegrity = errors.New("integrity check failed: the backup object was modified or truncated")

// ErrNoKey means none of the keys given can decrypt the message.
var ErrNoKey = errors.New("not encrypted to this host's key")

type verifyingReader struct {
	r  io.Reader
	md *openpgp.MessageDetails
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if err == nil || err == io.EOF {
		if err == io.EOF && v.md.SignatureError != nil {
			return n, fmt.Errorf("%w: %v", ErrIntegrity, v.md.SignatureError)
		}
		return n, err
	}
	return n, fmt.Errorf("%w: %s", ErrIntegrity, classify(err))
}

// classify turns go-crypto's errors into words an operator can act on.
func classify(err error) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the object is truncated"
	case errors.Is(err, pgperrors.ErrMDCHashMismatch), errors.Is(err, pgperrors.ErrMDCMissing):
		return "modification detection code mismatch (the object was altered)"
	}
	var se pgperrors.StructuralError
	if errors.As(err, &se) {
		return "not a valid OpenPGP message: " + string(se)
	}
	return err.Error()
}
