package crypt

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/drym-backup/drym/internal/testutil"
)

func encrypt(t *testing.T, plain []byte, keys ...*openpgpEntity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Encrypt(&buf, keys)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTripAndTampering(t *testing.T) {
	host, err := Generate("web1")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Generate("other")
	plain := make([]byte, 200<<10)
	rand.Read(plain)
	msg := encrypt(t, plain, host)

	got, err := decryptAll(msg, host)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v", err)
	}
	// Every tampering is an error, never a clean EOF.
	for _, pos := range []int{len(msg) / 3, len(msg) / 2, len(msg) - 30, len(msg) - 1} {
		bad := bytes.Clone(msg)
		bad[pos] ^= 0x01
		if _, err := decryptAll(bad, host); err == nil {
			t.Errorf("flipped byte at %d of %d decrypted cleanly", pos, len(msg))
		}
	}
	for _, cut := range []int{len(msg) - 1, len(msg) - 22, len(msg) / 2} {
		if _, err := decryptAll(msg[:cut], host); err == nil {
			t.Errorf("truncated to %d of %d decrypted cleanly", cut, len(msg))
		}
	}
	if _, err := decryptAll(msg, other); !errors.Is(err, ErrNoKey) {
		t.Errorf("other key: want ErrNoKey, got %v", err)
	}
	// Extra recipients can decrypt too.
	both := encrypt(t, plain, host, other)
	if got, err := decryptAll(both, other); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("second recipient: %v", err)
	}
}

func decryptAll(msg []byte, key *openpgpEntity) ([]byte, error) {
	r, err := Decrypt(bytes.NewReader(msg), []*openpgpEntity{key})
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	e, _ := Generate("web1")
	sec, pub := filepath.Join(dir, "k.asc"), filepath.Join(dir, "k.pub.asc")
	old := syscallUmask(0)
	defer syscallUmask(old)
	if err := WriteKeyFiles(e, sec, pub); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{sec: 0o600, pub: 0o644} {
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	if err := WriteKeyFiles(e, sec, pub); err == nil {
		t.Fatal("an existing key was replaced")
	}
	keys, err := ReadKeyFile(sec)
	if err != nil || keys[0].PrivateKey == nil || Fingerprint(keys[0]) != Fingerprint(e) {
		t.Fatalf("read secret: %v", err)
	}
	pk, err := ReadKeyFile(pub)
	if err != nil || pk[0].PrivateKey != nil || Fingerprint(pk[0]) != Fingerprint(e) {
		t.Fatalf("read public: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk"), []byte("-----BEGIN PGP junk"), 0o600)
	if _, err := ReadKeyFile(filepath.Join(dir, "junk")); err == nil {
		t.Fatal("junk parsed as a key")
	}
}

// gpg 2.2 (Debian) must decrypt what drym writes with nothing but the
// exported host key, and drym must decrypt what gpg writes to it.
func TestGPGInterop(t *testing.T) {
	e, _ := Generate("web1")
	run := gpgQuiet(gpgHome(t, t.TempDir(), e))
	plain := make([]byte, 1<<20)
	rand.Read(plain)
	if got := run(encrypt(t, plain, e), "--decrypt"); !bytes.Equal(got, plain) {
		t.Fatal("gpg decrypted something else")
	}
	fromGPG := run(plain, "--encrypt", "-z", "0", "--recipient", Fingerprint(e))
	if got, err := decryptAll(fromGPG, e); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt gpg's message: %v", err)
	}
}

// gpgHome makes an empty GNUPGHOME holding e's secret key (its files written
// under dir) and returns a runner of gpg in it that fails the test on error.
func gpgHome(t *testing.T, dir string, e *openpgpEntity) func(stdin []byte, args ...string) (stdout []byte, stderr string) {
	t.Helper()
	gpg := testutil.Need(t, "gpg")
	home := filepath.Join(dir, "gnupg")
	os.Mkdir(home, 0o700)
	sec, pub := filepath.Join(dir, "k.asc"), filepath.Join(dir, "k.pub.asc")
	if err := WriteKeyFiles(e, sec, pub); err != nil {
		t.Fatal(err)
	}
	run := func(stdin []byte, args ...string) ([]byte, string) {
		cmd := exec.Command(gpg, append([]string{"--batch", "--homedir", home, "--trust-model", "always"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
		}
		return out.Bytes(), stderr.String()
	}
	run(nil, "--quiet", "--import", sec)
	return run
}

// gpgQuiet adapts a gpgHome runner to print nothing but the output.
func gpgQuiet(run func([]byte, ...string) ([]byte, string)) func(stdin []byte, args ...string) []byte {
	return func(stdin []byte, args ...string) []byte {
		out, _ := run(stdin, append([]string{"--quiet"}, args...)...)
		return out
	}
}
