package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"testing"
)

// sealers returns every sealer this machine can run for key: the portable
// one always, the fused one where the CPU has what it needs.
func sealers(t *testing.T, key []byte) map[string]sealer {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	s := map[string]sealer{"portable": newPortableSealer(b)}
	if sealAsm {
		s["fused"] = newFusedSealer(b, key)
	}
	return s
}

// Every way of feeding a SEIPD body's bytes through a sealer gives the
// ciphertext of crypto/cipher's CFB and the digest of crypto/sha1: sealed
// runs that start and end inside SHA-1 and AES blocks, runs long enough for
// the assembly, then the MDC's hash-only header and encrypt-only packet.
func TestSealerMatchesStdlib(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	plain := make([]byte, 3<<20)
	rand.Read(plain)
	cases := []struct {
		name   string
		sealed []int // lengths sealed, in order
		hashed int   // then hashed only
		crypt  int   // then encrypted only
	}{
		{"empty", nil, 0, 0},
		{"one byte", []int{1}, 0, 0},
		{"one SHA-1 block", []int{64}, 0, 0},
		{"block and a byte", []int{65}, 2, 22},
		{"off by one, then blocks", []int{1, 63, 128, 5}, 0, 0},
		{"SEIPD start", []int{18, 1, 6, 1 << 20, 1, 1<<20 - 6, 1, 300}, 2, 22},
		{"inside AES blocks", []int{15, 17, 33, 1000, 7, 4096}, 2, 22},
		{"long run", []int{3 << 20}, 0, 0},
		{"odd sizes", []int{3, 61, 64, 129, 191, 1<<16 + 13, 77}, 5, 40},
		{"out of step", nil, 0, 0}, // see below: hash and encrypt apart, then seal
	}
	for _, c := range cases {
		for name, s := range sealers(t, key) {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				var ct, hashed, encrypted []byte
				off := 0
				take := func(n int) []byte { p := plain[off : off+n]; off += n; return p }
				if c.name == "out of step" {
					// A caller that hashes and encrypts apart breaks the
					// block alignment the assembly relies on; seal must
					// still be right.
					h := take(3)
					s.hash(h)
					hashed = append(hashed, h...)
					e := take(5)
					out := make([]byte, len(e))
					s.encrypt(out, e)
					ct, encrypted = append(ct, out...), append(encrypted, e...)
					c.sealed = []int{200, 1 << 12}
				}
				for _, n := range c.sealed {
					p := take(n)
					out := make([]byte, n)
					s.seal(out, p)
					ct = append(ct, out...)
					hashed, encrypted = append(hashed, p...), append(encrypted, p...)
				}
				h := take(c.hashed)
				s.hash(h)
				hashed = append(hashed, h...)
				sum := s.sum()
				e := take(c.crypt)
				out := make([]byte, len(e))
				s.encrypt(out, e)
				ct, encrypted = append(ct, out...), append(encrypted, e...)

				b, _ := aes.NewCipher(key)
				want := make([]byte, len(encrypted))
				//lint:ignore SA1019 the reference implementation is what is being matched
				cipher.NewCFBEncrypter(b, make([]byte, 16)).XORKeyStream(want, encrypted)
				if !bytes.Equal(ct, want) {
					t.Errorf("ciphertext differs from crypto/cipher CFB")
				}
				if sum != sha1.Sum(hashed) {
					t.Errorf("MDC hash %x, crypto/sha1 %x", sum, sha1.Sum(hashed))
				}
			})
		}
	}
}

// The Go SHA-1 that shares the fused loop's state equals crypto/sha1 at
// every length around the padding's edge cases, written in one piece or a
// byte at a time.
func TestSHA1State(t *testing.T) {
	msg := make([]byte, 300)
	rand.Read(msg)
	for n := range len(msg) {
		whole, bytewise := newSHA1(), newSHA1()
		whole.write(msg[:n])
		for i := range n {
			bytewise.write(msg[i : i+1])
		}
		want := sha1.Sum(msg[:n])
		if whole.sum() != want || bytewise.sum() != want {
			t.Fatalf("length %d: %x / %x, want %x", n, whole.sum(), bytewise.sum(), want)
		}
	}
	// sum does not disturb the state.
	s := newSHA1()
	s.write(msg[:100])
	s.sum()
	s.write(msg[100:])
	if s.sum() != sha1.Sum(msg) {
		t.Error("sum changed the running state")
	}
}

// The key schedule and the assembly against FIPS 197 appendix C.3 (AES-256
// of 00112233…ff under key 000102…1f): with a zero keystream the first
// ciphertext block is the plaintext, and the keystream the loop hands back
// is its encryption. The round keys' last word is from appendix A.3.
func TestSealKnownAnswer(t *testing.T) {
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	rk := expandKey256(key)
	a3, _ := hex.DecodeString("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	if got := expandKey256(a3); hex.EncodeToString(got[236:]) != "706c631e" {
		t.Errorf("FIPS 197 A.3: w[59] = %x, want 706c631e", got[236:])
	}
	if !sealAsm {
		t.Skip("no fused assembly here (not amd64, built with -tags purego, or the CPU lacks AES-NI or the SHA extensions)")
	}
	// P1 = 00112233…ff, P2..P4 = 0: C1 = P1 (zero keystream), C2 =
	// AES(C1) = the C.3 ciphertext.
	src := make([]byte, 64)
	hex.Decode(src, []byte("00112233445566778899aabbccddeeff"))
	var ks [16]byte
	h := newSHA1()
	dst := make([]byte, 64)
	sealBlocks(&rk, &ks, &h.h, dst, src)
	if !bytes.Equal(dst[:16], src[:16]) {
		t.Errorf("first ciphertext block %x, want the plaintext", dst[:16])
	}
	if got := hex.EncodeToString(dst[16:32]); got != "8ea2b7ca516745bfeafc49904b496089" {
		t.Errorf("second ciphertext block %s, want FIPS 197 C.3's 8ea2b7ca516745bfeafc49904b496089", got)
	}
	b, _ := aes.NewCipher(key)
	want := make([]byte, 16)
	b.Encrypt(want, dst[48:64])
	if !bytes.Equal(ks[:], want) {
		t.Errorf("keystream handed back %x, want AES(last ciphertext block) %x", ks, want)
	}
	h.n = 64
	if h.sum() != sha1.Sum(src) {
		t.Errorf("SHA-1 of the block %x, want %x", h.sum(), sha1.Sum(src))
	}
}

func FuzzSealer(f *testing.F) {
	f.Add([]byte("plaintext"), uint16(1), uint16(63), uint16(200))
	f.Fuzz(func(t *testing.T, data []byte, a, b, c uint16) {
		key := make([]byte, 32)
		copy(key, data)
		for _, s := range sealers(t, key) {
			var ct []byte
			rest := data
			for _, n := range []int{int(a), int(b), int(c), len(data)} {
				n = min(n, len(rest))
				out := make([]byte, n)
				s.seal(out, rest[:n])
				ct, rest = append(ct, out...), rest[n:]
			}
			bl, _ := aes.NewCipher(key)
			want := make([]byte, len(data))
			//lint:ignore SA1019 the reference implementation is what is being matched
			cipher.NewCFBEncrypter(bl, make([]byte, 16)).XORKeyStream(want, data)
			if !bytes.Equal(ct, want) || s.sum() != sha1.Sum(data) {
				t.Fatalf("sealer disagrees with crypto/cipher and crypto/sha1 for splits %d/%d/%d of %d bytes", a, b, c, len(data))
			}
		}
	})
}
