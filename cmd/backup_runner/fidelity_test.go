package main

import (
	"archive/tar"
	"bytes"
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

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/archive"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/testutil"
)

// needRoot skips a test that needs root: file capabilities, trusted.*
// attributes, owners, mounts.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Unable(t, "needs root (file capabilities, owners, trusted.* attributes)")
	}
}

// sh runs a shell command line and fails the test when it fails.
func sh(t *testing.T, cmdline string) string {
	t.Helper()
	out, err := exec.Command("bash", "-o", "pipefail", "-c", cmdline).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, out)
	}
	return string(out)
}

// setSources points the rig's settings at other source directories.
func (r *kit) setSources(srcs ...string) {
	r.t.Helper()
	toml, err := os.ReadFile(r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	var q []string
	for _, s := range srcs {
		q = append(q, fmt.Sprintf("%q", s))
	}
	lines := strings.Split(string(toml), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "sources = ") {
			lines[i] = "sources = [" + strings.Join(q, ", ") + "]"
		}
	}
	if err := os.WriteFile(r.cfg, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// seal makes a backup object of a tar stream as drym does (zstd, then
// OpenPGP to the host key), for archives a test builds member by member.
func (r *kit) seal(tarData []byte) []byte {
	r.t.Helper()
	pub, err := crypt.ReadKeyFile(strings.TrimSuffix(r.key, ".asc") + ".pub.asc")
	if err != nil {
		r.t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := crypt.Encrypt(&buf, pub)
	if err != nil {
		r.t.Fatal(err)
	}
	zw, _ := zstd.NewWriter(w)
	zw.Write(tarData)
	if err := zw.Close(); err != nil {
		r.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		r.t.Fatal(err)
	}
	return buf.Bytes()
}

// objectPath is where the rig's dir store keeps a backup.
func (r *kit) objectPath(name string) string { return filepath.Join(r.dest, "h1", name) }

// stockRestore unpacks an object with gpg, zstd and GNU tar alone, as
// docs/RESTORE.md says to: tar --xattrs --xattrs-include='*' --acls -xpf.
func (r *kit) stockRestore(object, into string) {
	r.t.Helper()
	testutil.Need(r.t, "gpg")
	testutil.Need(r.t, "zstd")
	testutil.Need(r.t, "tar")
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		r.t.Fatal(err)
	}
	defer func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	}()
	sh(r.t, fmt.Sprintf("GNUPGHOME=%q gpg --batch --quiet --import %q", home, r.key))
	if err := os.MkdirAll(into, 0o700); err != nil {
		r.t.Fatal(err)
	}
	sh(r.t, fmt.Sprintf("GNUPGHOME=%q gpg --batch --quiet -d %q | zstd -dq | tar --xattrs --xattrs-include='*' --acls -xpf - -C %q 2>&1 | { grep -v 'time stamp' || true; }",
		home, object, into))
}

// attrTree describes every path below dir with what a faithful restore must
// reproduce: type and mode, owner, content hash or link target, mtime,
// every extended attribute (ACLs and capabilities included, raw), and
// whether a regular file has holes.
func attrTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fi, _ := os.Lstat(p)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + hex.EncodeToString([]byte(l))
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + sha(b)[:16]
			if st.Blocks*512 < st.Size {
				desc += fmt.Sprintf(" sparse(%d KiB allocated)", st.Blocks/2)
			}
		}
		if rel != "." {
			desc += fmt.Sprintf(" mtime %d", st.Mtim.Sec)
		}
		buf := make([]byte, 64<<10)
		n, _ := unix.Llistxattr(p, buf)
		var names []string
		for _, a := range strings.Split(string(buf[:n]), "\x00") {
			if a != "" {
				names = append(names, a)
			}
		}
		sort.Strings(names)
		for _, a := range names {
			v := make([]byte, 64<<10)
			m, _ := unix.Lgetxattr(p, a, v)
			desc += fmt.Sprintf(" %s=%x", a, v[:m])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffAttrTrees(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "." {
			continue
		}
		if got[k] != want[k] {
			t.Errorf("%s: %s:\n  restored %s\n  source   %s", what, k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && k != "." {
			t.Errorf("%s: %s: restored but not in the source", what, k)
		}
	}
}

// TestRestoreFidelity: extended attributes, POSIX ACLs (access and
// default), file capabilities, setuid, owners and sparse files come back
// exactly, through drym's restore and through stock GNU tar; sockets and
// FIFOs are counted and listed as skipped.
func TestRestoreFidelity(t *testing.T) {
	needRoot(t)
	testutil.Need(t, "setfacl")
	testutil.Need(t, "setcap")
	r := newRig(t, "", "", nil)
	src := filepath.Join(r.dir, "fsrc")
	must(t, os.MkdirAll(filepath.Join(src, "shared", "sub"), 0o755))
	// A 0600 file with an ACL: its mode reads 0640 (the mask), and
	// without the ACL it would come back group-readable.
	must(t, os.WriteFile(filepath.Join(src, "secret.txt"), []byte("s3cret\n"), 0o600))
	sh(t, fmt.Sprintf("cd %q && setfacl -m u:nobody:r secret.txt && setfattr -n user.comment -v 'keep me' secret.txt && setfattr -n user.bin -v 0x00ff10 secret.txt", src))
	sh(t, fmt.Sprintf("cd %q && setfacl -m g:adm:rx shared && setfacl -d -m g:adm:rwx,u:nobody:r shared && setfattr -n user.dir -v yes shared", src))
	must(t, os.WriteFile(filepath.Join(src, "shared", "sub", "plain"), []byte("inherits nothing on restore\n"), 0o644))
	sh(t, fmt.Sprintf("cd %q && setfacl -b shared/sub/plain && setfacl -k shared/sub", src))
	// A setuid binary with a file capability, owned by root.
	must(t, os.WriteFile(filepath.Join(src, "ping"), bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 1000), 0o755))
	sh(t, fmt.Sprintf("cd %q && setcap cap_net_raw=ep ping && chmod 4755 ping", src))
	// Owned by someone else, with a trusted.* attribute on a symlink.
	must(t, os.WriteFile(filepath.Join(src, "nobodys"), []byte("n\n"), 0o640))
	must(t, os.Chown(filepath.Join(src, "nobodys"), 65534, 65534))
	must(t, os.Symlink("nobodys", filepath.Join(src, "link")))
	must(t, unix.Lsetxattr(filepath.Join(src, "link"), "trusted.drym", []byte("on a symlink"), 0))
	// Sparse: 64 MiB with two small data regions.
	sparse := filepath.Join(src, "sparse.img")
	f, err := os.Create(sparse)
	must(t, err)
	f.WriteAt([]byte("start"), 4<<20)
	f.WriteAt(bytes.Repeat([]byte("middle"), 10000), 30<<20)
	must(t, f.Truncate(64<<20))
	f.Close()
	// Not data: skipped, but counted and listed.
	must(t, syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644))
	sock, err := syscallSocket(filepath.Join(src, "sock"))
	must(t, err)
	defer syscall.Close(sock)
	old := time.Date(2019, 7, 14, 8, 9, 10, 0, time.UTC)
	for _, p := range []string{"secret.txt", "ping", "shared/sub/plain", "shared/sub", "shared", "sparse.img"} {
		must(t, os.Chtimes(filepath.Join(src, p), old, old))
	}
	want := attrTree(t, src)
	delete(want, "fifo") // not data: skipped
	delete(want, "sock")
	if !strings.Contains(want["sparse.img"], "sparse") {
		t.Fatalf("the test's sparse file is not sparse here: %s", want["sparse.img"])
	}
	r.setSources(src)

	out := r.mustRun("backup")
	b := r.backupStatus()
	if b.Skipped != 2 || len(b.SkippedList) != 2 || !strings.Contains(strings.Join(b.SkippedList, "|"), src+"/fifo: FIFO") ||
		!strings.Contains(strings.Join(b.SkippedList, "|"), src+"/sock: socket") {
		t.Errorf("backup.json skipped %d %q, want the FIFO and the socket", b.Skipped, b.SkippedList)
	}
	if !strings.Contains(out, "skipped: "+src+"/sock: socket") || !strings.Contains(out, "2 skipped") {
		t.Errorf("backup did not list what it skipped:\n%s", out)
	}
	if raw, _ := os.ReadFile(filepath.Join(r.state, "backup.json")); !strings.Contains(string(raw), `"skipped": 2`) && !strings.Contains(string(raw), `"skipped":2`) {
		t.Errorf("backup.json has no skipped field:\n%s", raw)
	}
	r.mustRun("test-restore")

	// drym's restore.
	to := filepath.Join(r.dir, "restored")
	if out, errs, code := r.run("restore", "--to", to); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	diffAttrTrees(t, "drym restore", attrTree(t, filepath.Join(to, strings.TrimPrefix(src, "/"))), want)
	if fi, err := os.Stat(filepath.Join(to, strings.TrimPrefix(src, "/"), "secret.txt")); err == nil {
		if acl := sh(t, "getfacl -cp "+filepath.Join(to, strings.TrimPrefix(src, "/"), "secret.txt")); !strings.Contains(acl, "user:nobody:r--") || !strings.Contains(acl, "group::---") {
			t.Errorf("secret.txt: ACL %q (mode %v), want user:nobody:r-- and no group access", acl, fi.Mode())
		}
	}

	// Stock GNU tar, with the flags docs/RESTORE.md gives.
	stock := filepath.Join(r.dir, "stock")
	r.stockRestore(r.objectPath(b.Object), stock)
	diffAttrTrees(t, "stock tar", attrTree(t, filepath.Join(stock, strings.TrimPrefix(src, "/"))), want)
}

// syscallSocket makes a listening Unix socket at path.
func syscallSocket(path string) (int, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	return fd, syscall.Bind(fd, &syscall.SockaddrUnix{Name: path})
}

// member is one tar member of a hand-made archive.
type tmember struct {
	hdr  tar.Header
	body string
}

// handTar builds a tar stream with a version 2 manifest of the given
// entries as its last member (no manifest when entries is nil).
func handTar(t *testing.T, members []tmember, entries []archive.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := m.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(&h))
		tw.Write([]byte(m.body))
	}
	if entries != nil {
		man, err := archive.Manifest{Version: archive.ManifestVersion, Host: "h1", Created: time.Now().UTC().Truncate(time.Second), Entries: entries}.MarshalJSON()
		must(t, err)
		must(t, tw.WriteHeader(&tar.Header{Name: archive.ManifestName, Mode: 0o600, Size: int64(len(man)), ModTime: time.Now()}))
		tw.Write(man)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// TestRestoreNeverWidensAccess: an ACL that cannot be applied (it names a
// user this host does not have) leaves the group bits at what the ACL gave
// the owning group, not at the mask the mode holds, and the restore says so
// and fails.
func TestRestoreNeverWidensAccess(t *testing.T) {
	r := newRig(t, "", "", nil)
	must(t, os.MkdirAll(filepath.Join(r.dest, "h1"), 0o755))
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	acl := "user::rw-\nuser:no-such-user-drym:r--\ngroup::---\nmask::r--\nother::---\n"
	members := []tmember{{hdr: tar.Header{Name: "srv/secret", Mode: 0o640, ModTime: mt, PAXRecords: map[string]string{archive.PAXACLAccess: acl}}, body: "s3cret"}}
	entries := []archive.Entry{{Path: "srv/secret", Type: archive.TypeFile, Size: 6, SHA256: sha([]byte("s3cret")), Mode: "0640", MTime: mt.Unix(), Attrs: archive.Attrs{ACL: acl}}}
	// With a manifest (as drym writes) and without (as GNU tar --acls
	// writes): the same rule.
	for i, ents := range [][]archive.Entry{nil, entries} {
		name := r.storeSigned(r.seal(handTar(t, members, ents)), time.Now().Add(time.Duration(i)*time.Second))
		if ents != nil {
			r.mustRun("test-restore", "--backup", name)
		}
		to := filepath.Join(r.dir, fmt.Sprint("restored", i))
		out, errs, code := r.run("restore", "--backup", name, "--to", to)
		if code != 1 || !strings.Contains(errs, "ACL not restored") || !strings.Contains(errs, "no-such-user-drym") {
			t.Errorf("restore: exit %d, want 1 naming the ACL it could not apply\n%s%s", code, out, errs)
		}
		fi, err := os.Stat(filepath.Join(to, "srv", "secret"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("srv/secret restored %v: the group may read it, though the ACL gave the group nothing", fi.Mode().Perm())
		}
	}
}

// TestTestRestoreVerifiesAttrs: test-restore compares extended attributes
// and ACLs with the manifest, as it does content and modes.
func TestTestRestoreVerifiesAttrs(t *testing.T) {
	r := newRig(t, "", "", nil)
	must(t, os.MkdirAll(filepath.Join(r.dest, "h1"), 0o755))
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	file := func(recs map[string]string) []tmember {
		return []tmember{{hdr: tar.Header{Name: "srv/f", ModTime: mt, PAXRecords: recs}, body: "x"}}
	}
	entry := func(a archive.Attrs) []archive.Entry {
		return []archive.Entry{{Path: "srv/f", Type: archive.TypeFile, Size: 1, SHA256: sha([]byte("x")), Mode: "0644", MTime: mt.Unix(), Attrs: a}}
	}
	acl := "user::rw-\nuser:root:r--\ngroup::r--\nmask::r--\nother::r--\n"
	tests := []struct {
		name    string
		members []tmember
		entries []archive.Entry
		want    string // "" = passes
	}{
		{"same", file(map[string]string{"SCHILY.xattr.user.a": "1", archive.PAXACLAccess: acl}), entry(archive.Attrs{Xattrs: []archive.Xattr{{Name: "user.a", Value: "1"}}, ACL: acl}), ""},
		{"value changed", file(map[string]string{"SCHILY.xattr.user.a": "2"}), entry(archive.Attrs{Xattrs: []archive.Xattr{{Name: "user.a", Value: "1"}}}), "extended attributes or ACLs differ"},
		{"ACL dropped", file(nil), entry(archive.Attrs{ACL: acl}), "no extended attributes or ACLs in the archive"},
		{"capability added", file(map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}), entry(archive.Attrs{}), "the manifest does not list"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := r.storeSigned(r.seal(handTar(t, tt.members, tt.entries)), time.Now().Add(time.Duration(i)*time.Second))
			_, errs, code := r.run("test-restore", "--backup", name)
			tr := r.testRestoreStatus()
			if tt.want == "" {
				if code != 0 {
					t.Fatalf("exit %d\n%s", code, errs)
				}
				return
			}
			if code != 1 || !strings.Contains(tr.Error, tt.want) {
				t.Errorf("exit %d, error %q, want it to say %q\n%s", code, tr.Error, tt.want, errs)
			}
		})
	}
}

// tmpfsDir makes a directory on /dev/shm, a tmpfs (another file system
// than the temp dir's), which stores any 64-bit time.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		testutil.Unable(t, "/dev/shm is not a tmpfs")
	}
	d, err := os.MkdirTemp("/dev/shm", "drym-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func setMtime(t *testing.T, p string, sec int64) {
	t.Helper()
	ts := []unix.Timespec{{Sec: sec}, {Sec: sec}}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
}

func mtimeOf(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st.Mtim.Sec
}

// TestExtremeTimes: every time tar can represent comes back exactly through
// the tar stream, the manifest, test-restore and restore — before 1678 and
// after 2262 (where nanoseconds overflow int64), before year 0 and after
// 9999 (where time.Time's JSON fails), before 1970 — and a file system that
// cannot store one is reported, not silently clamped.
func TestExtremeTimes(t *testing.T) {
	r := newRig(t, "", "", nil)
	// First the times of years 0–9999 (the 2400 file once came back as
	// 1901-12-13, and test-restore passed), then beyond.
	inRange := map[string]int64{
		"y2400":       time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
		"y1600":       time.Date(1600, 6, 1, 12, 0, 0, 0, time.UTC).Unix(),
		"minus1":      -1,
		"y1901":       -(1 << 31), // ext4's first second
		"d1650":       time.Date(1650, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
		"d1650/link":  time.Date(2500, 5, 5, 5, 5, 5, 0, time.UTC).Unix(),
		"d1650/inner": time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
	}
	beyond := map[string]int64{
		"y30000":  time.Date(30000, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
		"year1":   time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), // Go's zero time.Time
		"y100000": 3093527980800,
		"before0": -99999999999,
	}
	for _, set := range []map[string]int64{inRange, beyond} {
		times := map[string]int64{}
		for k, v := range inRange {
			times[k] = v
		}
		for k, v := range set {
			times[k] = v
		}
		extremeTimes(t, r, times)
	}
}

func extremeTimes(t *testing.T, r *kit, times map[string]int64) {
	src := tmpfsDir(t)
	must(t, os.Mkdir(filepath.Join(src, "d1650"), 0o755))
	must(t, os.Symlink("../y2400", filepath.Join(src, "d1650", "link")))
	for name := range times {
		if p := filepath.Join(src, name); name != "d1650" && name != "d1650/link" {
			must(t, os.WriteFile(p, []byte(name), 0o644))
		}
	}
	for name, sec := range times {
		if name != "d1650" {
			setMtime(t, filepath.Join(src, name), sec)
		}
	}
	setMtime(t, filepath.Join(src, "d1650"), times["d1650"])
	r.setSources(src)
	r.mustRun("backup")
	b := r.backupStatus()
	r.mustRun("test-restore", "--backup", b.Object)

	// Onto a file system that stores them all: exact.
	to := tmpfsDir(t)
	if out, errs, code := r.run("restore", "--backup", b.Object, "--to", to); code != 0 {
		t.Fatalf("restore to tmpfs: exit %d\n%s%s", code, out, errs)
	}
	base := filepath.Join(to, strings.TrimPrefix(src, "/"))
	for name, sec := range times {
		if got := mtimeOf(t, filepath.Join(base, name)); got != sec {
			t.Errorf("%s: restored mtime %d (%s), want %d (%s)", name, got, time.Unix(got, 0).UTC(), sec, time.Unix(sec, 0).UTC())
		}
	}
	// The listing shows them as they are.
	if out := r.mustRun("files", "--long", "--backup", b.Object); !strings.Contains(out, "2400-01-01T00:00:00Z") || !strings.Contains(out, "1600-06-01T12:00:00Z") {
		t.Errorf("files --long:\n%s", out)
	}
	// GNU tar reads the same times from the archive.
	stock := tmpfsDir(t)
	r.stockRestore(r.objectPath(b.Object), stock)
	for name, sec := range times {
		if got := mtimeOf(t, filepath.Join(stock, strings.TrimPrefix(src, "/"), name)); got != sec {
			t.Errorf("stock tar: %s: mtime %d, want %d", name, got, sec)
		}
	}

	// Onto ext4 (1901–2446): what fits is exact, what does not is named.
	var fs unix.Statfs_t
	if unix.Statfs(r.dir, &fs) == nil && fs.Type == unix.EXT4_SUPER_MAGIC {
		to := filepath.Join(r.dir, "ext4-"+filepath.Base(src))
		out, errs, code := r.run("restore", "--backup", b.Object, "--to", to)
		if code != 1 || !strings.Contains(errs, "y1600: mtime") || !strings.Contains(errs, "cannot be stored on this file system") {
			t.Errorf("restore to ext4: exit %d, want 1 naming the times ext4 cannot hold\n%s%s", code, out, errs)
		}
		for _, name := range []string{"y2400", "minus1", "y1901"} {
			if got := mtimeOf(t, filepath.Join(to, strings.TrimPrefix(src, "/"), name)); got != times[name] {
				t.Errorf("ext4: %s: mtime %d, want %d", name, got, times[name])
			}
		}
	}
}

// TestNonUTF8Names: names and symlink targets that are not UTF-8 (Latin-1,
// stray bytes, a real U+FFFD beside a byte that would become one) survive
// the manifest byte for byte: test-restore passes, restore and stock tar
// give the exact bytes, files lists them, and restore takes them as paths.
func TestNonUTF8Names(t *testing.T) {
	r := newRig(t, "", "", nil)
	src := filepath.Join(r.dir, "nsrc")
	dir := filepath.Join(src, "caf\xe9")
	must(t, os.MkdirAll(dir, 0o755))
	names := []string{"na\xefve.txt", "\xff", "\xef\xbf\xbd", "line\nbreak", "ok-ütf8"}
	for i, n := range names {
		must(t, os.WriteFile(filepath.Join(dir, n), []byte(fmt.Sprint("content ", i)), 0o644))
	}
	must(t, os.Symlink("caf\xe9/na\xefve.txt", filepath.Join(src, "lien-\xe0")))
	must(t, os.Link(filepath.Join(dir, "\xff"), filepath.Join(src, "h\xe4rd")))
	want := attrTree(t, src)
	r.setSources(src)
	r.mustRun("backup")
	b := r.backupStatus()
	if out, errs, code := r.run("test-restore"); code != 0 {
		t.Fatalf("test-restore: exit %d\n%s%s", code, out, errs)
	}

	to := filepath.Join(r.dir, "restored")
	if out, errs, code := r.run("restore", "--to", to); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	diffAttrTrees(t, "drym restore", attrTree(t, filepath.Join(to, strings.TrimPrefix(src, "/"))), want)
	stock := filepath.Join(r.dir, "stock")
	r.stockRestore(r.objectPath(b.Object), stock)
	diffAttrTrees(t, "stock tar", attrTree(t, filepath.Join(stock, strings.TrimPrefix(src, "/"))), want)

	// Listed, quoted so that one line is one path; restored by raw name.
	out := r.mustRun("files")
	if !strings.Contains(out, `caf\xe9/na\xefve.txt'`) || !strings.Contains(out, `line\nbreak'`) || !strings.Contains(out, src+"/caf\xe9/ok-ütf8'") && !strings.Contains(out, `ok-\xc3\xbctf8`) && !strings.Contains(out, "ok-ütf8") {
		t.Errorf("files:\n%s", out)
	}
	part := filepath.Join(r.dir, "part")
	if out, errs, code := r.run("restore", "--to", part, filepath.Join(src, "caf\xe9", "\xff")); code != 0 {
		t.Fatalf("restore of one raw name: exit %d\n%s%s", code, out, errs)
	}
	if got, err := os.ReadFile(filepath.Join(part, strings.TrimPrefix(src, "/"), "caf\xe9", "\xff")); err != nil || string(got) != "content 1" {
		t.Errorf("restored %q, %v", got, err)
	}
}

// TestManifestV1StillVerifies: a backup whose manifest is version 1 (made
// before version 2) verifies and restores.
func TestManifestV1StillVerifies(t *testing.T) {
	r := newRig(t, "", "", nil)
	must(t, os.MkdirAll(filepath.Join(r.dest, "h1"), 0o755))
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	members := []tmember{
		{hdr: tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}},
		{hdr: tar.Header{Name: "etc/hosts", Mode: 0o644, ModTime: mt}, body: "127.0.0.1 localhost\n"},
		{hdr: tar.Header{Name: "etc/l", Typeflag: tar.TypeSymlink, Linkname: "hosts", Mode: 0o777, ModTime: mt}},
	}
	v1 := `{"version":1,"host":"h1","created":"2024-05-06T07:08:09Z","sources":["/etc"],"entries":[` +
		`{"path":"etc","type":"dir","mode":"0755","mtime":"2024-05-06T07:08:09Z"},` +
		`{"path":"etc/hosts","type":"file","size":20,"sha256":"` + sha([]byte("127.0.0.1 localhost\n")) + `","mode":"0644","mtime":"2024-05-06T07:08:09Z"},` +
		`{"path":"etc/l","type":"symlink","mode":"0777","mtime":"2024-05-06T07:08:09Z","link":"hosts"}]}`
	members = append(members, tmember{hdr: tar.Header{Name: archive.ManifestName, Mode: 0o600, ModTime: mt}, body: v1})
	data := r.seal(handTar(t, members, nil))
	// A backup made by a drym from before signing: unsigned, read only when
	// named with --allow-unsigned.
	name := r.storeObject(data, sha(data), time.Now())
	if out, errs, code := r.run("test-restore", "--backup", name, "--allow-unsigned"); code != 0 {
		t.Fatalf("test-restore of a version 1 manifest: exit %d\n%s%s", code, out, errs)
	}
	to := filepath.Join(r.dir, "restored")
	if out, errs, code := r.run("restore", "--backup", name, "--allow-unsigned", "--to", to); code != 0 || !strings.Contains(out, "verified against the manifest") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	if got := mtimeOf(t, filepath.Join(to, "etc", "hosts")); got != mt.Unix() {
		t.Errorf("mtime %d, want %d", got, mt.Unix())
	}
}
