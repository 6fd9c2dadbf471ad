// Package statement is what a host says about each backup it made, signed
// with its host key: the object's name, the host, its size and its SHA-256.
//
// It is stored beside the object as <name>.sha256, still in sha256sum format
// (`sha256sum -c` ignores the comment lines that carry the facts), with a
// detached, armored OpenPGP signature over those exact bytes as <name>.sig.
// A reader can then trust an object before reading a byte of it, and stock
// tools can check it too:
//
//	gpg --verify <name>.sig <name>.sha256 && sha256sum -c <name>.sha256
//
// The signature is what makes a backup the host's own: SEIPD's modification
// detection code is no MAC, so anyone holding the host's public key (it is in
// the escrow zip and world-readable on the host) can make an object that
// decrypts and verifies. Only the host key can sign the statement.
//
// The format is in docs/REFERENCE.md#backup-objects.
package statement

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Suffixes of the two objects stored beside a backup object.
const (
	SidecarSuffix   = ".sha256"
	SignatureSuffix = ".sig"
)

// Version is the statement format this build writes and reads.
const Version = 1

// header is the first line of a signed statement.
var header = "# drym backup statement " + strconv.Itoa(Version)

// MaxSize bounds what a reader accepts for a statement or a signature: real
// ones are a few hundred bytes.
const MaxSize = 16 << 10

// Statement is the facts a host vouches for about one backup object.
type Statement struct {
	Host   string
	Object string // the name within the host's folder: <time>-<hex>.tar.zst.gpg
	Size   int64
	SHA256 string // lower-case hex
	// Legacy is true for a sidecar written before drym signed its backups:
	// a bare "<sha256>  <name>" line, without host or size.
	Legacy bool
}

// Errors a caller tells apart. A legacy sidecar has no signature; every
// other failure means the statement cannot be trusted.
var (
	ErrMalformed    = errors.New("not a drym backup statement")
	ErrMismatch     = errors.New("the statement does not match the object")
	ErrUnsigned     = errors.New("the backup is not signed")
	ErrBadSignature = errors.New("bad signature")
	ErrOtherKey     = errors.New("signed by a key that is not the host key")
)

// Marshal renders s as it is stored in <name>.sha256.
func (s Statement) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n# host %s\n# size %d\n%s  %s\n", header, s.Host, s.Size, strings.ToLower(s.SHA256), s.Object)
	return b.Bytes()
}

// Parse reads a statement (or a legacy one-line sidecar) and checks that it
// names object.
func Parse(data []byte, object string) (Statement, error) {
	if len(data) > MaxSize {
		return Statement{}, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxSize)
	}
	var s Statement
	sc := bufio.NewScanner(bytes.NewReader(data))
	sawHeader, sawSum := false, false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "":
			continue
		case sawSum:
			return Statement{}, fmt.Errorf("%w: line %d follows the checksum line", ErrMalformed, n)
		case strings.HasPrefix(line, "#"):
			if n == 1 {
				if line != header {
					return Statement{}, fmt.Errorf("%w: first line %q (this drym reads %q)", ErrMalformed, trunc(line), header)
				}
				sawHeader = true
				continue
			}
			if !sawHeader {
				return Statement{}, fmt.Errorf("%w: a comment before the header", ErrMalformed)
			}
			key, val, _ := strings.Cut(strings.TrimPrefix(line, "# "), " ")
			switch key {
			case "host":
				s.Host = val
			case "size":
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil || n < 0 {
					return Statement{}, fmt.Errorf("%w: bad size %q", ErrMalformed, trunc(val))
				}
				s.Size = n
			default:
				// Later versions may add facts; they never change these.
			}
		default:
			sum, name, ok := strings.Cut(line, "  ")
			if !ok || len(sum) != 64 || strings.Trim(strings.ToLower(sum), "0123456789abcdef") != "" {
				return Statement{}, fmt.Errorf("%w: line %d is not \"<sha256>  <name>\"", ErrMalformed, n)
			}
			s.SHA256, s.Object, sawSum = strings.ToLower(sum), strings.TrimPrefix(name, "*"), true
		}
	}
	if err := sc.Err(); err != nil {
		return Statement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !sawSum {
		return Statement{}, fmt.Errorf("%w: no checksum line", ErrMalformed)
	}
	if s.Object != object {
		return Statement{}, fmt.Errorf("%w: it names %q, not %q", ErrMismatch, trunc(s.Object), object)
	}
	if !sawHeader {
		s.Legacy = true
		return s, nil
	}
	if s.Host == "" {
		return Statement{}, fmt.Errorf("%w: no host", ErrMalformed)
	}
	return s, nil
}

// Check compares a parsed statement with what the reader knows: the host
// whose folder the object is in, and (when known, ≥ 0) the object's size.
func (s Statement) Check(host string, size int64) error {
	if !s.Legacy && s.Host != host {
		return fmt.Errorf("%w: it is for host %q, the object is in %q's folder", ErrMismatch, trunc(s.Host), host)
	}
	if !s.Legacy && size >= 0 && s.Size != size {
		return fmt.Errorf("%w: it says %d bytes, the object has %d", ErrMismatch, s.Size, size)
	}
	return nil
}

func config() *packet.Config {
	return &packet.Config{DefaultHash: crypto.SHA256}
}

// Sign returns the armored detached signature of data by key's primary key.
func Sign(data []byte, key *openpgp.Entity) ([]byte, error) {
	if key == nil || key.PrivateKey == nil {
		return nil, errors.New("signing the backup statement: no secret host key")
	}
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, key, bytes.NewReader(data), config()); err != nil {
		return nil, fmt.Errorf("signing the backup statement: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Verify checks that sig is a good signature over data by one of keys (the
// host key and its retired predecessors) and returns the signing key.
func Verify(data, sig []byte, keys openpgp.EntityList) (*openpgp.Entity, error) {
	if len(sig) == 0 {
		return nil, ErrUnsigned
	}
	if len(sig) > MaxSize {
		return nil, fmt.Errorf("%w: the signature is larger than %d bytes", ErrBadSignature, MaxSize)
	}
	check := openpgp.CheckDetachedSignature
	if bytes.Contains(sig, []byte("-----BEGIN PGP SIGNATURE")) {
		check = openpgp.CheckArmoredDetachedSignature
	}
	signer, err := check(keys, bytes.NewReader(data), bytes.NewReader(sig), config())
	switch {
	case err == nil:
		return signer, nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return nil, ErrOtherKey
	default:
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
}

// Issuer names the key that made sig: its fingerprint (40 upper-hex
// digits), or its key ID (16) when the signature carries no fingerprint,
// for messages about a signature by another key; "" when sig is not a
// readable signature.
func Issuer(sig []byte) string {
	var r io.Reader = bytes.NewReader(sig)
	if bytes.Contains(sig, []byte("-----BEGIN PGP SIGNATURE")) {
		b, err := armor.Decode(r)
		if err != nil {
			return ""
		}
		r = b.Body
	}
	p, err := packet.Read(r)
	if err != nil {
		return ""
	}
	s, ok := p.(*packet.Signature)
	switch {
	case !ok:
		return ""
	case len(s.IssuerFingerprint) > 0:
		return strings.ToUpper(hex.EncodeToString(s.IssuerFingerprint))
	case s.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *s.IssuerKeyId)
	}
	return ""
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
