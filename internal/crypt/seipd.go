package crypt

// A streaming OpenPGP encrypter for the one message shape drym writes:
// public-key encrypted session key packets, then a SEIPDv1 packet (RFC 4880
// §5.13: OpenPGP CFB without resync, MDC) holding one binary literal data
// packet, both streamed with partial body lengths. This is the packet
// sequence go-crypto's openpgp.Encrypt writes for drym's config (and what gpg
// 2.2 reads); it exists because go-crypto's CFB encrypts one byte at a time,
// which made encryption the slowest stage of a backup. Here whole 16-byte
// blocks are XORed as two 64-bit words, and the ciphertext leaves in
// 1 MiB partial-length chunks, one Write each.
//
// OpenPGP CFB without resync is plain CFB with an all-zero IV over
// prefix || plaintext, where prefix is 16 random bytes followed by a repeat of
// their last two (RFC 4880 §13.9 with step 7 omitted, as SEIPD requires).

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const (
	tagLiteral = 11
	tagSEIPD   = 18
	tagMDC     = 19
	// partialLog: every partial body chunk is 2^partialLog bytes (RFC 4880
	// §4.2.2.4 allows powers of two; the first must be ≥ 512 bytes).
	partialLog  = 20
	partialSize = 1 << partialLog
)

// cfb is CFB encryption with a cipher.Block, a block at a time with 64-bit
// XORs. The stream state is the ciphertext block being built (iv) and how
// much of the keystream block ks has been used.
type cfb struct {
	b    cipher.Block
	iv   [16]byte // the last (or partial current) ciphertext block
	ks   [16]byte // keystream for the current block: E(previous ciphertext block)
	used int      // bytes of ks consumed
}

func newCFB(b cipher.Block) *cfb {
	c := &cfb{b: b}
	b.Encrypt(c.ks[:], c.iv[:]) // all-zero IV
	return c
}

// xor encrypts src into dst (same length; they may be the same slice).
func (c *cfb) xor(dst, src []byte) {
	// Finish a partial block byte by byte.
	for c.used != 0 && len(src) > 0 {
		v := src[0] ^ c.ks[c.used]
		dst[0] = v
		c.iv[c.used] = v
		c.used++
		src, dst = src[1:], dst[1:]
		if c.used == 16 {
			c.b.Encrypt(c.ks[:], c.iv[:])
			c.used = 0
		}
	}
	// Whole blocks: this loop is the encryption stage's hot path. CFB
	// encryption is serial (each block needs the previous ciphertext), so
	// its speed is AES latency plus as little else as possible.
	k0 := binary.LittleEndian.Uint64(c.ks[0:])
	k1 := binary.LittleEndian.Uint64(c.ks[8:])
	for len(src) >= 16 {
		v0 := binary.LittleEndian.Uint64(src[0:]) ^ k0
		v1 := binary.LittleEndian.Uint64(src[8:]) ^ k1
		binary.LittleEndian.PutUint64(c.iv[0:], v0)
		binary.LittleEndian.PutUint64(c.iv[8:], v1)
		binary.LittleEndian.PutUint64(dst[0:], v0)
		binary.LittleEndian.PutUint64(dst[8:], v1)
		c.b.Encrypt(c.ks[:], c.iv[:])
		k0 = binary.LittleEndian.Uint64(c.ks[0:])
		k1 = binary.LittleEndian.Uint64(c.ks[8:])
		src, dst = src[16:], dst[16:]
	}
	for i := range src {
		v := src[i] ^ c.ks[c.used]
		dst[i] = v
		c.iv[c.used] = v
		c.used++
	}
}

// seipdWriter is the io.WriteCloser Encrypt returns.
type seipdWriter struct {
	w  io.Writer
	sl sealer // the CFB encryption and the MDC hash
	// out holds one outer partial chunk: out[0] is its length octet, then
	// up to partialSize bytes of SEIPD body (ciphertext).
	out  []byte
	outN int // body bytes in out
	// lit holds the start of the literal packet's current partial chunk,
	// not yet encrypted (see Write).
	lit []byte
	// scratch holds small plaintext pieces (headers) on their way to xor.
	scratch [8]byte
	err     error
	closed  bool
	// keyIDs names the session key packets written (see KeyIDs).
	keyIDs []string
}

// KeyIDs returns the key IDs of the public-key encrypted session key packets
// written, in order, as 16 upper-case hex digits: the keys whose secret
// decrypts the message (encryption subkeys, as `gpg --list-packets` shows
// them).
func (s *seipdWriter) KeyIDs() []string { return append([]string(nil), s.keyIDs...) }

// cipherFor picks the cipher go-crypto would: AES-256 unless a recipient's
// preferences rule it out, then AES-128 (which every OpenPGP implementation
// must support).
func cipherFor(to []*openpgp.Entity) packet.CipherFunction {
	for _, e := range to {
		sig, _ := e.PrimarySelfSignature()
		if sig == nil {
			continue
		}
		ok := false
		for _, c := range sig.PreferredSymmetric {
			if packet.CipherFunction(c) == packet.CipherAES256 {
				ok = true
			}
		}
		if !ok {
			return packet.CipherAES128
		}
	}
	return packet.CipherAES256
}

// newSEIPDWriter writes the session key packets for to, the SEIPD and
// literal packet headers and the encrypted prefix, and returns the writer
// for the plaintext.
func newSEIPDWriter(w io.Writer, to []*openpgp.Entity, c *packet.Config) (*seipdWriter, error) {
	cf := cipherFor(to)
	key := make([]byte, cf.KeySize())
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range to {
		k, ok := e.EncryptionKey(c.Now())
		if !ok {
			return nil, fmt.Errorf("key %s has no valid encryption subkey", strconv.FormatUint(e.PrimaryKey.KeyId, 16))
		}
		if err := packet.SerializeEncryptedKeyAEAD(w, k.PublicKey, cf, false, key, c); err != nil {
			return nil, err
		}
		ids = append(ids, KeyID(k.PublicKey.KeyId))
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	s := &seipdWriter{
		w: w, sl: sl,
		out: make([]byte, 1+partialSize), lit: make([]byte, 0, partialSize),
		keyIDs: ids,
	}
	// The SEIPD packet: new-format tag, then its body in partial chunks,
	// starting with version 1.
	if _, err := w.Write([]byte{0xC0 | tagSEIPD}); err != nil {
		return nil, err
	}
	s.body([]byte{1})
	var prefix [18]byte
	if _, err := rand.Read(prefix[:16]); err != nil {
		return nil, err
	}
	prefix[16], prefix[17] = prefix[14], prefix[15]
	s.plain(prefix[:])
	// The literal data packet inside: tag, then its body in partial chunks,
	// starting with format 'b', an empty file name and a zero date (what
	// go-crypto writes for FileHints{IsBinary: true}).
	s.plain([]byte{0xC0 | tagLiteral})
	s.lit = append(s.lit, 'b', 0, 0, 0, 0, 0)
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

// How put transforms bytes on their way into the SEIPD body.
const (
	putAsIs      = iota // not encrypted, not hashed: the version octet
	putSealed           // hashed into the MDC and encrypted: the plaintext
	putEncrypted        // encrypted only: the MDC packet
)

// body appends SEIPD body bytes that are not encrypted (the version octet).
func (s *seipdWriter) body(b []byte) { s.put(b, putAsIs) }

// put appends b to the SEIPD body, transformed as how says, writing a
// partial chunk whenever one is full.
func (s *seipdWriter) put(b []byte, how int) {
	for len(b) > 0 && s.err == nil {
		n := min(len(b), partialSize-s.outN)
		dst := s.out[1+s.outN : 1+s.outN+n]
		switch how {
		case putSealed:
			s.sl.seal(dst, b[:n])
		case putEncrypted:
			s.sl.encrypt(dst, b[:n])
		default:
			copy(dst, b[:n])
		}
		s.outN += n
		b = b[n:]
		if s.outN == partialSize {
			s.out[0] = 0xE0 | partialLog
			_, s.err = s.w.Write(s.out)
			s.outN = 0
		}
	}
}

// plain hashes plaintext into the MDC and encrypts it straight into out.
func (s *seipdWriter) plain(b []byte) { s.put(b, putSealed) }

var errClosed = errors.New("crypt: write after Close")

// Write encrypts b as literal data. A partial length octet promises
// exactly partialSize bytes, so an inner chunk's octet is emitted only once
// the chunk is known to be full; until then its first bytes wait in lit. In
// the steady state (1 MiB writes) only the few bytes by which the chunks are
// out of step with the writes are copied; the rest is encrypted in place.
func (s *seipdWriter) Write(b []byte) (int, error) {
	if s.closed {
		return 0, errClosed
	}
	n := 0
	for len(b) > 0 && s.err == nil {
		need := partialSize - len(s.lit)
		if len(b) < need {
			s.lit = append(s.lit, b...)
			n += len(b)
			break
		}
		s.scratch[0] = 0xE0 | partialLog
		s.plain(s.scratch[:1])
		s.plain(s.lit)
		s.plain(b[:need])
		s.lit = s.lit[:0]
		n += need
		b = b[need:]
	}
	if s.err != nil {
		return n, s.err
	}
	return n, nil
}

// lengthOctets is the new-format length of a final (non-partial) chunk.
func lengthOctets(buf []byte, n int) []byte {
	switch {
	case n < 192:
		return append(buf, byte(n))
	case n < 8384:
		n -= 192
		return append(buf, byte(n>>8)+192, byte(n))
	default:
		return append(buf, 0xFF, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// Close ends the literal packet and appends the MDC packet, then ends the
// SEIPD packet. It does not close the underlying writer.
func (s *seipdWriter) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	// The literal packet's final chunk: what waits in lit, with its
	// length (possibly 0).
	s.plain(lengthOctets(s.scratch[:0], len(s.lit)))
	s.plain(s.lit)
	var trailer [2 + sha1.Size]byte
	trailer[0], trailer[1] = 0xC0|tagMDC, sha1.Size
	s.sl.hash(trailer[:2])
	sum := s.sl.sum()
	copy(trailer[2:], sum[:])
	s.put(trailer[:], putEncrypted) // the MDC is not hashed into itself
	if s.err != nil {
		return s.err
	}
	// The SEIPD packet's final chunk carries what is left in out.
	hdr := lengthOctets(s.scratch[:0], s.outN)
	if _, err := s.w.Write(hdr); err != nil {
		s.err = err
		return err
	}
	if _, err := s.w.Write(s.out[1 : 1+s.outN]); err != nil {
		s.err = err
		return err
	}
	return nil
}
