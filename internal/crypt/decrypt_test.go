package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// rawSEIPD is a SEIPDv1 body (without packet framing) built with the
// standard library's CFB, so the fast reader is checked against an
// independent encrypter. mutate may alter the plaintext prefix and trailer
// before encryption.
func rawSEIPD(t *testing.T, b cipher.Block, plain []byte, mutate func(prefix, trailer []byte)) []byte {
	t.Helper()
	prefix := make([]byte, 18)
	rand.Read(prefix[:16])
	prefix[16], prefix[17] = prefix[14], prefix[15]
	h := sha1.New()
	h.Write(prefix)
	h.Write(plain)
	h.Write([]byte{0xD3, 0x14})
	trailer := append([]byte{0xD3, 0x14}, h.Sum(nil)...)
	if mutate != nil {
		mutate(prefix, trailer)
	}
	pt := append(append(append([]byte{}, prefix...), plain...), trailer...)
	ct := make([]byte, len(pt))
	//lint:ignore SA1019 the reference implementation is what is being matched
	cipher.NewCFBEncrypter(b, make([]byte, 16)).XORKeyStream(ct, pt)
	return ct
}

func readSEIPD(b cipher.Block, body []byte, src func(io.Reader) io.Reader, bufSize int) ([]byte, error) {
	sr, err := newSEIPDReader(src(bytes.NewReader(body)), b)
	if err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := sr.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func aesBlock(t *testing.T) cipher.Block {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fast reader returns the plaintext for every size and read pattern,
// and refuses every fault: each is an ErrIntegrity, never a clean EOF.
func TestSEIPDReader(t *testing.T) {
	b := aesBlock(t)
	data := make([]byte, 300<<10)
	rand.Read(data)
	srcs := map[string]func(io.Reader) io.Reader{
		"whole":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
	}
	for _, size := range []int{0, 1, 15, 16, 17, 21, 22, 23, 4095, 4096, 4097, 70000, len(data)} {
		body := rawSEIPD(t, b, data[:size], nil)
		for name, src := range srcs {
			for _, bs := range []int{1, 7, 4096, 1 << 20} {
				if name == "onebyte" && size > 70000 {
					continue
				}
				got, err := readSEIPD(b, body, src, bs)
				if err != nil || !bytes.Equal(got, data[:size]) {
					t.Errorf("size %d, %s source, %d-byte reads: %v, %d bytes back", size, name, bs, err, len(got))
				}
			}
		}
	}

	plain := data[:5000]
	good := rawSEIPD(t, b, plain, nil)
	faults := []struct {
		name string
		body []byte
		want string
	}{
		{"quick check", rawSEIPD(t, b, plain, func(p, _ []byte) { p[17] ^= 1 }), "modification detection"},
		{"MDC hash", rawSEIPD(t, b, plain, func(_, tr []byte) { tr[10] ^= 1 }), "modification detection"},
		{"MDC tag", rawSEIPD(t, b, plain, func(_, tr []byte) { tr[0] = 0xD4 }), "modification detection"},
		{"MDC length", rawSEIPD(t, b, plain, func(_, tr []byte) { tr[1] = 0x15 }), "modification detection"},
		{"trailing garbage", append(bytes.Clone(good), 1, 2, 3), "modification detection"},
		{"trailing block", append(bytes.Clone(good), make([]byte, 16)...), "modification detection"},
		{"body flip", flip(good, 18+2500), "modification detection"},
		{"prefix flip", flip(good, 3), "modification detection"},
		{"empty", nil, "truncated"},
	}
	// Truncated in every region: inside the prefix, the body, the MDC.
	for _, cut := range []int{1, 10, 17, 18, 19, 100, 18 + 4999, 18 + 5000, 18 + 5001, 18 + 5000 + 21, len(good) - 1} {
		want := "modification detection"
		if cut < 18+mdcLen {
			want = "truncated"
		}
		faults = append(faults, struct {
			name string
			body []byte
			want string
		}{"cut at " + itoa(cut), good[:cut], want})
	}
	for _, f := range faults {
		for _, bs := range []int{1, 4096, 1 << 20} {
			got, err := readSEIPD(b, f.body, func(r io.Reader) io.Reader { return r }, bs)
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), f.want) {
				t.Errorf("%s (%d-byte reads): got %v after %d bytes, want ErrIntegrity naming %q", f.name, bs, err, len(got), f.want)
			}
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func itoa(n int) string { return strconv.Itoa(n) }

// The in-place block decrypter equals the standard library's CFB decrypter
// for every split, including splits inside a block.
func TestCFBDecMatchesStdlib(t *testing.T) {
	b := aesBlock(t)
	ct := make([]byte, 5000)
	rand.Read(ct)
	want := make([]byte, len(ct))
	//lint:ignore SA1019 the reference implementation is what is being matched
	cipher.NewCFBDecrypter(b, make([]byte, 16)).XORKeyStream(want, ct)
	for _, splits := range [][]int{{5000}, {1, 4999}, {2, 16, 17, 4965}, {15, 1, 33, 4951}, {18, 2000, 2982}, {16, 16, 4968}} {
		var d cfbDec
		d.init(b)
		got := bytes.Clone(ct)
		off := 0
		for _, n := range splits {
			d.decrypt(got[off : off+n])
			off += n
		}
		if !bytes.Equal(got, want) {
			t.Errorf("splits %v: plaintext differs from crypto/cipher CFB", splits)
		}
	}
}

// gpg's own messages take the fast path: partial lengths (gpg streams
// stdin in partial chunks), a compressed inner packet (gpg's default), and
// a flipped byte or a cut anywhere is an integrity error.
func TestFastPathGPG(t *testing.T) {
	e, _ := Generate("web1")
	other, _ := Generate("other")
	run := gpgQuiet(gpgHome(t, t.TempDir(), e))
	// Half random, half text: compression has something to do.
	plain := make([]byte, 5<<20)
	rand.Read(plain[:len(plain)/2])
	copy(plain[len(plain)/2:], bytes.Repeat([]byte("log line 42 ok\n"), len(plain)))
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"uncompressed", []string{"-z", "0"}},
		{"compressed (default)", nil},
		{"zlib", []string{"--compress-algo", "zlib"}},
		{"aes128", []string{"-z", "0", "--cipher-algo", "AES128"}},
		{"two recipients", []string{"-z", "0", "--recipient", Fingerprint(other)}},
	} {
		if mode.name == "two recipients" {
			o, _ := ArmorPublic(other)
			run(o, "--import")
		}
		msg := run(plain, append(append([]string{"--encrypt", "--recipient", Fingerprint(e)}, mode.args...), "-")...)
		rec := &recorder{r: bytes.NewReader(msg), on: true}
		r, err := decryptFast(rec, []*openpgpEntity{e})
		if err != nil {
			t.Fatalf("%s: fast path refused gpg's message: %v", mode.name, err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %v, %d bytes back", mode.name, err, len(got))
		}
		for _, pos := range []int{len(msg) / 5, len(msg) / 2, len(msg) - 30, len(msg) - 1} {
			if got, err := decryptAll(flip(msg, pos), e); !errors.Is(err, ErrIntegrity) {
				t.Errorf("%s: flipped byte at %d of %d: got %v (%d bytes), want ErrIntegrity", mode.name, pos, len(msg), err, len(got))
			}
		}
		for _, cut := range []int{len(msg) / 2, len(msg) - 23, len(msg) - 22, len(msg) - 1} {
			if got, err := decryptAll(msg[:cut], e); !errors.Is(err, ErrIntegrity) {
				t.Errorf("%s: cut to %d of %d: got %v (%d bytes), want ErrIntegrity", mode.name, cut, len(msg), err, len(got))
			}
		}
	}
	// drym's own writer takes the fast path too.
	rec := &recorder{r: bytes.NewReader(encrypt(t, plain, e)), on: true}
	if _, err := decryptFast(rec, []*openpgpEntity{e}); err != nil {
		t.Errorf("drym's message: fast path refused: %v", err)
	}

	// What the fast path does not take still fails, never passes as a backup.
	sym := run(plain[:1000], "--symmetric", "--pinentry-mode", "loopback", "--passphrase", "x", "-")
	if _, err := decryptAll(sym, e); err == nil {
		t.Error("a passphrase-encrypted message decrypted cleanly")
	}
	store := run(plain[:1000], "--store", "-")
	if _, err := decryptAll(store, e); err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Errorf("an unencrypted message: got %v, want an error saying it is not encrypted", err)
	}
	if _, err := decryptAll(msgFor(t, plain[:1000], other), e); !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "for key(s) ") {
		t.Errorf("another key: got %v, want ErrNoKey naming the key", err)
	}
}

func msgFor(t *testing.T, plain []byte, to *openpgpEntity) []byte { return encrypt(t, plain, to) }

func BenchmarkDecrypt(b *testing.B) {
	host, _ := Generate("web1")
	plain := make([]byte, 32<<20)
	rand.Read(plain)
	var buf bytes.Buffer
	w, _ := Encrypt(&buf, []*openpgpEntity{host})
	w.Write(plain)
	w.Close()
	msg := buf.Bytes()
	out := make([]byte, 1<<20)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		r, err := Decrypt(bytes.NewReader(msg), []*openpgpEntity{host})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Read(out)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
