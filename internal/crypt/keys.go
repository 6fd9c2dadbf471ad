package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// KeyID renders an OpenPGP key ID the way drym's status files and
// `gpg --list-packets` show it: 16 upper-case hex digits.
func KeyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// ShortFingerprint is the first 16 hex digits of a key's fingerprint: what
// escrow zip names and retired key files carry.
func ShortFingerprint(e *openpgp.Entity) string { return Fingerprint(e)[:16] }

// MaxHead bounds how much of the start of a message Recipients parses: the
// session key packets of a handful of recipients are a few hundred bytes.
const MaxHead = 64 << 10

// Recipients is what the session key packets at the start of an OpenPGP
// message say about who can decrypt it.
type Recipients struct {
	// KeyIDs are the key IDs (KeyID) of every public-key encrypted session
	// key packet, in order; "0000000000000000" is an anonymous recipient.
	KeyIDs []string
	// DecryptedBy is the first of the keys given whose secret decrypts a
	// session key, trying packets in order as Decrypt does: the key that
	// decrypts the message. Nil when none does.
	DecryptedBy *openpgp.Entity
}

// ReadRecipients parses the public-key encrypted session key packets at the
// start of the OpenPGP message whose first bytes are head (at most MaxHead
// are looked at), and finds which of keys decrypts it. It decrypts the
// session key only, never the message.
func ReadRecipients(head []byte, keys openpgp.EntityList) (Recipients, error) {
	if len(head) > MaxHead {
		head = head[:MaxHead]
	}
	var r Recipients
	var eks []*packet.EncryptedKey
	packets := packet.NewReader(bytes.NewReader(head))
	for {
		p, err := packets.Next()
		if err != nil {
			if len(eks) == 0 {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return r, errors.New("no session key packet: not an encrypted OpenPGP message")
				}
				return r, fmt.Errorf("not an OpenPGP message: %v", err)
			}
			break // the encrypted data follows, cut off by the end of head
		}
		ek, ok := p.(*packet.EncryptedKey)
		if !ok {
			break
		}
		eks = append(eks, ek)
		r.KeyIDs = append(r.KeyIDs, KeyID(ek.KeyId))
	}
	if len(eks) == 0 {
		return r, errors.New("no public-key encrypted session key packet")
	}
	c := config()
	for _, ek := range eks {
		for _, k := range candidates(keys, ek) {
			if err := ek.Decrypt(k.PrivateKey, c); err == nil {
				r.DecryptedBy = k.Entity
				return r, nil
			}
		}
	}
	return r, nil
}

// retiredTime is the UTC time in a retired key file's name.
const retiredTime = "20060102T150405Z"

// RetiredKeyPath is where `init --rotate-key` keeps a replaced host key:
// <keyFile>.<ShortFingerprint>.retired-<UTC time>, its public half the same
// with ".pub" appended.
func RetiredKeyPath(keyFile string, e *openpgp.Entity, at time.Time) string {
	return fmt.Sprintf("%s.%s.retired-%s", keyFile, ShortFingerprint(e), at.UTC().Format(retiredTime))
}

// RetiredKeyFiles returns the retired secret and public key files beside
// keyFile, newest retirement first. The glob also finds keys retired by
// drym versions that named them after the last 16 hex digits of the
// fingerprint.
func RetiredKeyFiles(keyFile string) (secret, public []string) {
	all, _ := filepath.Glob(keyFile + ".*.retired-*")
	// Newest first: the name ends in the retirement time.
	slices.SortFunc(all, func(a, b string) int {
		return strings.Compare(retiredSuffix(b), retiredSuffix(a))
	})
	for _, p := range all {
		if strings.HasSuffix(p, ".pub") {
			public = append(public, p)
		} else {
			secret = append(secret, p)
		}
	}
	return secret, public
}

func retiredSuffix(p string) string {
	_, after, _ := strings.Cut(filepath.Base(p), ".retired-")
	return after
}
