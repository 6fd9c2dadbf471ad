package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

// buildTree makes a source tree with the things backups and restores get
// wrong: 0600 files, non-ASCII, 200-byte and shell-hostile names, symlinks
// (relative, absolute, dangling), hard links, empty files, old mtimes, a few
// MiB of data.
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
	// Names that need PAX or GNU headers: 200 bytes, non-ASCII, shell
	// characters.
	long := strings.Repeat("long-name-", 20)
	must(os.MkdirAll(filepath.Join(src, "home", long), 0o755))
	must(os.WriteFile(filepath.Join(src, "home", long, long), []byte("deep\n"), 0o644))
	must(os.MkdirAll(filepath.Join(src, "home", "ünïcødé"), 0o755))
	must(os.WriteFile(filepath.Join(src, "home", "ünïcødé", "日本語.txt"), []byte("こんにちは\n"), 0o644))
	must(os.MkdirAll(filepath.Join(src, "weird"), 0o755))
	must(os.WriteFile(filepath.Join(src, "weird", "name with spaces & $sign"), []byte("x\n"), 0o644))
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
// or link target, hard-link group and, with mtimes, mtime.
func treeSnapshot(t testing.TB, dir string, mtimes bool) map[string]string {
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
		if mtimes {
			desc += " " + fi.ModTime().UTC().Format(time.RFC3339)
		}
		out[rel] = desc
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
func (r *kit) storeObject(data []byte, sidecarSum string, at time.Time) string {
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

// storeSigned stores data as a backup object signed as the host signs its
// own: a statement naming it, signed with the rig's host key. Hand-made
// archives then go through the same trust checks as real backups.
func (r *kit) storeSigned(data []byte, at time.Time) string {
	r.t.Helper()
	name := r.storeObject(data, "", at)
	keys, err := crypt.ReadKeyFile(r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	st := statement.Statement{Host: "h1", Object: name, Size: int64(len(data)), SHA256: sha(data)}.Marshal()
	sig, err := statement.Sign(st, keys[0])
	if err != nil {
		r.t.Fatal(err)
	}
	dir := filepath.Join(r.dest, "h1")
	must(r.t, os.WriteFile(filepath.Join(dir, name+statement.SidecarSuffix), st, 0o644))
	must(r.t, os.WriteFile(filepath.Join(dir, name+statement.SignatureSuffix), sig, 0o644))
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
	diffTrees(t, treeSnapshot(t, filepath.Join(to, strings.TrimPrefix(r.src, "/")), true), treeSnapshot(t, r.src, true))

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
	if out, errs, code := r.run("restore", "--to", to2, "no/such"); code != 1 || !strings.Contains(errs, "no/such is not in the backup") || out != "" {
		t.Errorf("restore of a missing path: exit %d\n%s%s", code, out, errs)
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
func stockArchive(t *testing.T, r *kit) []byte {
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
	gpg("--import", strings.TrimSuffix(r.key, ".asc")+".pub.asc")
	keys, err := crypt.ReadKeyFile(r.key)
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
	diffTrees(t, treeSnapshot(t, filepath.Join(to, "src"), true), treeSnapshot(t, r.src, true))

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
	diffTrees(t, treeSnapshot(t, filepath.Join(to, strings.TrimPrefix(r.src, "/")), true), treeSnapshot(t, r.src, true))

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

// inodeTree is treeSnapshot with inode numbers: a file replaced by an
// identical copy is still a change.
func inodeTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	return statTree(t, dir, func(st *unix.Stat_t) string { return fmt.Sprintf(" ino %d", st.Ino) })
}

// statTree is treeSnapshot with what describe says of each entry's lstat.
func statTree(t *testing.T, dir string, describe func(*unix.Stat_t) string) map[string]string {
	t.Helper()
	snap := treeSnapshot(t, dir, true)
	for rel := range snap {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, rel), &st); err == nil {
			snap[rel] += describe(&st)
		}
	}
	return snap
}

// entries lists a directory's names (none when it does not exist).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

// TestRestoreNothingUntilProven: a bit flipped early in an object larger
// than every pipeline buffer passes CFB decryption and fails only at the
// MDC, at the very end. Nothing of it may reach the target: not the edited
// file, not the files before or after it, and with --overwrite the good
// files already there stay untouched (same content, same inodes).
func TestRestoreNothingUntilProven(t *testing.T) {
	r := newRig(t, "", "", nil)
	src := filepath.Join(r.dir, "bsrc")
	must(t, os.MkdirAll(filepath.Join(src, "z", "sub"), 0o755))
	early := randBytes(512 << 10)
	must(t, os.WriteFile(filepath.Join(src, "a-early.bin"), early, 0o644))
	must(t, os.WriteFile(filepath.Join(src, "b-big.bin"), randBytes(32<<20), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "z", "sub", "file"), []byte("after the big one\n"), 0o644))
	must(t, os.Link(filepath.Join(src, "z", "sub", "file"), filepath.Join(src, "z", "hard")))
	must(t, os.WriteFile(filepath.Join(src, "z", "suid"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Chmod(filepath.Join(src, "z", "suid"), 0o4755))
	r.setSources(src)
	r.mustRun("backup")
	b := r.backupStatus()
	obj, err := os.ReadFile(r.objectPath(b.Object))
	must(t, err)
	if len(obj) < 30<<20 {
		t.Fatalf("object of %d bytes: not larger than the pipeline's buffers", len(obj))
	}
	// The early file's data starts a few KiB into the stream: 300 KiB in
	// is inside it. Its signed statement matches the damage (as if the
	// host had stored it so), so only the MDC can tell.
	bad := bytes.Clone(obj)
	bad[300<<10] ^= 0x10
	name := r.storeSigned(bad, time.Now().Add(time.Minute))
	base := strings.TrimPrefix(src, "/")

	// Into a new directory: nothing, not even the directory.
	to := filepath.Join(r.dir, "fresh")
	out, errs, code := r.run("restore", "--backup", name, "--to", to)
	if code != 1 || !strings.Contains(errs, "modification detection code") || !strings.Contains(errs, "nothing was written") || strings.Contains(out, "restored") {
		t.Errorf("restore of the damaged object: exit %d\n%s%s", code, out, errs)
	}
	if got := entries(t, to); len(got) != 0 {
		t.Errorf("the target holds %v after a failed restore", got)
	}

	// Over a good restore, with --overwrite: untouched.
	good := filepath.Join(r.dir, "good")
	r.mustRun("restore", "--backup", b.Object, "--to", good)
	before := inodeTree(t, good)
	out, errs, code = r.run("restore", "--backup", name, "--to", good, "--overwrite")
	if code != 1 || strings.Contains(out, "restored") {
		t.Errorf("restore --overwrite of the damaged object: exit %d\n%s%s", code, out, errs)
	}
	diffTrees(t, inodeTree(t, good), before)
	if got, _ := os.ReadFile(filepath.Join(good, base, "a-early.bin")); !bytes.Equal(got, early) {
		t.Error("a-early.bin was replaced by the damaged copy")
	}

	// Part of the backup: the same rule.
	part := filepath.Join(r.dir, "part")
	if _, errs, code := r.run("restore", "--backup", name, "--to", part, "/"+base+"/a-early.bin"); code != 1 || len(entries(t, part)) != 0 {
		t.Errorf("restore of one path of the damaged object: exit %d, target holds %v\n%s", code, entries(t, part), errs)
	}

	// --keep-unverified keeps what was unpacked, private and labelled,
	// with the setuid bit held back; the damage is really in it.
	keep := filepath.Join(r.dir, "keep")
	_, errs, code = r.run("restore", "--backup", name, "--to", keep, "--keep-unverified")
	got := entries(t, keep)
	if code != 1 || len(got) != 1 || !strings.HasPrefix(got[0], "UNVERIFIED-") || !strings.Contains(errs, "UNVERIFIED") {
		t.Fatalf("--keep-unverified: exit %d, target holds %v\n%s", code, got, errs)
	}
	kept := filepath.Join(keep, got[0])
	if fi, err := os.Stat(kept); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("kept directory %v %v, want mode 0700", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(kept, base, "a-early.bin")); err != nil || bytes.Equal(b, early) {
		t.Errorf("the kept early file (%v) is not the damaged one: the flip did not land where the test meant", err)
	}
	filepath.WalkDir(kept, func(p string, d fs.DirEntry, err error) error {
		if fi, e := os.Lstat(p); e == nil && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			t.Errorf("%s: setuid/setgid on unverified data", p)
		}
		return nil
	})
}

// TestRestoreMergeLinksAndDirModes: restoring into an existing tree merges
// directories (an existing one keeps its own mode unless --overwrite),
// keeps hard links linked, and gives new directories their modes and
// mtimes once their content is in (a read-only directory too).
func TestRestoreMergeLinksAndDirModes(t *testing.T) {
	r := newRig(t, "", "", nil)
	src := filepath.Join(r.dir, "msrc")
	must(t, os.MkdirAll(filepath.Join(src, "keep", "ro"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "keep", "a"), []byte("a\n"), 0o644))
	must(t, os.Link(filepath.Join(src, "keep", "a"), filepath.Join(src, "keep", "a2")))
	must(t, os.WriteFile(filepath.Join(src, "keep", "ro", "inside"), []byte("ro\n"), 0o444))
	must(t, os.Chmod(filepath.Join(src, "keep", "ro"), 0o555))
	must(t, os.Chmod(filepath.Join(src, "keep"), 0o750))
	old := time.Date(2018, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, p := range []string{"keep/ro", "keep", "keep/a"} {
		must(t, os.Chtimes(filepath.Join(src, p), old, old))
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "keep", "ro"), 0o755) })
	r.setSources(src)
	r.mustRun("backup")
	base := strings.TrimPrefix(src, "/")

	to := filepath.Join(r.dir, "existing")
	must(t, os.MkdirAll(filepath.Join(to, base, "keep"), 0o700))
	must(t, os.WriteFile(filepath.Join(to, base, "keep", "mine.txt"), []byte("mine\n"), 0o600))
	t.Cleanup(func() { os.Chmod(filepath.Join(to, base, "keep", "ro"), 0o755) })
	r.mustRun("restore", "--to", to)
	k := filepath.Join(to, base, "keep")
	if fi, _ := os.Stat(k); fi.Mode().Perm() != 0o700 {
		t.Errorf("existing keep/ is %v, want its own 0700 kept (no --overwrite)", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(filepath.Join(k, "mine.txt")); string(b) != "mine\n" {
		t.Errorf("mine.txt = %q", b)
	}
	var a1, a2 unix.Stat_t
	must(t, unix.Stat(filepath.Join(k, "a"), &a1))
	must(t, unix.Stat(filepath.Join(k, "a2"), &a2))
	if a1.Ino != a2.Ino || a1.Nlink != 2 {
		t.Errorf("a and a2: inodes %d, %d (links %d), want one inode", a1.Ino, a2.Ino, a1.Nlink)
	}
	fi, err := os.Stat(filepath.Join(k, "ro"))
	if err != nil || fi.Mode().Perm() != 0o555 || !fi.ModTime().Equal(old) {
		t.Errorf("keep/ro: %v %v, want 0555 dated %v", fi.Mode(), err, old)
	}
	if b, _ := os.ReadFile(filepath.Join(k, "ro", "inside")); string(b) != "ro\n" {
		t.Errorf("keep/ro/inside = %q", b)
	}
	// --overwrite gives the existing directory the archived mode and time.
	r.mustRun("restore", "--to", to, "--overwrite")
	if fi, _ := os.Stat(k); fi.Mode().Perm() != 0o750 || !fi.ModTime().Equal(old) {
		t.Errorf("keep/ after --overwrite: %v %v, want 0750 dated %v", fi.Mode(), fi.ModTime(), old)
	}
}

// TestRestoreAcrossFileSystems: the staging directory is made inside the
// target, on its file system (here a tmpfs, not the temp dir's), so entries
// move by rename; a mount point inside the target (another file system
// again) gets copies, attributes, holes and hard links kept.
func TestRestoreAcrossFileSystems(t *testing.T) {
	r := newRig(t, "", "", nil)
	src := filepath.Join(r.dir, "xsrc")
	must(t, os.MkdirAll(filepath.Join(src, "mnt", "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "top"), []byte("top\n"), 0o640))
	must(t, os.WriteFile(filepath.Join(src, "mnt", "f"), []byte("on the mount\n"), 0o600))
	must(t, os.Link(filepath.Join(src, "mnt", "f"), filepath.Join(src, "mnt", "d", "f2")))
	must(t, os.Symlink("f", filepath.Join(src, "mnt", "l")))
	sp, err := os.Create(filepath.Join(src, "mnt", "sparse"))
	must(t, err)
	sp.WriteAt([]byte("x"), 20<<20)
	sp.Close()
	old := time.Date(2017, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(src, "mnt", "f"), old, old))
	must(t, unix.Setxattr(filepath.Join(src, "mnt", "f"), "user.drym", []byte("x"), 0))
	r.setSources(src)
	r.mustRun("backup")
	want := attrTree(t, src)
	base := strings.TrimPrefix(src, "/")

	to := tmpfsDir(t)
	if out, errs, code := r.run("restore", "--to", to); code != 0 || strings.Contains(errs, "copied") {
		t.Fatalf("restore onto tmpfs: exit %d\n%s%s", code, out, errs)
	}
	diffAttrTrees(t, "tmpfs", attrTree(t, filepath.Join(to, base)), want)
	if got := entries(t, to); len(got) != 1 {
		t.Errorf("the target holds %v: a staging directory was left", got)
	}

	needRoot(t)
	to2 := filepath.Join(r.dir, "withmount")
	mnt := filepath.Join(to2, base, "mnt")
	must(t, os.MkdirAll(mnt, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "drym-test", mnt).CombinedOutput(); err != nil {
		testutil.Unable(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	// A default ACL there would hand itself down to every file made in
	// it: the copies must end up with their own ACLs (none), not that.
	testutil.Need(t, "setfacl")
	if out, err := exec.Command("setfacl", "-d", "-m", "u:nobody:rwx", mnt).CombinedOutput(); err != nil {
		t.Fatalf("setfacl: %v %s", err, out)
	}
	out, errs, code := r.run("restore", "--to", to2, "--overwrite")
	if code != 0 || !strings.Contains(errs, "copied, not moved") {
		t.Fatalf("restore with a mount point inside: exit %d\n%s%s", code, out, errs)
	}
	got := attrTree(t, filepath.Join(to2, base))
	delete(want, "mnt") // the mount point's own root: the tmpfs's, merged
	delete(got, "mnt")
	diffAttrTrees(t, "across a mount point", got, want)
	var a, b unix.Stat_t
	must(t, unix.Stat(filepath.Join(mnt, "f"), &a))
	must(t, unix.Stat(filepath.Join(mnt, "d", "f2"), &b))
	if a.Ino != b.Ino {
		t.Error("mnt/f and mnt/d/f2 are no longer one inode after the copy")
	}
}

// TestRestoreCommandLine: a bad PATH is a usage error found before anything
// is read; a PATH may be given as on the host or as archived; a PATH not in
// the backup fails without a success-sounding word; files lists what a
// verified backup holds, and nothing of an unverifiable one.
func TestRestoreCommandLine(t *testing.T) {
	r := newRig(t, "", "", nil)
	r.mustRun("backup")
	b := r.backupStatus()
	base := strings.TrimPrefix(r.src, "/")

	for _, bad := range [][]string{{"../etc"}, {r.src + "/../etc"}, {"etc/../../x"}} {
		to := filepath.Join(r.dir, "bad")
		out, errs, code := r.run(append([]string{"restore", "--to", to}, bad...)...)
		if code != 2 || out != "" || !strings.Contains(errs, `".."`) {
			t.Errorf("restore %v: exit %d, want 2 with the path named\n%s%s", bad, code, out, errs)
		}
		if _, err := os.Stat(to); err == nil {
			t.Errorf("restore %v created %s", bad, to)
		}
	}

	// The absolute source path and the archived form both work.
	for i, p := range []string{r.src + "/etc/hosts", base + "/etc/hosts", "/" + base + "/etc/"} {
		to := filepath.Join(r.dir, fmt.Sprint("p", i))
		if out, errs, code := r.run("restore", "--to", to, p); code != 0 || !strings.Contains(out, "restored") {
			t.Errorf("restore %s: exit %d\n%s%s", p, code, out, errs)
		}
		if _, err := os.Stat(filepath.Join(to, base, "etc", "hosts")); err != nil {
			t.Errorf("restore %s: %v", p, err)
		}
	}

	// Not in the backup: an error, nothing written, no "restored".
	to := filepath.Join(r.dir, "missing")
	out, errs, code := r.run("restore", "--to", to, r.src+"/etc/hosts", "/srv/nowhere")
	if code != 1 || out != "" || !strings.Contains(errs, "/srv/nowhere is not in the backup") || strings.Contains(errs, "restored ") {
		t.Errorf("restore of a missing path: exit %d\n%s%s", code, out, errs)
	}
	if len(entries(t, to)) != 0 {
		t.Errorf("restore of a missing path wrote %v", entries(t, to))
	}

	// files: the verified listing, as host paths.
	out, errs, code = r.run("files")
	if code != 0 || !strings.Contains(out, r.src+"/etc/hosts\n") || !strings.Contains(errs, "verified against its manifest") {
		t.Errorf("files: exit %d\n%s%s", code, out, errs)
	}
	out = r.mustRun("files", "--long", r.src+"/etc/ssl")
	if !strings.Contains(out, "-rw------- ") || !strings.Contains(out, r.src+"/etc/ssl/private/server.key") || strings.Contains(out, "etc/hosts") {
		t.Errorf("files --long etc/ssl:\n%s", out)
	}
	if out, errs, code := r.run("files", "/srv/nowhere"); code != 1 || !strings.Contains(errs, "/srv/nowhere: not in backup") || out != "" {
		t.Errorf("files of a missing path: exit %d\n%s%s", code, out, errs)
	}
	obj, _ := os.ReadFile(r.objectPath(b.Object))
	bad := bytes.Clone(obj)
	bad[len(bad)/2] ^= 1
	name := r.storeSigned(bad, time.Now().Add(time.Hour))
	if out, errs, code := r.run("files", "--backup", name); code != 1 || out != "" || !strings.Contains(errs, "nothing listed") {
		t.Errorf("files of a damaged backup: exit %d\n%s%s", code, out, errs)
	}

	help, _, _ := r.run("restore", "--help")
	for _, w := range []string{"--keep-unverified", "/srv/www", "verified"} {
		if !strings.Contains(help, w) {
			t.Errorf("restore --help does not mention %q:\n%s", w, help)
		}
	}
	if help, _, _ := r.run("--help"); !strings.Contains(help, "files") {
		t.Errorf("--help does not list the files command:\n%s", help)
	}
}

// TestRestoreInterruptedWhileUnpacking: SIGTERM before the backup is proven
// leaves nothing: no staging directory, no target directory it made.
func TestRestoreInterruptedWhileUnpacking(t *testing.T) {
	r := newRig(t, "", "", nil)
	src := filepath.Join(r.dir, "isrc")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a-small"), []byte("first\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "big"), randBytes(64<<20), 0o644))
	r.setSources(src)
	r.mustRun("backup")
	to := filepath.Join(r.dir, "target")
	cmd := exec.Command(r.bin, "--config", r.cfg, "restore", "--to", to)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	must(t, cmd.Start())
	// Wait for the staging directory, then interrupt.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(to, ".drym-restore-*")); len(m) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Stopped first, so that the restore cannot finish between the
	// signal being sent and being handled; continued, it handles SIGTERM
	// mid-unpack.
	cmd.Process.Signal(syscall.SIGSTOP)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Process.Signal(syscall.SIGCONT)
	err := cmd.Wait()
	if err == nil {
		testutil.Unable(t, "the restore of 64 MiB finished before it could be stopped")
	}
	if !strings.Contains(errb.String(), "interrupted") || !strings.Contains(errb.String(), "nothing was written") {
		t.Errorf("stderr: %s", errb.String())
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("the target is left behind (%v): %v", err, entries(t, to))
	}
}

// untouchedTree is inodeTree with nanosecond mtimes and ctimes: restore
// sets whole-second mtimes from the archive, so only the ctime shows that
// an entry was rewritten in place, chmodded or re-timed with the values it
// already had.
func untouchedTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	return statTree(t, dir, func(st *unix.Stat_t) string {
		return fmt.Sprintf(" ino %d mtime %d.%09d ctime %d.%09d", st.Ino, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	})
}

// reencrypt is the plaintext of the host's object obj under a fresh
// session key, to the host key: an object the host key decrypts, whose MDC
// passes and whose manifest matches, but whose bytes (and so SHA-256)
// differ from what the host signed.
func (r *kit) reencrypt(obj []byte) []byte {
	r.t.Helper()
	sec, err := crypt.ReadKeyFile(r.key)
	must(r.t, err)
	plain, err := crypt.Decrypt(bytes.NewReader(obj), sec)
	must(r.t, err)
	data, err := io.ReadAll(plain)
	must(r.t, err)
	pub, err := crypt.ReadKeyFile(r.pubKey())
	must(r.t, err)
	var buf bytes.Buffer
	w, err := crypt.Encrypt(&buf, pub)
	must(r.t, err)
	_, err = w.Write(data)
	must(r.t, err)
	must(r.t, w.Close())
	return buf.Bytes()
}

// TestRestoreRefusesSHA256Mismatch: the object under a signed name is not
// the object the host signed, yet it decrypts with the host key and its MDC
// passes, so the signed statement's SHA-256 is the only thing that can tell.
// restore must refuse it and write nothing (the SHA-256 is known only at
// the end of the stream, after everything was unpacked), and test-restore
// must fail. The statement and signature stay the host's own.
func TestRestoreRefusesSHA256Mismatch(t *testing.T) {
	r := newRig(t, "", "", nil)
	version := filepath.Join(r.src, "version")
	must(t, os.WriteFile(version, []byte("older\n"), 0o644))
	r.mustRun("backup")
	older := r.backupStatus().Object
	must(t, os.WriteFile(version, []byte("newer\n"), 0o644))
	r.mustRun("backup")
	newer := r.backupStatus().Object
	if older == newer {
		t.Fatalf("two backups, one name %s", older)
	}
	genuine, err := os.ReadFile(r.objectPath(newer))
	must(t, err)
	olderObj, err := os.ReadFile(r.objectPath(older))
	must(t, err)
	base := strings.TrimPrefix(r.src, "/")

	// A good restore of the newer backup, to be left alone by --overwrite
	// of the substituted object.
	good := filepath.Join(r.dir, "good")
	r.mustRun("restore", "--backup", newer, "--to", good)
	before := untouchedTree(t, good)
	r.mustRun("test-restore", "--backup", newer)

	shaMismatch := `SHA-256 [0-9a-f]+… differs from [0-9a-f]+… in .*` + regexp.QuoteMeta(newer)
	tests := []struct {
		name string
		data []byte
		// want is the cause restore and test-restore must name.
		want string
		// unpacked: refused only after the whole object was read and
		// unpacked into staging, so restore says nothing was written.
		unpacked bool
	}{
		// Same plaintext, new session key: same size, the manifest
		// verifies, the MDC passes. Only the SHA-256 differs.
		{"re-encrypted copy", r.reencrypt(genuine), shaMismatch, true},
		// A rollback to the host's own older backup. Its size rarely
		// equals the newer one's (the manifest's time and hashes
		// compress differently), and then the signed statement's size
		// refuses it before a byte is read; when it does, only the
		// SHA-256 can tell. Either way it is refused.
		{"older backup of the host", olderObj, shaMismatch + `|says \d+ bytes, the object has \d+`, false},
	}
	if len(tests[0].data) != len(genuine) {
		t.Fatalf("re-encrypted object is %d bytes, the genuine one %d: the statement's size would refuse it first", len(tests[0].data), len(genuine))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.data, genuine) {
				t.Fatal("the substitute is the genuine object")
			}
			// The dir store keeps each object as the file <dest>/<host>/<name>
			// (internal/store/dir.go, mode 0644): rewrite its bytes in
			// place, as someone with write access to the store could.
			obj := r.objectPath(newer)
			must(t, os.WriteFile(obj, tt.data, 0o644))
			t.Cleanup(func() { must(t, os.WriteFile(obj, genuine, 0o644)) })
			why := regexp.MustCompile(tt.want)

			// Into a new directory: refused, nothing written.
			to := filepath.Join(r.dir, "fresh-"+strings.ReplaceAll(tt.name, " ", "-"))
			out, errs, code := r.run("restore", "--backup", newer, "--to", to)
			if code != 1 || !why.MatchString(errs) || tt.unpacked && !strings.Contains(errs, "nothing was written") || strings.Contains(out, "restored") {
				t.Errorf("restore: exit %d, want 1 naming %q\n%s%s", code, tt.want, out, errs)
			}
			if got := entries(t, to); len(got) != 0 {
				t.Errorf("the target holds %v after a refused restore", got)
			}

			// Part of it: the same rule.
			part := to + "-part"
			if out, errs, code := r.run("restore", "--backup", newer, "--to", part, "/"+base+"/version"); code != 1 || !why.MatchString(errs) || len(entries(t, part)) != 0 {
				t.Errorf("restore of one path: exit %d, target holds %v\n%s%s", code, entries(t, part), out, errs)
			}

			// Over the good restore with --overwrite: every entry keeps its
			// content, inode, mtime and ctime.
			out, errs, code = r.run("restore", "--backup", newer, "--to", good, "--overwrite")
			if code != 1 || !why.MatchString(errs) || strings.Contains(out, "restored") {
				t.Errorf("restore --overwrite: exit %d\n%s%s", code, out, errs)
			}
			diffTrees(t, untouchedTree(t, good), before)
			if b, _ := os.ReadFile(filepath.Join(good, base, "version")); string(b) != "newer\n" {
				t.Errorf("version in the good restore is %q, want the newer backup's", b)
			}

			// test-restore fails, with the cause in test-restore.json.
			out, errs, code = r.run("test-restore", "--backup", newer)
			tr := r.testRestoreStatus()
			if code != 1 || tr.State != status.Failed || tr.Backup != newer || !why.MatchString(tr.Error) || tr.SHA256Checked {
				t.Errorf("test-restore: exit %d, %s %q (backup %s, sha256 checked %v)\n%s%s", code, tr.State, tr.Error, tr.Backup, tr.SHA256Checked, out, errs)
			}
		})
	}
	// The genuine bytes back: the same backup restores and tests again,
	// so the refusals above were about the bytes, not the name.
	r.mustRun("test-restore", "--backup", newer)
	again := filepath.Join(r.dir, "again")
	r.mustRun("restore", "--backup", newer, "--to", again)
	if b, _ := os.ReadFile(filepath.Join(again, base, "version")); string(b) != "newer\n" {
		t.Errorf("restore of the genuine object: version %q", b)
	}
}
