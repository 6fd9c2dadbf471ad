package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// The fast CFB must equal the standard library's CFB for every split of the
// input, including splits inside a block.
func TestCFBMatchesStdlib(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	plain := make([]byte, 5000)
	rand.Read(plain)
	b, _ := aes.NewCipher(key)
	want := make([]byte, len(plain))
	//lint:ignore SA1019 the reference implementation is what is being matched
	cipher.NewCFBEncrypter(b, make([]byte, 16)).XORKeyStream(want, plain)
	for _, splits := range [][]int{{5000}, {1, 4999}, {2, 16, 17, 4965}, {15, 1, 33, 4951}, {18, 2000, 2982}} {
		c := newCFB(b)
		got := make([]byte, 0, len(plain))
		off := 0
		for _, n := range splits {
			out := make([]byte, n)
			c.xor(out, plain[off:off+n])
			got = append(got, out...)
			off += n
		}
		if !bytes.Equal(got, want) {
			t.Errorf("splits %v: ciphertext differs from crypto/cipher CFB", splits)
		}
	}
}

// Messages of every size around the partial-chunk boundaries, written in
// every pattern, decrypt (go-crypto, with the MDC checked) to the input.
func TestSEIPDSizesAndWrites(t *testing.T) {
	host, err := Generate("web1")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*partialSize+100)
	rand.Read(data)
	sizes := []int{0, 1, 5, 6, 191, 192, 8383, 8384, partialSize - 7, partialSize - 6, partialSize - 5,
		partialSize, 2*partialSize - 6, 2 * partialSize, 3*partialSize + 100}
	writes := map[string]int{"one": 0, "odd": 4093, "chunk": partialSize, "7": 7}
	for _, size := range sizes {
		for name, ws := range writes {
			if ws == 7 && size > 20000 {
				continue
			}
			plain := data[:size]
			var buf bytes.Buffer
			w, err := Encrypt(&buf, []*openpgpEntity{host})
			if err != nil {
				t.Fatal(err)
			}
			for p := plain; len(p) > 0; {
				n := len(p)
				if ws > 0 {
					n = min(n, ws)
				}
				if m, err := w.Write(p[:n]); err != nil || m != n {
					t.Fatalf("write: %d, %v", m, err)
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := decryptAll(buf.Bytes(), host)
			if err != nil || !bytes.Equal(got, plain) {
				t.Errorf("size %d, %s writes: round trip failed (%v, %d bytes back)", size, name, err, len(got))
			}
		}
	}
}

// A recipient key preferring only AES-128 gets AES-128, as go-crypto would
// choose; the host key (AES-256 first) gets AES-256.
func TestSEIPDCipherChoice(t *testing.T) {
	host, _ := Generate("web1")
	if got := cipherFor([]*openpgp.Entity{host}); got.KeySize() != 32 {
		t.Errorf("host key: cipher key size %d, want 32 (AES-256)", got.KeySize())
	}
}

// gpg 2.2 decrypts the fast writer's output for sizes around the chunk
// boundaries, with two recipients, and describes the packets as the ones
// go-crypto writes: PKESK v3, SEIPD v1 with MDC, binary literal data.
func TestSEIPDGPG(t *testing.T) {
	e, _ := Generate("web1")
	team, _ := Generate("team")
	gpgRun := gpgHome(t, t.TempDir(), e)
	data := make([]byte, 2*partialSize+10)
	rand.Read(data)
	for _, size := range []int{0, 100, partialSize - 6, partialSize, 2*partialSize + 10} {
		plain := data[:size]
		var buf bytes.Buffer
		w, err := Encrypt(&buf, []*openpgpEntity{e, team})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(w, bytes.NewReader(plain))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, log := gpgRun(buf.Bytes(), "--decrypt")
		if !bytes.Equal(got, plain) {
			t.Errorf("size %d: gpg decrypted %d other bytes", size, len(got))
		}
		if strings.Contains(log, "WARNING") {
			t.Errorf("size %d: gpg warned:\n%s", size, log)
		}
		if size == 100 {
			pk, _ := gpgRun(buf.Bytes(), "--list-packets")
			for _, want := range []string{":pubkey enc packet: version 3", ":encrypted data packet:", "mdc_method: 2", ":literal data packet:", "mode b (62)"} {
				if !strings.Contains(string(pk), want) {
					t.Errorf("gpg --list-packets lacks %q:\n%s", want, pk)
				}
			}
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	host, _ := Generate("web1")
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	b.SetBytes(int64(len(chunk)) * 16)
	for b.Loop() {
		w, _ := Encrypt(io.Discard, []*openpgpEntity{host})
		for range 16 {
			w.Write(chunk)
		}
		w.Close()
	}
}

func BenchmarkEncryptGoCrypto(b *testing.B) {
	host, _ := Generate("web1")
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	b.SetBytes(int64(len(chunk)) * 16)
	for b.Loop() {
		w, _ := openpgp.Encrypt(io.Discard, []*openpgp.Entity{host}, nil, &openpgp.FileHints{IsBinary: true}, config())
		for range 16 {
			w.Write(chunk)
		}
		w.Close()
	}
}
