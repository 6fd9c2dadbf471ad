package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

// rig is one host's drym set-up in a temp dir, driven through the built
// binary.
type rig struct {
	t        *testing.T
	bin      string
	dir      string
	cfg      string
	src      string
	dest     string // dir store root (dir destinations)
	stateDir string
	keyFile  string
	env      []string
}

func newRig(t *testing.T, destURL string, extra string, env []string) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{
		t: t, bin: testutil.Binary(t, "backup_runner"), dir: dir,
		cfg: filepath.Join(dir, "drym.toml"), src: filepath.Join(dir, "src"),
		dest: filepath.Join(dir, "dest"), stateDir: filepath.Join(dir, "state"),
		keyFile: filepath.Join(dir, "keys", "host-key.asc"), env: env,
	}
	if destURL == "" {
		destURL = "dir://" + r.dest
	}
	buildTree(t, r.src)
	toml := fmt.Sprintf("host = \"h1\"\nsources = [%q]\nstate_dir = %q\nkey_file = %q\n\n[destination]\nurl = %q\n%s",
		r.src, r.stateDir, r.keyFile, destURL, extra)
	if err := os.WriteFile(r.cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mustRun("init")
	return r
}

// run runs backup_runner with the rig's settings; it returns stdout, stderr
// and the exit code.
func (r *rig) run(args ...string) (string, string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"--config", r.cfg}, args...)...)
	if r.env != nil {
		cmd.Env = r.env
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("backup_runner %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (r *rig) mustRun(args ...string) string {
	r.t.Helper()
	out, errs, code := r.run(args...)
	if code != 0 {
		r.t.Fatalf("backup_runner %v: exit %d\n%s%s", args, code, out, errs)
	}
	return out
}

func (r *rig) backupStatus() status.Backup {
	r.t.Helper()
	var b status.Backup
	if err := status.Read(filepath.Join(r.stateDir, status.BackupFile), &b); err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *rig) testRestoreStatus() status.TestRestore {
	r.t.Helper()
	var tr status.TestRestore
	if err := status.Read(filepath.Join(r.stateDir, status.TestRestoreFile), &tr); err != nil {
		r.t.Fatal(err)
	}
	return tr
}

// buildTree makes a source tree with what a restore must reproduce: 0600
// files, non-ASCII names, symlinks (relative, absolute, dangling), hard
// links, empty files, old mtimes, a few MiB of data.
func buildTree(t testing.TB, src string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc", "ssl", "private"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "srv", "données", "日本"), 0o755))
	must(os.WriteFile(filepath.Join(src, "etc", "hosts"), []byte("127.0.0.1 localhost\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "etc", "ssl", "private", "server.key"), []byte("-----BEGIN KEY-----\n"), 0o600))
	must(os.WriteFile(filepath.Join(src, "etc", "empty"), nil, 0o644))
	must(os.WriteFile(filepath.Join(src, "srv", "données", "日本", "ファイル – naïve.txt"), bytes.Repeat([]byte("héllo wörld\n"), 20000), 0o640))
	data := make([]byte, 4<<20+3)
	for i := range data {
		data[i] = byte(i*i>>7) ^ byte(i>>13)
	}
	must(os.WriteFile(filepath.Join(src, "srv", "blob.bin"), data, 0o755))
	for i := range 50 {
		must(os.WriteFile(filepath.Join(src, "srv", fmt.Sprintf("f%03d", i)), []byte(strings.Repeat("x", i*37)), 0o644))
	}
	must(os.Symlink("hosts", filepath.Join(src, "etc", "hosts.rel")))
	must(os.Symlink("/etc/passwd", filepath.Join(src, "etc", "passwd.abs")))
	must(os.Symlink("../nowhere", filepath.Join(src, "etc", "dangling")))
	must(os.Link(filepath.Join(src, "srv", "blob.bin"), filepath.Join(src, "srv", "blob.hard")))
	must(os.Chmod(filepath.Join(src, "etc", "ssl", "private"), 0o700))
	old := time.Date(2019, 7, 14, 8, 9, 10, 0, time.UTC)
	for _, p := range []string{"etc/hosts", "etc/ssl/private/server.key", "srv/blob.bin", "etc/ssl/private", "srv/données/日本", "srv"} {
		must(os.Chtimes(filepath.Join(src, p), old, old))
	}
	lt := unixTimes(old)
	must(lutimes(filepath.Join(src, "etc", "hosts.rel"), lt))
}

// treeSnapshot describes every path below dir: type and mode, content hash
// or link target, hard-link group, mtime.
func treeSnapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			s := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(s[:8])
			ino := fi.Sys().(*syscall.Stat_t).Ino
			if first, ok := inodes[ino]; ok {
				desc += " same-inode-as " + first
			} else {
				inodes[ino] = rel
			}
		}
		out[rel] = desc + " " + fi.ModTime().UTC().Format(time.RFC3339)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func countFiles(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	inodes := map[uint64]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			ino := fi.Sys().(*syscall.Stat_t).Ino
			if !inodes[ino] {
				inodes[ino] = true
				n++
			}
		}
		return nil
	})
	return n
}

func diffTrees(t testing.TB, got, want map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s:\n  restored %q\n  source   %q", k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: restored but not in the source", k)
		}
	}
}

// storeObject puts data into the rig's dir store under a fresh backup name
// (with a sidecar holding sidecarSum unless it is empty) and returns the
// name.
func (r *rig) storeObject(data []byte, sidecarSum string, at time.Time) string {
	r.t.Helper()
	name, err := backup.NewName(at)
	if err != nil {
		r.t.Fatal(err)
	}
	dir := filepath.Join(r.dest, "h1")
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		r.t.Fatal(err)
	}
	if sidecarSum != "" {
		sc := sidecarSum + "  " + name + "\n"
		if err := os.WriteFile(filepath.Join(dir, name+backup.SidecarSuffix), []byte(sc), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	return name
}

func TestTestRestoreAndRestore(t *testing.T) {
	r := newRig(t, "", "", nil)
	r.mustRun("backup")
	b := r.backupStatus()

	// A good backup verifies, with the source's file count.
	out := r.mustRun("test-restore")
	tr := r.testRestoreStatus()
	if tr.State != status.OK || !tr.Verified || !tr.SHA256Checked || tr.Backup != b.Object {
		t.Fatalf("test-restore status %+v\n%s", tr, out)
	}
	if n := countFiles(t, r.src); tr.Files != n || tr.Files != b.Files || tr.Bytes != b.BytesIn {
		t.Errorf("verified %d files/%d B; source has %d files, backup.json %d/%d", tr.Files, tr.Bytes, n, b.Files, b.BytesIn)
	}
	if tr.ObjectSHA256 != b.SHA256 || tr.ObjectBytes != b.BytesOut {
		t.Errorf("object %s/%d, backup.json %s/%d", tr.ObjectSHA256, tr.ObjectBytes, b.SHA256, b.BytesOut)
	}
	if want, _ := backup.ParseName(b.Object); !tr.BackupTime.Equal(want) {
		t.Errorf("backup_time %v, want %v", tr.BackupTime, want)
	}
	goodSuccess := tr.LastSuccess

	// Restore reproduces the tree.
	to := filepath.Join(r.dir, "restored")
	out, errs, code := r.run("restore", "--to", to)
	if code != 0 || !strings.Contains(out, "verified against the manifest") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	diffTrees(t, treeSnapshot(t, filepath.Join(to, strings.TrimPrefix(r.src, "/"))), treeSnapshot(t, r.src))

	// A second restore refuses to overwrite; --overwrite replaces.
	if _, errs, code := r.run("restore", "--to", to); code != 1 || !strings.Contains(errs, "--overwrite") {
		t.Errorf("restore over existing files: exit %d\n%s", code, errs)
	}
	if out, errs, code := r.run("restore", "--overwrite", "--to", to); code != 0 {
		t.Errorf("restore --overwrite: exit %d\n%s%s", code, out, errs)
	}

	// Restoring only some paths.
	to2 := filepath.Join(r.dir, "partial")
	base := strings.TrimPrefix(r.src, "/")
	if out, errs, code := r.run("restore", "--backup", b.Object, "--to", to2, base+"/etc/ssl"); code != 0 {
		t.Fatalf("restore etc/ssl: exit %d\n%s%s", code, out, errs)
	}
	if fi, err := os.Stat(filepath.Join(to2, base, "etc", "ssl", "private", "server.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(to2, base, "etc", "hosts")); err == nil {
		t.Error("etc/hosts restored though not asked for")
	}
	if _, errs, code := r.run("restore", "--to", to2, "no/such"); code != 1 || !strings.Contains(errs, "no/such: not in backup") {
		t.Errorf("restore of a missing path: exit %d\n%s", code, errs)
	}

	// Damaged objects fail with the cause named.
	obj, err := os.ReadFile(filepath.Join(r.dest, "h1", b.Object))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(pos int) []byte {
		d := bytes.Clone(obj)
		d[pos] ^= 0x01
		return d
	}
	otherKey, err := crypt.Generate("other")
	if err != nil {
		t.Fatal(err)
	}
	otherObj := otherBackup(t, r.src, otherKey)
	noManifest := stockArchive(t, r)

	at := time.Now().Add(time.Hour)
	tests := []struct {
		name    string
		data    []byte
		sidecar string // "" = none, "orig" = the good object's, "own" = its own
		want    string
	}{
		{"flip in the key packet", flip(30), "orig", "integrity check failed"},
		{"flip near the start", flip(300), "orig", "modification detection code"},
		{"flip in the middle", flip(len(obj) / 2), "orig", "modification detection code"},
		{"flip in the middle, no sidecar", flip(len(obj) / 2), "", "modification detection code"},
		{"flip near the end", flip(len(obj) - 2), "orig", "integrity check failed"},
		{"flip, sidecar matching the damage", flip(len(obj) / 3), "own", "modification detection code"},
		{"truncated", obj[:len(obj)/2], "orig", "truncated"},
		{"truncated by 1 byte", obj[:len(obj)-1], "", "truncated"},
		{"encrypted to another key", otherObj, "own", "not encrypted to this host's key"},
		{"no manifest", noManifest, "own", "no manifest"},
	}
	// These objects have a one-line sidecar and no signature, like backups
	// made before drym signed them: read with --allow-unsigned, the
	// decryption's own checks must still name the damage.
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := map[string]string{"orig": b.SHA256, "own": sha(tt.data), "": ""}[tt.sidecar]
			name := r.storeObject(tt.data, sc, at.Add(time.Duration(i)*time.Second))
			out, errs, code := r.run("test-restore", "--allow-unsigned", "--backup", name)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
			}
			tr := r.testRestoreStatus()
			if tr.State != status.Failed || !strings.Contains(tr.Error, tt.want) || tr.Backup != name {
				t.Errorf("status %s %q (backup %s), want failed with %q", tr.State, tr.Error, tr.Backup, tt.want)
			}
			if !tr.LastSuccess.Equal(goodSuccess) {
				t.Errorf("last_success %v, want it carried forward (%v)", tr.LastSuccess, goodSuccess)
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q does not name the cause %q", errs, tt.want)
			}
		})
	}
	// "latest" is never one of them: they are dated in the future and
	// unsigned. test-restore tests the good backup and reports them.
	out, errs, code = r.run("test-restore")
	tr = r.testRestoreStatus()
	if code != 0 || tr.Backup != b.Object || tr.FutureCount != len(tests) || !strings.Contains(errs, "in the future") {
		t.Errorf("test-restore of latest: exit %d, backup %s, %d future\n%s%s", code, tr.Backup, tr.FutureCount, out, errs)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// otherBackup makes a real drym backup of src encrypted to another key.
func otherBackup(t *testing.T, src string, key *openpgp.Entity) []byte {
	t.Helper()
	dir := t.TempDir()
	res, err := backup.Run(context.Background(), backup.Params{
		Host: "h1", Sources: []string{src}, Recipients: []*openpgp.Entity{key}, Signer: key, Store: store.NewDir(dir), Now: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, res.Name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// stockArchive encrypts the rig's source with stock tools to the host key:
// tar -cf - | zstd | gpg -e. No drym manifest.
func stockArchive(t *testing.T, r *rig) []byte {
	t.Helper()
	testutil.Need(t, "gpg")
	testutil.Need(t, "zstd")
	testutil.Need(t, "tar")
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	gpg := func(args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--quiet"}, args...)...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, errb.String())
		}
		return out
	}
	gpg("--import", strings.TrimSuffix(r.keyFile, ".asc")+".pub.asc")
	keys, err := crypt.ReadKeyFile(r.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	fp := crypt.Fingerprint(keys[0])
	sh := fmt.Sprintf("tar -C %q -cf - src | zstd -q -c | gpg --homedir %q --batch --quiet --trust-model always -e -r %s",
		filepath.Dir(r.src), home, fp)
	var errb bytes.Buffer
	cmd := exec.Command("sh", "-c", sh)
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, errb.String())
	}
	return out
}

// TestStockArchiveRestores: an archive made by tar | zstd | gpg -e to the
// host key restores, with the unverified warning; test-restore calls it
// failed (nothing to verify against).
func TestStockArchiveRestores(t *testing.T) {
	r := newRig(t, "", "", nil)
	if err := os.MkdirAll(filepath.Join(r.dest, "h1"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := r.storeObject(stockArchive(t, r), "", time.Now())
	to := filepath.Join(r.dir, "restored")
	out, errs, code := r.run("restore", "--allow-unsigned", "--backup", name, "--to", to)
	if code != 0 || !strings.Contains(errs, "unverified") || !strings.Contains(out, "UNVERIFIED") {
		t.Fatalf("restore of a stock archive: exit %d\n%s%s", code, out, errs)
	}
	diffTrees(t, treeSnapshot(t, filepath.Join(to, "src")), treeSnapshot(t, r.src))

	_, errs, code = r.run("test-restore", "--allow-unsigned", "--backup", name)
	tr := r.testRestoreStatus()
	if code != 1 || tr.State != status.Failed || !strings.Contains(tr.Error, "no manifest") || tr.Verified {
		t.Errorf("test-restore of a stock archive: exit %d, %s %q\n%s", code, tr.State, tr.Error, errs)
	}
	if tr.Files != countFiles(t, r.src) {
		t.Errorf("read %d files, source has %d", tr.Files, countFiles(t, r.src))
	}
}

// TestS3ReadProfile: against each S3 server, backup uses the put-only profile,
// and test-restore and restore the read-only one.
func TestS3ReadProfile(t *testing.T) {
	testutil.ForEachS3(t, testS3ReadProfile)
}

func testS3ReadProfile(t *testing.T, srv *testutil.S3Server) {
	extra := fmt.Sprintf("endpoint = %q\nregion = \"us-east-1\"\npath_style = true\nprofile = %q\nread_profile = %q\n",
		srv.Endpoint, srv.PutProfile, srv.ReadProfile)
	r := newRig(t, "s3://"+srv.Bucket+"/drym", extra, srv.Env())
	r.mustRun("backup")
	b := r.backupStatus()
	out := r.mustRun("test-restore")
	tr := r.testRestoreStatus()
	if tr.State != status.OK || tr.Backup != b.Object || !tr.SHA256Checked || tr.Files != b.Files {
		t.Fatalf("test-restore over S3: %+v\n%s", tr, out)
	}
	to := filepath.Join(r.dir, "restored")
	r.mustRun("restore", "--to", to)
	diffTrees(t, treeSnapshot(t, filepath.Join(to, strings.TrimPrefix(r.src, "/"))), treeSnapshot(t, r.src))

	// With the put-only profile for reading too, the store refuses, and
	// test-restore says so instead of passing.
	bad := strings.Replace(extra, "read_profile = \""+srv.ReadProfile, "read_profile = \""+srv.PutProfile, 1)
	toml, _ := os.ReadFile(r.cfg)
	os.WriteFile(r.cfg, bytes.Replace(toml, []byte(extra), []byte(bad), 1), 0o644)
	_, errs, code := r.run("test-restore")
	if tr := r.testRestoreStatus(); code != 1 || tr.State != status.Failed || !strings.Contains(tr.Error, "denied") {
		t.Errorf("test-restore with put-only read credentials: exit %d, %s %q\n%s", code, tr.State, tr.Error, errs)
	}
}

func unixTimes(t time.Time) []unix.Timespec {
	ts := unix.NsecToTimespec(t.UnixNano())
	return []unix.Timespec{ts, ts}
}

// lutimes sets a symlink's own times.
func lutimes(p string, ts []unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
