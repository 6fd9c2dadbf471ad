package escrow

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow/escrowtest"
	"github.com/drym-backup/drym/internal/store"
)

var day = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func testConfig(host string) *config.Config {
	c := &config.Config{
		Host: host, Sources: []string{"/etc"}, StateDir: "/var/lib/drym", KeyFile: "/etc/drym/host-key.asc",
		Destination: config.Remote{URL: "s3://backups/drym", Endpoint: "https://s3.example.net", ReadProfile: "drym-read"},
		Escrow:      config.Escrow{Remote: config.Remote{URL: "dir:///mnt/escrow"}},
	}
	c.ApplyDefaults()
	return c
}

func key(t testing.TB, host string) *openpgp.Entity {
	t.Helper()
	e, err := crypt.Generate(host)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func build(t testing.TB, host string, k *openpgp.Entity, team openpgp.EntityList) *Zip {
	t.Helper()
	z, err := Build(Params{Config: testConfig(host), Key: k, Team: team, Now: day})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func inspect(t testing.TB, data []byte) (*Facts, error) {
	t.Helper()
	return Inspect(bytes.NewReader(data), int64(len(data)), DefaultLimits)
}

func TestBuildDeterministicAndInspectable(t *testing.T) {
	k := key(t, "web1")
	z1 := build(t, "web1", k, nil)
	z2 := build(t, "web1", k, nil)
	if !bytes.Equal(z1.Data, z2.Data) {
		t.Fatal("two builds from the same inputs differ")
	}
	fp := crypt.Fingerprint(k)
	if want := "drym-escrow-web1-" + fp[:16] + "-20260314.zip"; z1.Name(1) != want {
		t.Fatalf("name %q, want %q", z1.Name(1), want)
	}
	f, err := inspect(t, z1.Data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Host != "web1" || f.Fingerprint != fp || f.SecretEncrypted || !f.KeyExpires.IsZero() {
		t.Fatalf("facts: %+v", f)
	}
	if f.Config.Destination.URL != "s3://backups/drym" || f.Config.Host != "web1" {
		t.Fatalf("escrowed settings: %+v", f.Config)
	}
	var names []string
	for n := range f.Contents {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"RESTORE.md", "SHA256SUMS", "drym.toml", "host-key.asc", "host-key.pub.asc", "restore.sh"}
	if !slices.Equal(names, want) {
		t.Fatalf("members %v, want %v", names, want)
	}
	doc := string(f.Contents[MemberRestoreDoc])
	for _, s := range []string{fp, "aws s3 ls s3://backups/drym/web1/", "--endpoint-url https://s3.example.net", "--profile drym-read",
		"gpg --verify NAME.tar.zst.gpg.sig NAME.tar.zst.gpg.sha256", "before decrypting anything", "--allow-unsigned"} {
		if !strings.Contains(doc, s) {
			t.Errorf("RESTORE.md lacks %q", s)
		}
	}
}

func TestBuildEncryptedToTeam(t *testing.T) {
	k, team := key(t, "web1"), key(t, "team")
	z := build(t, "web1", k, openpgp.EntityList{team})
	f, err := inspect(t, z.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !f.SecretEncrypted || f.Contents[MemberSecret] != nil {
		t.Fatal("secret member not encrypted")
	}
	if !slices.ContainsFunc(f.SecretRecipients, func(id uint64) bool { return slices.Contains(KeyIDs(team), id) }) {
		t.Fatalf("recipients %x do not include the team key %x", f.SecretRecipients, KeyIDs(team))
	}
	// The team can decrypt it, and it is the host key.
	msg := f.Contents[MemberSecretEncrypted]
	r, err := crypt.Decrypt(bytes.NewReader(msg), openpgp.EntityList{team})
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if _, err := plain.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	keys, err := crypt.ParseKeys(plain.Bytes())
	if err != nil || crypt.Fingerprint(keys[0]) != crypt.Fingerprint(k) || keys[0].PrivateKey == nil {
		t.Fatalf("decrypted secret: %v", err)
	}
	// A second build differs in bytes (fresh session key) but is equivalent.
	z2 := build(t, "web1", k, openpgp.EntityList{team})
	f2, _ := inspect(t, z2.Data)
	if bytes.Equal(z.Data, z2.Data) || !Equivalent(f, f2) {
		t.Fatal("encrypted builds should differ in bytes and be equivalent")
	}
	other := build(t, "web1", k, openpgp.EntityList{key(t, "team2")})
	f3, _ := inspect(t, other.Data)
	if Equivalent(f, f3) {
		t.Fatal("zips encrypted to different teams are equivalent")
	}
}

func TestInspectRefusesBadZips(t *testing.T) {
	k, o := key(t, "web1"), key(t, "web1")
	good := build(t, "web1", k, nil)
	other := build(t, "db2", key(t, "db2"), nil)
	opub, _ := crypt.ArmorPublic(o)
	osec, _ := crypt.ArmorSecret(o)
	for _, c := range escrowtest.Bad(t, good.Data, other.Data, opub, osec) {
		t.Run(c.Name, func(t *testing.T) {
			start := time.Now()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			f, err := inspect(t, c.Data)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
				t.Errorf("allocated %d MiB", grew>>20)
			}
			if c.Valid {
				if err != nil {
					t.Fatalf("structurally valid zip refused: %v", err)
				}
				if f.Fingerprint == crypt.Fingerprint(k) && f.Host == "web1" {
					t.Fatal("looks like the host's own escrow")
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), c.Want) {
				t.Fatalf("error %q, want ErrBroken mentioning %q", err, c.Want)
			}
		})
	}
}

func TestParseName(t *testing.T) {
	for _, c := range []struct {
		host, name string
		ok         bool
		rev        int
	}{
		{"web1", "drym-escrow-web1-0123456789ABCDEF-20260314.zip", true, 1},
		{"web1", "drym-escrow-web1-0123456789ABCDEF-20260314-2.zip", true, 2},
		{"web1", "drym-escrow-web1-0123456789ABCDEF-20260314-1.zip", false, 0},
		{"web1", "drym-escrow-web1-0123456789abcdef-20260314.zip", false, 0},
		{"web", "drym-escrow-web1-0123456789ABCDEF-20260314.zip", false, 0},
		{"web1", "drym-escrow-web1-0123456789ABCDEF-20261340.zip", false, 0},
		{"web1", "drym-escrow-web1-0123456789ABCDEF-20260314.zip.partial", false, 0},
	} {
		n, ok := ParseName(c.host, c.name)
		if ok != c.ok || ok && n.Rev != c.rev {
			t.Errorf("ParseName(%q, %q) = %+v, %v", c.host, c.name, n, ok)
		}
	}
}

func TestShipDirNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := store.NewDir(dir)
	k := key(t, "web1")
	z := build(t, "web1", k, nil)

	got, err := Ship(ctx, s, s, z)
	if err != nil || got.Already || got.Name != z.Name(1) {
		t.Fatalf("first ship: %+v, %v", got, err)
	}
	got, err = Ship(ctx, s, s, build(t, "web1", k, nil))
	if err != nil || !got.Already || got.Name != z.Name(1) || got.SHA256 != z.SHA256 {
		t.Fatalf("second ship: %+v, %v", got, err)
	}
	// The next day, the same key and settings: the zip already there is
	// the escrow; no second copy.
	next, err := Build(Params{Config: testConfig("web1"), Key: k, Now: day.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got, err = Ship(ctx, s, s, next)
	if err != nil || !got.Already || got.Name != z.Name(1) {
		t.Fatalf("next day: %+v, %v", got, err)
	}
	// Settings changed the same day: the first zip stays, a second one
	// goes beside it, and Latest picks it.
	cfg := testConfig("web1")
	cfg.Exclude = []string{"*.tmp"}
	z2, err := Build(Params{Config: cfg, Key: k, Now: day})
	if err != nil {
		t.Fatal(err)
	}
	got, err = Ship(ctx, s, s, z2)
	if err != nil || got.Already || got.Name != z.Name(2) {
		t.Fatalf("changed settings: %+v, %v", got, err)
	}
	first, _ := os.ReadFile(filepath.Join(dir, z.Name(1)))
	if !bytes.Equal(first, z.Data) {
		t.Fatal("the first zip was changed")
	}
	latest, err := Latest(ctx, s, "web1")
	if err != nil || latest.Name != z.Name(2) {
		t.Fatalf("Latest = %+v, %v", latest, err)
	}
	// A damaged zip under the name is kept, not replaced.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, z.Name(1)), []byte("junk"), 0o644)
	s2 := store.NewDir(dir2)
	got, err = Ship(ctx, s2, s2, z)
	if err != nil || got.Name != z.Name(2) {
		t.Fatalf("over junk: %+v, %v", got, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, z.Name(1))); string(b) != "junk" {
		t.Fatal("junk replaced")
	}
	if _, err := Latest(ctx, store.NewDir(t.TempDir()), "web1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty dir: %v", err)
	}
}

func FuzzInspect(f *testing.F) {
	k := key(f, "web1")
	good := build(f, "web1", k, nil)
	f.Add(good.Data)
	f.Add(good.Data[:len(good.Data)/3])
	f.Add([]byte("PK\x03\x04"))
	for _, c := range escrowtest.Bad(f, good.Data, good.Data, nil, nil) {
		if len(c.Data) < 16<<10 { // big seeds slow the fuzzer more than they teach it
			f.Add(c.Data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fa, err := Inspect(bytes.NewReader(data), int64(len(data)), DefaultLimits)
		if err != nil {
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("error not wrapping ErrBroken: %v", err)
			}
			return
		}
		if fa.Fingerprint == "" || fa.Config == nil || fa.Uncompressed > DefaultLimits.MaxTotal {
			t.Fatalf("accepted with incomplete facts: %+v", fa)
		}
	})
}
