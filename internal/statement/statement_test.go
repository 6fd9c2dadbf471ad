package statement

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/testutil"
)

const name = "20261201T030000Z-0123456789abcdef0123456789abcdef.tar.zst.gpg"

func TestParse(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	good := Statement{Host: "web1", Object: name, Size: 42, SHA256: sum}
	for _, tc := range []struct {
		name string
		data string
		want Statement
		err  error
	}{
		{"round trip", string(good.Marshal()), good, nil},
		{"legacy sidecar", sum + "  " + name + "\n", Statement{Object: name, SHA256: sum, Legacy: true}, nil},
		{"legacy binary mark", strings.ToUpper(sum) + "  *" + name + "\n", Statement{Object: name, SHA256: sum, Legacy: true}, nil},
		{"unknown fact ignored", header + "\n# host web1\n# made today\n# size 42\n" + sum + "  " + name + "\n", good, nil},
		{"other object", sum + "  other.tar.zst.gpg\n", Statement{}, ErrMismatch},
		{"newer format", "# drym backup statement 2\n# host web1\n" + sum + "  " + name + "\n", Statement{}, ErrMalformed},
		{"no host", header + "\n# size 1\n" + sum + "  " + name + "\n", Statement{}, ErrMalformed},
		{"bad size", header + "\n# host web1\n# size -1\n" + sum + "  " + name + "\n", Statement{}, ErrMalformed},
		{"short sum", "abc  " + name + "\n", Statement{}, ErrMalformed},
		{"no sum", header + "\n# host web1\n", Statement{}, ErrMalformed},
		{"line after the sum", sum + "  " + name + "\n# host web1\n", Statement{}, ErrMalformed},
		{"comment before header", "# host web1\n" + header + "\n" + sum + "  " + name + "\n", Statement{}, ErrMalformed},
		{"too large", strings.Repeat("#", MaxSize+1), Statement{}, ErrMalformed},
		{"empty", "", Statement{}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.data), name)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Parse = %+v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	s := Statement{Host: "web1", Object: name, Size: 42, SHA256: strings.Repeat("0", 64)}
	for _, tc := range []struct {
		host string
		size int64
		ok   bool
	}{{"web1", 42, true}, {"web1", -1, true}, {"web2", 42, false}, {"web1", 41, false}} {
		if err := s.Check(tc.host, tc.size); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrMismatch)) {
			t.Errorf("Check(%q, %d) = %v", tc.host, tc.size, err)
		}
	}
	legacy := Statement{Object: name, SHA256: s.SHA256, Legacy: true}
	if err := legacy.Check("web2", 7); err != nil {
		t.Errorf("a legacy sidecar has no host or size to disagree with: %v", err)
	}
}

func TestSignVerify(t *testing.T) {
	host := newKey(t, "web1")
	other := newKey(t, "intruder")
	data := Statement{Host: "web1", Object: name, Size: 1, SHA256: strings.Repeat("1", 64)}.Marshal()
	sig, err := Sign(data, host)
	if err != nil {
		t.Fatal(err)
	}
	if signer, err := Verify(data, sig, openpgp.EntityList{host}); err != nil || signer != host {
		t.Fatalf("Verify = %v, %v", signer, err)
	}
	pub := publicOnly(t, host)
	if _, err := Verify(data, sig, pub); err != nil {
		t.Fatalf("Verify with the public key only: %v", err)
	}
	otherSig, err := Sign(data, other)
	if err != nil {
		t.Fatal(err)
	}
	if got := Issuer(otherSig); got != crypt.Fingerprint(other) {
		t.Errorf("Issuer = %q, want %s", got, crypt.Fingerprint(other))
	}
	if got := Issuer([]byte("junk")); got != "" {
		t.Errorf("Issuer(junk) = %q", got)
	}
	tampered := bytes.Replace(data, []byte("size 1"), []byte("size 2"), 1)
	for _, tc := range []struct {
		name      string
		data, sig []byte
		want      error
	}{
		{"another key", data, otherSig, ErrOtherKey},
		{"tampered statement", tampered, sig, ErrBadSignature},
		{"no signature", data, nil, ErrUnsigned},
		{"garbage", data, []byte("-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n"), ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(tc.data, tc.sig, pub); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestStockTools: the statement is a sha256sum file and the signature is
// one gpg 2.2 verifies, so a restore with only stock tools can trust the
// object before decrypting it.
func TestStockTools(t *testing.T) {
	gpg := testutil.Need(t, "gpg")
	sha256sum := testutil.Need(t, "sha256sum")
	dir := t.TempDir()
	obj := []byte("pretend this is an encrypted backup")
	sum := sha256.Sum256(obj)
	key := newKey(t, "web1")
	data := Statement{Host: "web1", Object: name, Size: int64(len(obj)), SHA256: hex.EncodeToString(sum[:])}.Marshal()
	sig, err := Sign(data, key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(n string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(name, obj)
	write(name+SidecarSuffix, data)
	write(name+SignatureSuffix, sig)
	pubArmor, err := crypt.ArmorPublic(key)
	if err != nil {
		t.Fatal(err)
	}
	write("host.pub.asc", pubArmor)
	home := t.TempDir()
	run := func(cmd string, args ...string) (string, error) {
		c := exec.Command(cmd, args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "GNUPGHOME="+home)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := run(gpg, "--batch", "--import", "host.pub.asc"); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	if out, err := run(gpg, "--batch", "--status-fd", "1", "--verify", name+SignatureSuffix, name+SidecarSuffix); err != nil || !strings.Contains(out, "VALIDSIG "+crypt.Fingerprint(key)) {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	if out, err := run(sha256sum, "--strict", "-c", name+SidecarSuffix); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	write(name+SidecarSuffix, bytes.Replace(data, []byte("# host web1"), []byte("# host web2"), 1))
	if out, err := run(gpg, "--batch", "--verify", name+SignatureSuffix, name+SidecarSuffix); err == nil {
		t.Fatalf("gpg accepted a changed statement:\n%s", out)
	}
}

func newKey(t *testing.T, host string) *openpgp.Entity {
	t.Helper()
	e, err := crypt.Generate(host)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func publicOnly(t *testing.T, e *openpgp.Entity) openpgp.EntityList {
	t.Helper()
	a, err := crypt.ArmorPublic(e)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypt.ParseKeys(a)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// BenchmarkSign is what signing costs a backup: one detached Ed25519
// signature over a statement of a few hundred bytes.
func BenchmarkSign(b *testing.B) {
	key, err := crypt.Generate("web1")
	if err != nil {
		b.Fatal(err)
	}
	data := Statement{Host: "web1", Object: name, Size: 1 << 30, SHA256: strings.Repeat("ab", 32)}.Marshal()
	for b.Loop() {
		if _, err := Sign(data, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is what checking one statement costs a reader.
func BenchmarkVerify(b *testing.B) {
	key, err := crypt.Generate("web1")
	if err != nil {
		b.Fatal(err)
	}
	data := Statement{Host: "web1", Object: name, Size: 1 << 30, SHA256: strings.Repeat("ab", 32)}.Marshal()
	sig, err := Sign(data, key)
	if err != nil {
		b.Fatal(err)
	}
	keys := openpgp.EntityList{key}
	for b.Loop() {
		if _, err := Verify(data, sig, keys); err != nil {
			b.Fatal(err)
		}
	}
}
