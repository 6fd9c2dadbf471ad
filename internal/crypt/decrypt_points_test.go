package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/drym-backup/drym/internal/testutil"
)

// message builds an OpenPGP message by hand: one public-key session key
// packet to e for each of keys (so that some may carry a wrong session
// key), then a SEIPDv1 packet encrypted with real holding inner as its
// plaintext (before the MDC). mutate may alter the prefix and MDC.
func message(t *testing.T, e *openpgpEntity, keys [][]byte, real []byte, inner []byte, mutate func(prefix, trailer []byte)) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, ok := e.EncryptionKey(config().Now())
	if !ok {
		t.Fatal("no encryption key")
	}
	for _, k := range keys {
		if err := packet.SerializeEncryptedKeyAEAD(&buf, enc.PublicKey, packet.CipherAES256, false, k, config()); err != nil {
			t.Fatal(err)
		}
	}
	b, err := aes.NewCipher(real)
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte{1}, rawSEIPD(t, b, inner, mutate)...)
	buf.WriteByte(0xC0 | tagSEIPD)
	buf.WriteByte(0xFF)
	buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	buf.Write(body)
	return buf.Bytes()
}

// literal is a binary literal data packet holding data.
func literal(data []byte) []byte {
	p := []byte{0xC0 | tagLiteral, 0xFF}
	body := append([]byte{'b', 0, 0, 0, 0, 0}, data...)
	p = binary.BigEndian.AppendUint32(p, uint32(len(body)))
	return append(p, body...)
}

func sessionKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// gpgDecrypt runs stock gpg on msg with e's secret key.
func gpgDecrypt(t *testing.T, e *openpgpEntity, msg []byte) ([]byte, error) {
	t.Helper()
	gpg := testutil.Need(t, "gpg")
	dir, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", dir, "--kill", "all").Run()
		os.RemoveAll(dir)
	})
	sec := filepath.Join(dir, "k.asc")
	if err := WriteKeyFiles(e, sec, filepath.Join(dir, "k.pub.asc")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gpg, "--batch", "--quiet", "--homedir", dir, "--import", sec).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	cmd := exec.Command(gpg, "--batch", "--quiet", "--homedir", dir, "--decrypt")
	cmd.Stdin = bytes.NewReader(msg)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.Bytes(), errors.New(strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// TestDecryptionPoints: the three ways the decrypter used to disagree with
// what a careful reader of the message must conclude.
func TestDecryptionPoints(t *testing.T) {
	e, _ := Generate("web1")
	data := bytes.Repeat([]byte("backup data\n"), 1000)
	key := sessionKey()

	// The message as drym writes it decrypts, with gpg too.
	good := message(t, e, [][]byte{key}, key, literal(data), nil)
	if got, err := decryptAll(good, e); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("good message: %v (%d bytes)", err, len(got))
	}
	if got, err := gpgDecrypt(t, e, good); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("gpg, good message: %v (%d bytes)", err, len(got))
	}

	t.Run("a wrong session key first does not end the search", func(t *testing.T) {
		// Anyone with the public key can put a packet in front that
		// decrypts, to a key that is not the message's.
		msg := message(t, e, [][]byte{sessionKey(), sessionKey(), key}, key, literal(data), nil)
		got, err := decryptAll(msg, e)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("got %v (%d bytes), want the data", err, len(got))
		}
		// Only wrong keys: an integrity failure, not a key problem.
		msg = message(t, e, [][]byte{sessionKey()}, key, literal(data), nil)
		if _, err := decryptAll(msg, e); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("only wrong session keys: got %v, want ErrIntegrity", err)
		}
	})

	t.Run("a failed quick check reads as an MDC failure", func(t *testing.T) {
		quick := message(t, e, [][]byte{key}, key, literal(data), func(p, _ []byte) { p[17] ^= 1 })
		mdc := message(t, e, [][]byte{key}, key, literal(data), func(_, tr []byte) { tr[5] ^= 1 })
		_, qerr := decryptAll(quick, e)
		_, merr := decryptAll(mdc, e)
		if qerr == nil || merr == nil {
			t.Fatalf("quick check %v, MDC %v: want both to fail", qerr, merr)
		}
		if qerr.Error() != merr.Error() || !errors.Is(qerr, ErrIntegrity) {
			t.Errorf("failed quick check says %q, failed MDC %q: they must read the same", qerr, merr)
		}
		// And through the streaming reader with every read size.
		b, _ := aes.NewCipher(key)
		body := rawSEIPD(t, b, literal(data), func(p, _ []byte) { p[16] ^= 4 })
		for _, bs := range []int{1, 4096, 1 << 20} {
			if _, err := readSEIPD(b, body, func(r io.Reader) io.Reader { return r }, bs); err == nil || err.Error() != errMDC().Error() {
				t.Errorf("%d-byte reads: %v, want %q", bs, err, errMDC())
			}
		}
	})

	t.Run("bytes between the literal data and the MDC", func(t *testing.T) {
		for _, junk := range [][]byte{{0}, []byte("appended"), literal([]byte("a second literal packet"))} {
			msg := message(t, e, [][]byte{key}, key, append(literal(data), junk...), nil)
			got, err := decryptAll(msg, e)
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "between the literal data and the modification detection code") {
				t.Errorf("%d bytes of junk: drym got %v (%d bytes), want ErrIntegrity naming them", len(junk), err, len(got))
			}
			// gpg refuses the message too: a stock restore and drym
			// agree that it is not a backup.
			if _, gerr := gpgDecrypt(t, e, msg); gerr == nil {
				t.Errorf("%d bytes of junk: gpg decrypted it; drym and gpg must agree", len(junk))
			}
		}
	})
}
