package crypt

// A streaming OpenPGP decrypter for the message shape drym (and gpg -e to a
// public key) writes: public-key encrypted session key packets, then a
// SEIPDv1 packet (CFB without resync, MDC). go-crypto parses the outer
// packets and decrypts the session key; the SEIPD body is decrypted here,
// whole blocks at a time, because go-crypto's OCFB decrypter XORs one byte at
// a time and was the slowest stage of a test restore.
//
// CFB decryption has no dependency chain: plaintext block i is ciphertext
// block i XOR E(ciphertext block i−1), so the AES calls of a whole buffer are
// independent and the CPU overlaps them. The plaintext inside (a literal data
// packet, possibly compressed or signed) is again parsed by go-crypto.
//
// Every other shape (SEIPDv2/AEAD, passphrase-encrypted, unencrypted,
// non-AES ciphers, anything go-crypto reports as malformed before the
// encrypted data starts) goes to go-crypto's own reader, replaying the few
// header bytes already read, so errors and semantics stay exactly as before.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxHeaderBytes bounds what is recorded for a replay before the encrypted
// data starts: real session key packets are a few hundred bytes each.
const maxHeaderBytes = 64 << 10

var errHeaderTooLong = errors.New("crypt: more than 64 KiB before the encrypted data")

// recorder keeps what is read from r until stop, so that go-crypto can be
// given the very same stream when the fast path does not apply.
type recorder struct {
	r   io.Reader
	buf []byte
	on  bool
}

func (c *recorder) Read(p []byte) (int, error) {
	if !c.on {
		return c.r.Read(p)
	}
	if len(c.buf)+len(p) > maxHeaderBytes {
		p = p[:max(0, maxHeaderBytes-len(c.buf))]
		if len(p) == 0 {
			return 0, errHeaderTooLong
		}
	}
	n, err := c.r.Read(p)
	c.buf = append(c.buf, p[:n]...)
	return n, err
}

// Decrypt returns a reader of the plaintext of the OpenPGP message in r. The
// integrity check (MDC) runs as the reader reaches the end: a reader that
// returns io.EOF has verified the whole message, and a modified or truncated
// message ends in an error wrapping ErrIntegrity instead.
func Decrypt(r io.Reader, keys openpgp.EntityList) (io.Reader, error) {
	rec := &recorder{r: r, on: true}
	plain, err := decryptFast(rec, keys)
	if errors.Is(err, errSlowPath) {
		rec.on = false
		return decryptGoCrypto(io.MultiReader(bytes.NewReader(rec.buf), r), keys)
	}
	return plain, err
}

var errSlowPath = errors.New("crypt: not the SEIPDv1 public-key shape")

// decryptFast reads the session key packets and the SEIPDv1 header, and
// returns errSlowPath for any other shape while rec still holds every byte
// read.
func decryptFast(rec *recorder, keys openpgp.EntityList) (io.Reader, error) {
	c := config()
	eks, se, err := readHeader(packet.NewReader(rec))
	if err != nil {
		return nil, err
	}
	blocks, ids, otherCipher := sessionCiphers(eks, keys, c)
	if len(blocks) == 0 {
		if len(eks) == 0 || otherCipher {
			return nil, errSlowPath
		}
		return nil, fmt.Errorf("%w (the object is for key(s) %s)", ErrNoKey, strings.Join(ids, ", "))
	}
	// Committed: from here on the bytes go straight through.
	rec.on, rec.buf = false, nil
	sr, err := newSEIPDReader(se.Contents, blocks...)
	if err != nil {
		return nil, err
	}
	md, err := openpgp.ReadMessage(sr, keys, nil, c)
	if err != nil {
		if errors.Is(err, ErrIntegrity) {
			return nil, err
		}
		// Authentic data that is not a message go-crypto reads, or
		// tampered data: only the MDC can tell which.
		if _, derr := io.Copy(io.Discard, sr); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("cannot decrypt: %s", classify(err))
	}
	return &fastReader{body: md.UnverifiedBody, md: md, sr: sr}, nil
}

// readHeader reads the public-key session key packets up to the SEIPDv1
// packet; any other shape is errSlowPath.
func readHeader(packets *packet.Reader) ([]*packet.EncryptedKey, *packet.SymmetricallyEncrypted, error) {
	var eks []*packet.EncryptedKey
	for {
		p, err := packets.Next()
		if err != nil {
			return nil, nil, errSlowPath
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			eks = append(eks, p)
		case *packet.SymmetricallyEncrypted:
			if !p.IntegrityProtected || p.Version != 1 {
				return nil, nil, errSlowPath
			}
			return eks, p, nil
		default:
			return nil, nil, errSlowPath
		}
	}
}

// sessionCiphers finds the session keys as go-crypto's ReadMessage does: by
// key ID, or every decryption key for an anonymous (wildcard) recipient.
// Every packet addressed to one of our keys is tried, not just the first
// that decrypts: anyone holding the public key can put a packet that
// decrypts to a wrong session key in front of the real one, and it must not
// hide it. The quick check of the SEIPD reader tells them apart. ids names
// every recipient for the error; otherCipher says a key decrypted to a
// cipher the fast path does not do.
func sessionCiphers(eks []*packet.EncryptedKey, keys openpgp.EntityList, c *packet.Config) (blocks []cipher.Block, ids []string, otherCipher bool) {
	for _, ek := range eks {
		ids = append(ids, fmt.Sprintf("%016X", ek.KeyId))
		switch ek.Algo {
		case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoElGamal, packet.PubKeyAlgoECDH,
			packet.PubKeyAlgoX25519, packet.PubKeyAlgoX448:
		default:
			continue
		}
		for _, k := range candidates(keys, ek) {
			if err := ek.Decrypt(k.PrivateKey, c); err != nil {
				continue
			}
			switch ek.CipherFunc {
			case packet.CipherAES128, packet.CipherAES192, packet.CipherAES256:
			default:
				otherCipher = true
				continue
			}
			if len(ek.Key) != ek.CipherFunc.KeySize() {
				continue
			}
			if b, err := aes.NewCipher(ek.Key); err == nil {
				blocks = append(blocks, b)
			}
		}
	}
	return blocks, ids, otherCipher
}

// fastReader ends the plaintext with the MDC's verdict.
type fastReader struct {
	body io.Reader
	md   *openpgp.MessageDetails
	sr   *seipdReader
	done bool
}

func (f *fastReader) Read(p []byte) (int, error) {
	if f.done {
		return 0, io.EOF
	}
	n, err := f.body.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if f.md.SignatureError != nil {
			return n, fmt.Errorf("%w: %v", ErrIntegrity, f.md.SignatureError)
		}
		// The literal data ended: read the rest of the encrypted data
		// (just the MDC, which sr holds back) so the integrity check runs.
		rest, err := io.Copy(io.Discard, f.sr)
		if err != nil {
			return n, err
		}
		// Nothing may sit between the literal data (or the signature
		// after it) and the MDC: gpg refuses such a message, and a
		// restore with drym and one with gpg must agree on what a backup
		// holds. (Inside a compressed packet, the decompressor may leave
		// the packet's last bytes unread, so that shape is not judged.)
		if rest > 0 && f.sr.firstTag != tagCompressed {
			return n, fmt.Errorf("%w: %d bytes of unexpected data between the literal data and the modification detection code (gpg refuses such a message too)", ErrIntegrity, rest)
		}
		f.done = true
		return n, io.EOF
	case errors.Is(err, ErrIntegrity):
		return n, err
	default:
		return n, fmt.Errorf("%w: %s", ErrIntegrity, classify(err))
	}
}

// tagCompressed is the compressed data packet.
const tagCompressed = 8

// mdcLen is the MDC packet that ends the SEIPD plaintext: tag 0xD3, length
// 0x14, and the SHA-1 of everything before it including those two octets.
const mdcLen = 2 + sha1.Size

// smallRead: reads shorter than this are served from a buffer (go-crypto
// reads packet headers an octet at a time).
const smallRead = 4096

// seipdReader decrypts a SEIPDv1 body and checks its MDC. It holds back the
// last mdcLen plaintext octets it has, since they may be the MDC packet.
type seipdReader struct {
	src  io.Reader
	cfb  cfbDec
	mdc  hash.Hash
	tail [mdcLen]byte
	tn   int
	err  error // sticky: io.EOF once verified, or an integrity error
	// small holds plaintext decrypted for short reads, from soff.
	small      []byte
	soff, slen int
	// firstTag is the packet tag of the first plaintext octet (the
	// literal data, or a compressed or signed wrapper around it).
	firstTag int
	seen     bool
}

func integrity(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrIntegrity}, args...)...)
}

// errMDC is the one verdict on altered data: a failed quick check says the
// same (see newSEIPDReader).
func errMDC() error {
	return integrity("modification detection code mismatch (the object was altered or truncated)")
}

// newSEIPDReader reads the random prefix (a block of random octets whose
// last two repeat: OpenPGP's quick check) and picks the session key, of
// those given, for which the quick check passes. When none passes the
// first is used anyway, and the message fails only at its end, at the MDC,
// with the MDC's words: a quick check that failed early and said so would
// tell whoever can submit altered messages whether two octets of their
// guess were right (an oracle against CFB).
func newSEIPDReader(src io.Reader, blocks ...cipher.Block) (*seipdReader, error) {
	s := &seipdReader{src: src, mdc: sha1.New(), firstTag: -1}
	bs := blocks[0].BlockSize()
	prefix := make([]byte, bs+2)
	if _, err := io.ReadFull(src, prefix); err != nil {
		return nil, integrity("%s", classify(noEOF(err)))
	}
	chosen := blocks[0]
	trial := make([]byte, len(prefix))
	for _, b := range blocks {
		var d cfbDec
		d.init(b)
		copy(trial, prefix)
		d.decrypt(trial)
		if trial[bs-2] == trial[bs] && trial[bs-1] == trial[bs+1] {
			chosen = b
			break
		}
	}
	s.cfb.init(chosen)
	s.cfb.decrypt(prefix)
	s.mdc.Write(prefix)
	return s, nil
}

// noEOF turns an early end into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (s *seipdReader) Read(p []byte) (int, error) {
	if s.soff < s.slen {
		n := copy(p, s.small[s.soff:s.slen])
		s.soff += n
		return n, nil
	}
	if len(p) >= smallRead {
		return s.read(p)
	}
	if s.small == nil {
		s.small = make([]byte, smallRead)
	}
	n, err := s.read(s.small)
	s.soff, s.slen = 0, n
	m := copy(p, s.small[:n])
	s.soff = m
	if m < n {
		return m, nil
	}
	return m, err
}

// read decrypts into p (len(p) > mdcLen) in place: the held-back tail
// first, then fresh ciphertext behind it.
func (s *seipdReader) read(p []byte) (int, error) {
	for {
		if s.err != nil {
			return 0, s.err
		}
		t := copy(p, s.tail[:s.tn])
		n, err := s.src.Read(p[t:])
		if n > 0 {
			s.cfb.decrypt(p[t : t+n])
		}
		total := t + n
		if err == io.EOF {
			return s.finish(p[:total])
		}
		if err != nil {
			s.err = integrity("%s", classify(err))
			return 0, s.err
		}
		keep := total - mdcLen
		if keep <= 0 {
			s.tn = copy(s.tail[:], p[:total])
			continue
		}
		s.first(p[0])
		s.mdc.Write(p[:keep])
		s.tn = copy(s.tail[:], p[keep:total])
		return keep, nil
	}
}

// finish checks the MDC at the end of the encrypted data; b is the rest of
// the plaintext, MDC packet included.
func (s *seipdReader) finish(b []byte) (int, error) {
	if len(b) < mdcLen {
		s.err = integrity("the object is truncated")
		return 0, s.err
	}
	keep := len(b) - mdcLen
	s.mdc.Write(b[:keep+2])
	trailer := b[keep:]
	sum := s.mdc.Sum(nil)
	if trailer[0] != 0xC0|tagMDC || trailer[1] != sha1.Size ||
		subtle.ConstantTimeCompare(sum, trailer[2:]) != 1 {
		s.err = errMDC()
		return 0, s.err
	}
	s.err = io.EOF
	if keep == 0 {
		return 0, io.EOF
	}
	s.first(b[0])
	return keep, nil
}

// first notes the tag of the first plaintext packet.
func (s *seipdReader) first(b byte) {
	if s.seen {
		return
	}
	s.seen = true
	if b&0x40 != 0 {
		s.firstTag = int(b & 0x3f)
	} else {
		s.firstTag = int(b>>2) & 0x0f
	}
}

// cfbDec is CFB decryption (all-zero IV) in place. Between calls, ks is the
// keystream for the current block, cur the ciphertext octets of it seen so
// far, used how many.
type cfbDec struct {
	b    cipher.Block
	ks   [16]byte
	cur  [16]byte
	used int
}

func (d *cfbDec) init(b cipher.Block) {
	d.b = b
	b.Encrypt(d.ks[:], d.cur[:])
}

func (d *cfbDec) step(b []byte) []byte {
	for d.used != 0 && len(b) > 0 {
		c := b[0]
		b[0] = c ^ d.ks[d.used]
		d.cur[d.used] = c
		d.used++
		b = b[1:]
		if d.used == 16 {
			d.b.Encrypt(d.ks[:], d.cur[:])
			d.used = 0
		}
	}
	return b
}

func (d *cfbDec) decrypt(b []byte) {
	b = d.step(b)
	if n := len(b) &^ 15; n > 0 {
		w := b[:n]
		var last, ks [16]byte
		copy(last[:], w[n-16:])
		// Backwards, so that block i−1 is still ciphertext when block i
		// needs it; the Encrypt calls do not depend on each other.
		for i := n - 16; i > 0; i -= 16 {
			d.b.Encrypt(ks[:], w[i-16:i])
			xor16(w[i:i+16], &ks)
		}
		xor16(w[:16], &d.ks)
		d.b.Encrypt(d.ks[:], last[:])
		b = b[n:]
	}
	for i := range b {
		c := b[i]
		b[i] = c ^ d.ks[d.used]
		d.cur[d.used] = c
		d.used++
	}
}

func xor16(b []byte, ks *[16]byte) {
	_ = b[15]
	binary.LittleEndian.PutUint64(b[0:], binary.LittleEndian.Uint64(b[0:])^binary.LittleEndian.Uint64(ks[0:]))
	binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^binary.LittleEndian.Uint64(ks[8:]))
}

// decryptGoCrypto is go-crypto's reader, for every message shape the fast
// path does not take.
func decryptGoCrypto(r io.Reader, keys openpgp.EntityList) (io.Reader, error) {
	md, err := openpgp.ReadMessage(r, keys, nil, config())
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			// ReadMessage consumed the key packets: their IDs are gone.
			return nil, fmt.Errorf("%w (the object is for another key)", ErrNoKey)
		}
		return nil, fmt.Errorf("cannot decrypt: %s", classify(err))
	}
	if !md.IsEncrypted {
		// A plain OpenPGP message in place of a backup proves nothing.
		return nil, errors.New("cannot decrypt: the object is not encrypted (plain OpenPGP data, not a drym backup)")
	}
	if md.IsSymmetricallyEncrypted && md.DecryptedWith.Entity == nil {
		return nil, errors.New("cannot decrypt: the object is symmetrically encrypted, not to a key")
	}
	return &verifyingReader{r: md.UnverifiedBody, md: md}, nil
}

// candidates are the keys that may decrypt ek's session key, as go-crypto's
// ReadMessage finds them: by key ID, or every decryption key for an
// anonymous (wildcard) recipient; only those with a usable secret.
func candidates(keys openpgp.EntityList, ek *packet.EncryptedKey) []openpgp.Key {
	var cands []openpgp.Key
	if ek.KeyId == 0 {
		cands = keys.DecryptionKeys()
	} else {
		cands = keys.KeysById(ek.KeyId)
	}
	usable := cands[:0:0]
	for _, k := range cands {
		if k.PrivateKey != nil && !k.PrivateKey.Encrypted {
			usable = append(usable, k)
		}
	}
	return usable
}
