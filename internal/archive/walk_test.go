package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/testutil"
)

// walkTree makes a tree with what a walk must get right: nesting, odd
// bytes in names, symlinks (dangling too), hard links across directories,
// a sparse file, empty files and directories, a FIFO, a long name.
func walkTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	mk := func(p, content string) {
		t.Helper()
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("a/b/c/deep", "deep")
	mk("a/f", "f")
	mk("odd\xff\x01name/x\ny", "odd bytes")
	mk("sp ace/*?[", "glob characters")
	mk("ü/é", "non-ascii")
	mk(strings.Repeat("l", 150), "long name")
	mk("empty", "")
	os.MkdirAll(filepath.Join(src, "emptydir"), 0o700)
	os.Symlink("../f", filepath.Join(src, "a/b/sym"))
	os.Symlink("/nonexistent", filepath.Join(src, "dangling"))
	os.Link(filepath.Join(src, "a/f"), filepath.Join(src, "a/b/c/hard"))
	syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644)
	sp, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	sp.WriteAt([]byte("data in the middle"), 4<<20)
	sp.Truncate(8 << 20)
	sp.Close()
	return src
}

// want is what the walk must archive, found the way drym walked before
// the directory-descriptor walk: filepath.WalkDir and Lstat.
func wantMembers(t *testing.T, src string) []string {
	t.Helper()
	var out []string
	seen := map[[2]uint64]string{}
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Lstat(p)
		st := fi.Sys().(*syscall.Stat_t)
		name := strings.TrimPrefix(p, "/")
		switch {
		case fi.IsDir():
			out = append(out, "dir "+name)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, "symlink "+name+" -> "+target)
		case fi.Mode().IsRegular():
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := seen[key]; ok && st.Nlink > 1 {
				out = append(out, "hardlink "+name+" -> "+first)
				break
			}
			seen[key] = name
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			out = append(out, "file "+name+" "+hex.EncodeToString(sum[:]))
		}
		return nil
	})
	return out
}

// gotMembers lists the manifest of an archive in the same form, and checks
// that every member is in it in the same order.
func gotMembers(t *testing.T, archive []byte) []string {
	t.Helper()
	ms := readAll(t, bytes.NewReader(archive))
	m, err := ParseManifest(bytes.NewReader(ms[len(ms)-1].data))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != len(ms)-1 {
		t.Fatalf("%d entries for %d members", len(m.Entries), len(ms)-1)
	}
	var out []string
	for i, e := range m.Entries {
		name := strings.TrimSuffix(ms[i].hdr.Name, "/")
		if ms[i].hdr.PAXRecords["GNU.sparse.name"] != "" {
			name = ms[i].hdr.PAXRecords["GNU.sparse.name"]
		}
		if name != e.Path {
			t.Errorf("member %d is %q, its entry %q", i, name, e.Path)
		}
		switch e.Type {
		case TypeFile:
			out = append(out, "file "+e.Path+" "+e.SHA256)
		case TypeDir:
			out = append(out, "dir "+e.Path)
		default:
			out = append(out, e.Type+" "+e.Path+" -> "+e.Link)
		}
	}
	return out
}

func TestWalkAsWalkDir(t *testing.T) {
	src := walkTree(t)
	var buf bytes.Buffer
	st, err := Write(context.Background(), &buf, Options{Host: "h", Sources: []string{src}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	got, want := gotMembers(t, buf.Bytes()), wantMembers(t, src)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("archived:\n%s\nwant (filepath.WalkDir):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st.Warnings != 0 || st.Skipped != 1 || st.Sparse != 1 || st.Hardlinks != 1 || st.Symlinks != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Entries that change between the directory read and their turn: the walk
// archives what is there when it gets to them, and warns only about what
// it cannot archive.
func TestWalkChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, src string)
		want   []string // lines of gotMembers that must be there (prefix)
		gone   []string // names that must not be archived
		warn   string   // a warning that must be given ("" for none)
	}{
		{
			name:   "file vanishes",
			change: func(t *testing.T, src string) { os.Remove(filepath.Join(src, "b")) },
			gone:   []string{"/b"},
			warn:   "b: no such file or directory",
		},
		{
			name: "file becomes a symlink",
			change: func(t *testing.T, src string) {
				os.Remove(filepath.Join(src, "b"))
				os.Symlink("a", filepath.Join(src, "b"))
			},
			want: []string{"symlink /b -> a"},
		},
		{
			name: "file becomes a FIFO",
			change: func(t *testing.T, src string) {
				os.Remove(filepath.Join(src, "b"))
				syscall.Mkfifo(filepath.Join(src, "b"), 0o644)
			},
			gone: []string{"/b"},
			warn: "b: replaced by a non-regular file",
		},
		{
			name: "file changes content",
			change: func(t *testing.T, src string) {
				os.WriteFile(filepath.Join(src, "b"), []byte("longer than before"), 0o644)
			},
			want: []string{"file /b " + sha256hex("longer than before")},
		},
		{
			name:   "directory vanishes",
			change: func(t *testing.T, src string) { os.RemoveAll(filepath.Join(src, "c")) },
			gone:   []string{"/c"},
			warn:   "c: no such file or directory",
		},
		{
			name: "directory becomes a file",
			change: func(t *testing.T, src string) {
				os.RemoveAll(filepath.Join(src, "c"))
				os.WriteFile(filepath.Join(src, "c"), []byte("now a file"), 0o644)
			},
			want: []string{"file /c " + sha256hex("now a file")},
			gone: []string{"/c/d"},
		},
		{
			name: "directory becomes a symlink",
			change: func(t *testing.T, src string) {
				os.RemoveAll(filepath.Join(src, "c"))
				os.Symlink("/", filepath.Join(src, "c"))
			},
			want: []string{"symlink /c -> /"},
			gone: []string{"/c/d"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			os.MkdirAll(filepath.Join(src, "c"), 0o755)
			os.WriteFile(filepath.Join(src, "a"), []byte("first"), 0o644)
			os.WriteFile(filepath.Join(src, "b"), []byte("second"), 0o644)
			os.WriteFile(filepath.Join(src, "c", "d"), []byte("third"), 0o644)
			changed := false
			var buf bytes.Buffer
			// "a" is archived first (names are sorted): the change comes
			// after the directory was read, before b and c are reached
			// (serial: no reader has opened b yet; the read-ahead's own
			// hand-back is TestReadOne's).
			st, err := Write(context.Background(), &buf, Options{Host: "h", Sources: []string{src}, Now: time.Now(), serial: true, OnFile: func(int64) {
				if !changed {
					changed = true
					tc.change(t, src)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			prefix := strings.TrimPrefix(src, "/")
			got := strings.Join(gotMembers(t, buf.Bytes()), "\n") + "\n"
			for _, w := range tc.want {
				kind, rest, _ := strings.Cut(w, " ")
				if !strings.Contains(got, kind+" "+prefix+rest+"\n") {
					t.Errorf("no %q in\n%s", w, got)
				}
			}
			for _, g := range tc.gone {
				if strings.Contains(got, prefix+g+"\n") || strings.Contains(got, prefix+g+" ") {
					t.Errorf("%s archived:\n%s", g, got)
				}
			}
			warnings := strings.Join(st.WarningList, "\n")
			if tc.warn == "" && st.Warnings != 0 || tc.warn != "" && !strings.Contains(warnings, tc.warn) {
				t.Errorf("warnings %q, want %q", warnings, tc.warn)
			}
		})
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A directory or file the backup may not read: the directory is archived
// without its entries, the file not at all, each with a warning (as
// before the directory-descriptor walk). Root reads everything, so this
// runs as another user only.
func TestWalkUnreadable(t *testing.T) {
	// Root reads every file: the walk runs as nobody.
	if !testutil.InChildAs(t, "nobody") {
		return
	}
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "closed"), 0o755)
	os.WriteFile(filepath.Join(src, "closed", "x"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(src, "secret"), []byte("s"), 0o644)
	os.Chmod(filepath.Join(src, "closed"), 0)
	os.Chmod(filepath.Join(src, "secret"), 0)
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "closed"), 0o755) })
	var buf bytes.Buffer
	st, err := Write(context.Background(), &buf, Options{Host: "h", Sources: []string{src}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(gotMembers(t, buf.Bytes()), "\n")
	prefix := strings.TrimPrefix(src, "/")
	if !strings.Contains(got, "dir "+prefix+"/closed") || strings.Contains(got, "closed/x") || strings.Contains(got, "secret") {
		t.Fatalf("archived:\n%s", got)
	}
	if st.Warnings != 2 {
		t.Fatalf("warnings %v", st.WarningList)
	}
}

// The ustar block header writes for a plain member is byte for byte what
// tar.Writer writes; anything it cannot hold is left to tar.Writer.
func TestPlainHeaderAsTarWriter(t *testing.T) {
	mt := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name  string
		hdr   tar.Header
		plain bool
	}{
		{"file", tar.Header{Name: "etc/hosts", Typeflag: tar.TypeReg, Mode: 0o644, Size: 123, ModTime: mt, Uname: "root", Gname: "root"}, true},
		{"setuid dir", tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o7777, ModTime: mt, Uid: 1000, Gid: 1000}, true},
		{"symlink", tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("t", 100), Mode: 0o777, ModTime: mt}, true},
		{"hard link", tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "a", Mode: 0o600, ModTime: mt, Uname: strings.Repeat("u", 32)}, true},
		{"100-byte name", tar.Header{Name: strings.Repeat("n", 100), Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt}, true},
		{"largest numbers", tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: max11, ModTime: time.Unix(max11, 0), Uid: max7, Gid: max7}, true},
		{"epoch", tar.Header{Name: "e", Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}, true},
		{"101-byte name", tar.Header{Name: strings.Repeat("n", 101), Typeflag: tar.TypeReg, ModTime: mt}, false},
		{"non-ascii name", tar.Header{Name: "é", Typeflag: tar.TypeReg, ModTime: mt}, false},
		{"PAX records", tar.Header{Name: "x", Typeflag: tar.TypeReg, ModTime: mt, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}, false},
		{"before 1970", tar.Header{Name: "x", Typeflag: tar.TypeReg, ModTime: time.Unix(-1, 0)}, false},
		{"large uid", tar.Header{Name: "x", Typeflag: tar.TypeReg, ModTime: mt, Uid: max7 + 1}, false},
		{"long user name", tar.Header{Name: "x", Typeflag: tar.TypeReg, ModTime: mt, Uname: strings.Repeat("u", 33)}, false},
		{"fifo", tar.Header{Name: "x", Typeflag: tar.TypeFifo, ModTime: mt}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := plainUSTAR(&tc.hdr)
			if ok != tc.plain {
				t.Fatalf("plain = %v, want %v", ok, tc.plain)
			}
			if !ok {
				return
			}
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tc.hdr); err != nil {
				t.Fatal(err)
			}
			blk := u.block()
			if !bytes.Equal(buf.Bytes(), blk[:]) {
				t.Fatalf("block differs from tar.Writer's:\n%q\n%q", blk[:], buf.Bytes())
			}
		})
	}
}
