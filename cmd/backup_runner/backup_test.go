package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// restoreStock decrypts, decompresses and unpacks an object with the stock
// tools only, in an empty GNUPGHOME holding only the host key.
func restoreStock(t *testing.T, object, key, into string) {
	t.Helper()
	testutil.Need(t, "gpg")
	testutil.Need(t, "zstd")
	testutil.Need(t, "tar")
	home := t.TempDir()
	imp := exec.Command("gpg", "--batch", "--quiet", "--import", key)
	imp.Env = append(os.Environ(), "GNUPGHOME="+home)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	must(t, os.MkdirAll(into, 0o755))
	sh := fmt.Sprintf("gpg --batch --quiet -d %q | zstd -dq | tar -xpf - -C %q", object, into)
	cmd := exec.Command("bash", "-o", "pipefail", "-c", sh)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, out)
	}
}

// sameTree compares two trees: names, types, modes, contents, symlink
// targets, hard links and, when mtimes is set, mtimes.
func sameTree(t *testing.T, want, got string, mtimes bool) {
	t.Helper()
	diffTrees(t, treeSnapshot(t, got, mtimes), treeSnapshot(t, want, mtimes))
}

// One object under <dest>/<host>/, restorable by stock tools
// with nothing but the host key.
func TestBackupToDirRestoresWithStockTools(t *testing.T) {
	f := newFixture(t)
	f.init("dir://" + f.dest)
	out, errOut, code := f.run("backup")
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	b := f.backupStatus()
	if b.State != status.OK || b.Files != countFiles(t, f.src) || b.Symlinks != 3 || b.Warnings != 0 {
		t.Fatalf("status: %+v", b)
	}
	ents, _ := os.ReadDir(filepath.Join(f.dest, "web1"))
	var objects []string
	for _, e := range ents {
		objects = append(objects, e.Name())
	}
	if len(objects) != 3 || !strings.HasSuffix(objects[0], ".tar.zst.gpg") || objects[1] != objects[0]+".sha256" || objects[2] != objects[0]+".sig" {
		t.Fatalf("destination holds %v", objects)
	}
	if objects[0] != b.Object {
		t.Fatalf("status names %s, store has %s", b.Object, objects[0])
	}
	if !nameRe.MatchString(b.Object) {
		t.Fatalf("object name %q does not match <time>-<hex32>.tar.zst.gpg", b.Object)
	}
	sidecar, _ := os.ReadFile(filepath.Join(f.dest, "web1", objects[1]))
	want := fmt.Sprintf("# drym backup statement 1\n# host web1\n# size %d\n%s  %s\n", b.BytesOut, b.SHA256, b.Object)
	if string(sidecar) != want || b.Signature != objects[2] {
		t.Fatalf("statement %q, signature %q", sidecar, b.Signature)
	}
	// Stock tools trust it: gpg verifies the host key's signature over the
	// statement, then sha256sum -c checks the object against it.
	verifyStock(t, filepath.Join(f.dest, "web1"), b.Object, strings.TrimSuffix(f.key, ".asc")+".pub.asc")
	// key_ids are the session key packets' key IDs, as gpg reads them
	// from the object; the history and the last success carry them too.
	gpgIDs := packetKeyIDs(t, filepath.Join(f.dest, "web1", b.Object))
	if len(gpgIDs) != 1 || !slices.Equal(b.KeyIDs, gpgIDs) {
		t.Fatalf("key_ids %v, gpg --list-packets %v", b.KeyIDs, gpgIDs)
	}
	if len(b.History) != 1 || !slices.Equal(b.History[0].KeyIDs, gpgIDs) || b.History[0].Signature != b.Signature ||
		b.LastSuccess == nil || !slices.Equal(b.LastSuccess.KeyIDs, gpgIDs) || b.LastSuccess.Signature != b.Signature {
		t.Fatalf("history %+v, last success %+v", b.History, b.LastSuccess)
	}
	sum, err := exec.Command("sha256sum", filepath.Join(f.dest, "web1", b.Object)).Output()
	must(t, err)
	if !strings.HasPrefix(string(sum), b.SHA256) {
		t.Fatalf("status sha256 %s, object %s", b.SHA256, sum)
	}
	into := filepath.Join(f.dir, "restored")
	restoreStock(t, filepath.Join(f.dest, "web1", b.Object), f.key, into)
	sameTree(t, f.src, filepath.Join(into, strings.TrimPrefix(f.src, "/")), true)
	if _, err := os.Stat(filepath.Join(into, ".drym", "manifest.json")); err != nil {
		t.Fatal("no manifest in the archive")
	}
	// The hard link came back as a hard link.
	a, _ := os.Stat(filepath.Join(into, strings.TrimPrefix(f.src, "/"), "srv/blob.bin"))
	h, _ := os.Stat(filepath.Join(into, strings.TrimPrefix(f.src, "/"), "srv/blob.hard"))
	if !os.SameFile(a, h) {
		t.Error("hard link restored as a copy")
	}
}

var nameRe = regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{32}\.tar\.zst\.gpg$`)

// Put-only credentials on each S3 server; restores with aws-cli and
// stock tools.
func TestBackupToS3PutOnly(t *testing.T) {
	testutil.ForEachS3(t, testBackupToS3PutOnly)
}

func testBackupToS3PutOnly(t *testing.T, srv *testutil.S3Server) {
	aws := testutil.Need(t, "aws")
	f := newFixture(t)
	f.env = srv.Env()
	f.init("s3://"+srv.Bucket+"/drym", "--endpoint", srv.Endpoint, "--path-style",
		"--profile", srv.PutProfile, "--read-profile", srv.ReadProfile)
	out, errOut, code := f.run("backup")
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	b := f.backupStatus()
	keys := srv.Keys(t, "drym/web1/") // the object, its statement, its signature and the append-only probe
	if len(keys) != 4 || keys[0] != "drym/web1/"+b.Object || keys[1] != keys[0]+".sha256" || keys[2] != keys[0]+".sig" || keys[3] != "drym/web1/"+store.ProbeName {
		t.Fatalf("bucket holds %v, status names %s", keys, b.Object)
	}
	// Download with aws-cli using the read-only profile, restore with stock tools.
	obj := filepath.Join(f.dir, "object")
	cp := exec.Command(aws, "--endpoint-url", srv.Endpoint, "--profile", srv.ReadProfile,
		"s3", "cp", "s3://"+srv.Bucket+"/"+keys[0], obj)
	cp.Env = srv.Env()
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("aws s3 cp: %v\n%s", err, out)
	}
	into := filepath.Join(f.dir, "restored")
	restoreStock(t, obj, f.key, into)
	sameTree(t, f.src, filepath.Join(into, strings.TrimPrefix(f.src, "/")), true)

	// list works with the read profile.
	out, errOut, code = f.run("list")
	if code != 0 || !strings.Contains(out, b.Object) {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
}

// Failures are recorded with their reason; wrong credentials
// and unreachable endpoints fail in one line within 60 s.
func TestBackupFailuresAreRecorded(t *testing.T) {
	testutil.ForEachS3(t, testBackupFailuresAreRecorded)
}

func testBackupFailuresAreRecorded(t *testing.T, srv *testutil.S3Server) {
	cases := []struct {
		name  string
		setup func(f *kit) string // returns the destination
		extra []string
		want  string
	}{
		{"missing source", func(f *kit) string {
			must(t, os.RemoveAll(f.src))
			return "dir://" + f.dest
		}, nil, "no such file or directory"},
		{"unwritable destination", func(f *kit) string {
			must(t, os.WriteFile(f.dest, []byte("a file, not a dir"), 0o644))
			return "dir://" + f.dest
		}, nil, "not a directory"},
		{"wrong credentials", func(f *kit) string {
			return "s3://" + srv.Bucket + "/drym"
		}, []string{"--endpoint", srv.Endpoint, "--path-style", "--profile", srv.ReadProfile}, "check the credentials"},
		{"unreachable endpoint", func(f *kit) string {
			return "s3://" + srv.Bucket + "/drym"
		}, []string{"--endpoint", "http://127.0.0.1:" + testutil.FreePort(t), "--path-style", "--profile", srv.PutProfile}, "cannot reach"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.env = srv.Env()
			dest := c.setup(f)
			if c.name == "missing source" {
				must(t, os.MkdirAll(f.src, 0o755))
				f.init(dest, c.extra...)
				must(t, os.RemoveAll(f.src))
			} else {
				f.init(dest, c.extra...)
			}
			start := time.Now()
			_, errOut, code := f.run("backup")
			took := time.Since(start)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
			}
			if took > 60*time.Second {
				t.Fatalf("took %s", took)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, c.want) {
				t.Fatalf("stderr should be one line with %q:\n%s", c.want, errOut)
			}
			b := f.backupStatus()
			if b.State != status.Failed || !strings.Contains(b.Error, c.want) || b.Object != "" {
				t.Fatalf("status: state %s error %q object %q", b.State, b.Error, b.Object)
			}
			if b.LastSuccess != nil {
				t.Fatal("a failure recorded as last success")
			}
			if len(srv.Keys(t, "drym/")) != 0 {
				t.Fatal("an object appeared after a failed backup")
			}
		})
	}
}

// A second run while one holds the lock refuses at once.
func TestConcurrentBackupRefused(t *testing.T) {
	f := newFixture(t)
	f.init("dir://" + f.dest)
	lock, err := status.TryLock(f.state, "backup")
	must(t, err)
	defer lock.Unlock()
	start := time.Now()
	_, errOut, code := f.run("backup")
	if code != 1 || !strings.Contains(errOut, "holds") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusal took %s", d)
	}
	lock.Unlock()
	if _, errOut, code := f.run("backup"); code != 0 {
		t.Fatalf("after unlock: exit %d %s", code, errOut)
	}
}

// Re-running init keeps the key and the settings byte for byte.
func TestInitIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.init("dir://" + f.dest)
	key1, _ := os.ReadFile(f.key)
	cfg1, _ := os.ReadFile(f.cfg)
	f.init("dir:///somewhere/else")
	key2, _ := os.ReadFile(f.key)
	cfg2, _ := os.ReadFile(f.cfg)
	if !bytes.Equal(key1, key2) || !bytes.Equal(cfg1, cfg2) {
		t.Fatal("re-running init changed the key or the settings")
	}
	fi, _ := os.Stat(f.key)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode %v", fi.Mode())
	}
	pi, _ := os.Stat(strings.TrimSuffix(f.key, ".asc") + ".pub.asc")
	if pi.Mode().Perm() != 0o644 {
		t.Fatalf("public key mode %v", pi.Mode())
	}
	// --rotate-key makes a new key and keeps the old one beside it.
	if _, errOut, code := f.run("init", "--rotate-key"); code != 0 {
		t.Fatalf("rotate: %s", errOut)
	}
	key3, _ := os.ReadFile(f.key)
	if bytes.Equal(key1, key3) {
		t.Fatal("--rotate-key kept the old key")
	}
	retired, _ := filepath.Glob(f.key + ".*.retired-*")
	if len(retired) != 2 { // secret and public
		t.Fatalf("retired keys: %v", retired)
	}
	// Named, like the escrow zip, after the first 16 hex digits of the
	// old key's fingerprint.
	old, err := crypt.ParseKeys(key1)
	must(t, err)
	for _, p := range retired {
		if !strings.HasPrefix(filepath.Base(p), filepath.Base(f.key)+"."+crypt.Fingerprint(old[0])[:16]+".retired-") {
			t.Errorf("retired key %s is not named after %s…", p, crypt.Fingerprint(old[0])[:16])
		}
	}
}

// Bad settings exit 2 naming the key and line.
func TestBadSettings(t *testing.T) {
	cases := []struct {
		name, toml, want string
	}{
		{"unknown key", "host = \"h\"\nsources = [\"/etc\"]\nexcludes = [\"*.tmp\"]\n[destination]\nurl = \"dir:///tmp/x\"\n", `:3: unknown key "excludes"`},
		{"bad url", "host = \"h\"\nsources = [\"/etc\"]\n[destination]\nurl = \"ftp://x/y\"\n", `:4: destination.url`},
		{"missing sources", "host = \"h\"\n[destination]\nurl = \"dir:///tmp/x\"\n", `sources: no sources`},
		{"syntax", "host = \"h\nsources = 1\n", `:1:`},
		{"credentials", "host = \"h\"\nsources = [\"/etc\"]\n[destination]\nurl = \"dir:///tmp/x\"\naws_secret_access_key = \"x\"\n", `never stores credentials`},
	}
	bin := testutil.Binary(t, "backup_runner")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "drym.toml")
			must(t, os.WriteFile(cfg, []byte(c.toml), 0o644))
			cmd := exec.Command(bin, "--config", cfg, "backup")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("want exit 2, got %v: %s", err, out)
			}
			if !strings.Contains(string(out), c.want) || !strings.Contains(string(out), cfg) {
				t.Fatalf("want %q naming %s, got %s", c.want, cfg, out)
			}
		})
	}
}

// A file that cannot be read is skipped as a warning; the run succeeds.
// Root reads everything, so the run drops to nobody (tests run as root in CI).
func TestUnreadableFileIsAWarning(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Unable(t, "needs root to run the backup as nobody")
	}
	testWarningsAsNobody(t)
}

func testWarningsAsNobody(t *testing.T) {
	f := newFixture(t)
	// Everything in the tree but the key readable by nobody.
	filepath.WalkDir(f.src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Chmod(p, 0o644)
		}
		return nil
	})
	must(t, os.Chmod(filepath.Join(f.src, "etc/ssl/private/server.key"), 0o000))
	must(t, os.Chmod(filepath.Join(f.src, "etc/ssl/private"), 0o755))
	f.init("dir://" + f.dest)
	// Run as nobody: everything in the fixture is world-readable except the key.
	must(t, os.Chmod(filepath.Dir(f.dir), 0o755)) // t.TempDir's parent is 0700
	for _, p := range []string{f.dir, f.state, f.dest} {
		must(t, os.MkdirAll(p, 0o777))
		must(t, os.Chmod(p, 0o777))
	}
	must(t, os.Chmod(filepath.Join(f.dir, "etc"), 0o755))
	must(t, os.Chmod(strings.TrimSuffix(f.key, ".asc")+".pub.asc", 0o644))
	must(t, os.Chmod(f.cfg, 0o644))
	// backup signs with the secret key: the runner's user must read it.
	must(t, os.Chown(f.key, 65534, 65534))
	filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o777)
		}
		return nil
	})
	cmd := exec.Command(f.bin, "--config", f.cfg, "backup")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("backup as nobody: %v\n%s", err, out)
	}
	b := f.backupStatus()
	if b.State != status.OK || b.Warnings != 1 || len(b.WarningList) != 1 || !strings.Contains(b.WarningList[0], "server.key: permission denied") {
		t.Fatalf("status: state %s warnings %d %v", b.State, b.Warnings, b.WarningList)
	}
	if want := countFiles(t, f.src) - 1; b.Files != want {
		t.Fatalf("files %d, want %d (all but the unreadable key)", b.Files, want)
	}
}
