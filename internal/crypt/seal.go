package crypt

// A SEIPDv1 body is two transforms of one plaintext stream: OpenPGP CFB
// encryption, and the SHA-1 of the modification detection code (MDC). Both
// start at the random prefix and run in step until the MDC packet, which is
// hashed only up to its own header and then encrypted. A sealer does both.
//
// CFB encryption is serial: every block waits for the AES of the previous
// ciphertext block, so a core spends most of a backup's encrypt stage
// waiting on AES latency. On amd64 with AES-NI and the SHA extensions the
// SHA-1 of each 64 bytes runs inside that wait (seal_amd64.s, written by
// gen_sealasm.go), which makes the MDC almost free; anywhere else the two
// run one after the other.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/binary"
	"hash"
	"math/bits"
	"sync"
)

type sealer interface {
	// seal hashes src into the MDC and encrypts it into dst (as long as
	// src, not overlapping it).
	seal(dst, src []byte)
	// hash hashes p without encrypting it.
	hash(p []byte)
	// encrypt encrypts src into dst without hashing it.
	encrypt(dst, src []byte)
	// sum is the SHA-1 of what was hashed so far.
	sum() [sha1.Size]byte
}

// newSealer starts the CFB stream (AES, all-zero IV) and the MDC hash for
// the session key key.
func newSealer(key []byte) (sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if sealAsm && len(key) == 32 {
		return newFusedSealer(block, key), nil
	}
	return newPortableSealer(block), nil
}

func newPortableSealer(block cipher.Block) *portableSealer {
	return &portableSealer{cfb: newCFB(block), mdc: sha1.New()}
}

// newFusedSealer needs sealAsm and an AES-256 key.
func newFusedSealer(block cipher.Block, key []byte) *fusedSealer {
	return &fusedSealer{cfb: newCFB(block), rk: expandKey256(key), sha: newSHA1()}
}

// portableSealer hashes, then encrypts.
type portableSealer struct {
	cfb *cfb
	mdc hash.Hash
}

func (p *portableSealer) seal(dst, src []byte) {
	p.mdc.Write(src)
	p.cfb.xor(dst, src)
}

func (p *portableSealer) hash(b []byte)           { p.mdc.Write(b) }
func (p *portableSealer) encrypt(dst, src []byte) { p.cfb.xor(dst, src) }

func (p *portableSealer) sum() (s [sha1.Size]byte) {
	p.mdc.Sum(s[:0])
	return s
}

// fusedSealer runs whole 64-byte blocks through sealBlocks and the bytes
// around them through the portable CFB and a Go SHA-1 that shares its state.
type fusedSealer struct {
	cfb *cfb
	rk  [240]byte // AES-256 round keys, as AESENC takes them
	sha sha1State
}

func (f *fusedSealer) seal(dst, src []byte) {
	for len(src) > 0 {
		// The two streams are in step, so at a SHA-1 block boundary the CFB
		// is at a block boundary too; the check keeps a sealer that was
		// driven out of step correct, only slower.
		if f.sha.nbuf == 0 && f.cfb.used == 0 && len(src) >= 64 {
			n := len(src) &^ 63
			sealBlocks(&f.rk, &f.cfb.ks, &f.sha.h, dst[:n], src[:n])
			f.sha.n += uint64(n)
			dst, src = dst[n:], src[n:]
			continue
		}
		k := min(64-f.sha.nbuf, len(src))
		f.sha.write(src[:k])
		f.cfb.xor(dst[:k], src[:k])
		dst, src = dst[k:], src[k:]
	}
}

func (f *fusedSealer) hash(b []byte)           { f.sha.write(b) }
func (f *fusedSealer) encrypt(dst, src []byte) { f.cfb.xor(dst, src) }
func (f *fusedSealer) sum() [sha1.Size]byte    { return f.sha.sum() }

// sha1State is SHA-1 (FIPS 180-4) with its chaining value where sealBlocks
// can update it.
type sha1State struct {
	h    [5]uint32
	buf  [64]byte // a block's first nbuf bytes
	nbuf int
	n    uint64 // bytes written
}

func newSHA1() sha1State {
	return sha1State{h: [5]uint32{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}}
}

func (s *sha1State) write(p []byte) {
	s.n += uint64(len(p))
	if s.nbuf > 0 {
		k := copy(s.buf[s.nbuf:], p)
		s.nbuf += k
		p = p[k:]
		if s.nbuf < 64 {
			return
		}
		sha1Block(&s.h, s.buf[:])
		s.nbuf = 0
	}
	for len(p) >= 64 {
		sha1Block(&s.h, p[:64])
		p = p[64:]
	}
	s.nbuf = copy(s.buf[:], p)
}

func (s *sha1State) sum() (out [sha1.Size]byte) {
	d := *s
	var pad [64 + 8]byte
	pad[0] = 0x80
	padLen := 64 - int((d.n+8)%64) // 0x80 and zeros, up to 8 bytes short of a block
	binary.BigEndian.PutUint64(pad[padLen:], d.n*8)
	d.write(pad[:padLen+8])
	for i, v := range d.h {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
	return out
}

// sha1Block is the SHA-1 compression function for one 64-byte block.
func sha1Block(h *[5]uint32, p []byte) {
	var w [16]uint32
	for i := range w {
		w[i] = binary.BigEndian.Uint32(p[4*i:])
	}
	a, b, c, d, e := h[0], h[1], h[2], h[3], h[4]
	for i := range 80 {
		if i >= 16 {
			w[i&15] = bits.RotateLeft32(w[(i-3)&15]^w[(i-8)&15]^w[(i-14)&15]^w[i&15], 1)
		}
		var f, k uint32
		switch {
		case i < 20:
			f, k = b&c|^b&d, 0x5A827999
		case i < 40:
			f, k = b^c^d, 0x6ED9EBA1
		case i < 60:
			f, k = b&c|b&d|c&d, 0x8F1BBCDC
		default:
			f, k = b^c^d, 0xCA62C1D6
		}
		t := bits.RotateLeft32(a, 5) + f + e + k + w[i&15]
		a, b, c, d, e = t, a, bits.RotateLeft32(b, 30), c, d
	}
	h[0] += a
	h[1] += b
	h[2] += c
	h[3] += d
	h[4] += e
}

// expandKey256 is the AES-256 key schedule (FIPS 197 §5.2): 15 round keys,
// each four big-endian words, the byte order AESENC takes.
func expandKey256(key []byte) (rk [240]byte) {
	sbox := aesSbox()
	sub := func(w uint32) uint32 {
		return uint32(sbox[w>>24])<<24 | uint32(sbox[w>>16&0xff])<<16 | uint32(sbox[w>>8&0xff])<<8 | uint32(sbox[w&0xff])
	}
	var w [60]uint32
	for i := range 8 {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := 8; i < 60; i++ {
		t := w[i-1]
		switch i % 8 {
		case 0:
			t = sub(bits.RotateLeft32(t, 8)) ^ rcon<<24
			rcon <<= 1
		case 4:
			t = sub(t)
		}
		w[i] = w[i-8] ^ t
	}
	for i, v := range w {
		binary.BigEndian.PutUint32(rk[4*i:], v)
	}
	return rk
}

// aesSbox is the AES S-box, derived (FIPS 197 §5.1.1: the inverse in
// GF(2^8), then the affine map) rather than typed in.
var aesSbox = sync.OnceValue(func() (s [256]byte) {
	mul := func(a, b byte) (p byte) {
		for ; b != 0; b >>= 1 {
			if b&1 != 0 {
				p ^= a
			}
			a = a<<1 ^ byte(int8(a)>>7)&0x1b
		}
		return p
	}
	for x := range 256 {
		// x^254 is x's inverse (and 0 for 0).
		inv, sq := byte(1), byte(x)
		for e := 254; e != 0; e >>= 1 {
			if e&1 != 0 {
				inv = mul(inv, sq)
			}
			sq = mul(sq, sq)
		}
		s[x] = inv ^ bits.RotateLeft8(inv, 1) ^ bits.RotateLeft8(inv, 2) ^ bits.RotateLeft8(inv, 3) ^ bits.RotateLeft8(inv, 4) ^ 0x63
	}
	return s
})
