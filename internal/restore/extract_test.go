package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/archive"
)

// result is Extract and Commit together, as a restore of a proven backup
// does them.
type result struct {
	Files, Dirs, Symlinks, Hardlinks, Bytes int64
	Refused, Mismatches, Attrs              Problems
	Verified                                bool
	NotFound                                []string
	Sparse                                  int64
}

func extractAll(ctx context.Context, r io.Reader, dest string, opt Options) (result, error) {
	st, err := Extract(ctx, r, dest, opt)
	if st == nil {
		return result{}, err
	}
	if err != nil {
		st.Discard()
		return result{Refused: st.Report.Refused, Mismatches: st.Report.Mismatches}, err
	}
	c := st.Commit(ctx)
	res := result{
		Files: c.Files, Dirs: c.Dirs, Symlinks: c.Symlinks, Hardlinks: c.Hardlinks, Bytes: c.Bytes,
		Refused: st.Report.Refused, Mismatches: st.Report.Mismatches, Attrs: c.Attrs,
		Verified: st.Report.Verified, NotFound: st.Report.NotFound, Sparse: st.Report.Sparse,
	}
	for _, p := range c.Refused.List {
		res.Refused.add("%s", p)
	}
	res.Refused.Count += c.Refused.Count - len(c.Refused.List)
	return res, nil
}

func jsonManifest(es []archive.Entry) ([]byte, error) {
	return json.Marshal(archive.Manifest{Version: archive.ManifestVersion, Host: "h", Entries: es})
}

// snapshot describes a tree: per relative path its type, mode, mtime,
// content or link target, and inode group for hard links.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
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
			desc += " " + sum(b)[:12]
			ino := fi.Sys().(*syscall.Stat_t).Ino
			if first, ok := inodes[ino]; ok {
				desc += " =" + first
			} else {
				inodes[ino] = rel
			}
		}
		if rel != "." {
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

func TestExtractReproducesTree(t *testing.T) {
	src := sourceTree(t)
	tarData, st := archiveTree(t, src)
	dest := t.TempDir()
	rep, err := extractAll(context.Background(), bytes.NewReader(tarData), dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Refused.Count != 0 || rep.Mismatches.Count != 0 || !rep.Verified {
		t.Fatalf("refused %v, mismatches %v, verified %v", rep.Refused, rep.Mismatches, rep.Verified)
	}
	if rep.Files != st.Files || rep.Hardlinks != 1 || rep.Symlinks != 2 {
		t.Errorf("report %+v, source %+v", rep, st)
	}
	// The archive names paths as they were on the host: src's absolute
	// path without its leading slash.
	got := snapshot(t, filepath.Join(dest, strings.TrimPrefix(src, "/")))
	want := snapshot(t, src)
	if len(got) != len(want) {
		t.Errorf("restored %d paths, source has %d", len(got), len(want))
	}
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
			t.Errorf("%s:\n restored %s\n source   %s", k, got[k], want[k])
		}
	}
	// A second restore into the same place refuses to overwrite files...
	rep, err = extractAll(context.Background(), bytes.NewReader(tarData), dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Refused.Count == 0 || !strings.Contains(rep.Refused.List[0], "--overwrite") {
		t.Errorf("second restore refused %v", rep.Refused)
	}
	// ...and replaces them with Overwrite.
	if err := os.WriteFile(filepath.Join(dest, strings.TrimPrefix(src, "/"), "etc", "hosts"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = extractAll(context.Background(), bytes.NewReader(tarData), dest, Options{Overwrite: true})
	if err != nil || rep.Refused.Count != 0 || rep.Mismatches.Count != 0 {
		t.Fatalf("overwrite: err %v, refused %v, mismatches %v", err, rep.Refused, rep.Mismatches)
	}
	if got := snapshot(t, filepath.Join(dest, strings.TrimPrefix(src, "/"))); got["etc/hosts"] != want["etc/hosts"] {
		t.Errorf("overwrite: etc/hosts %s, want %s", got["etc/hosts"], want["etc/hosts"])
	}
}

func TestExtractPaths(t *testing.T) {
	src := sourceTree(t)
	tarData, _ := archiveTree(t, src)
	base := strings.TrimPrefix(src, "/")
	dest := t.TempDir()
	rep, err := extractAll(context.Background(), bytes.NewReader(tarData), dest,
		Options{Paths: []string{"/" + base + "/etc/ssl", base + "/var/big.bin", "no/such/path"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 2 || rep.Mismatches.Count != 0 || !rep.Verified {
		t.Errorf("report %+v", rep)
	}
	if len(rep.NotFound) != 1 || rep.NotFound[0] != "no/such/path" {
		t.Errorf("not found %v", rep.NotFound)
	}
	if _, err := os.Stat(filepath.Join(dest, base, "etc", "hosts")); err == nil {
		t.Error("etc/hosts restored though not asked for")
	}
	fi, err := os.Stat(filepath.Join(dest, base, "etc", "ssl", "private", "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v %v", fi, err)
	}
}

// TestHostileArchives: whatever the archive says, nothing is written outside
// the restore directory, and every refusal is reported.
func TestHostileArchives(t *testing.T) {
	long := strings.Repeat("n", 10*1024)
	deep := strings.Repeat("a/", 5*1024)
	tests := []struct {
		name    string
		members []member
		// refused: substrings expected among the refusals.
		refused []string
		// inside: paths (relative to the restore dir) that must exist.
		inside []string
	}{
		{"absolute path", []member{{hdr: tar.Header{Name: "/tmp/OUTSIDE/abs"}, body: "x"}}, []string{"absolute name"}, nil},
		{"dot-dot", []member{{hdr: tar.Header{Name: "../OUTSIDE/up"}, body: "x"}, {hdr: tar.Header{Name: "ok/../../OUTSIDE/up2"}, body: "x"}}, []string{"leaves the archive", "unclean path"}, nil},
		{"dot-dot hidden in dot-slash", []member{{hdr: tar.Header{Name: "./../OUTSIDE/up"}, body: "x"}}, []string{"leaves the archive"}, nil},
		{"symlink escape then write through it", []member{
			{hdr: tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "../OUTSIDE"}},
			{hdr: tar.Header{Name: "esc/pwned"}, body: "x"},
		}, []string{"esc is a symlink"}, []string{"esc"}},
		{"absolute symlink then write through it", []member{
			{hdr: tar.Header{Name: "abs", Typeflag: tar.TypeSymlink, Linkname: "OUTSIDEABS"}},
			{hdr: tar.Header{Name: "abs/pwned"}, body: "x"},
		}, []string{"abs is a symlink"}, []string{"abs"}},
		{"symlink inside then file under it", []member{
			{hdr: tar.Header{Name: "real", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: "alias", Typeflag: tar.TypeSymlink, Linkname: "real"}},
			{hdr: tar.Header{Name: "alias/f"}, body: "x"},
		}, []string{"alias is a symlink"}, []string{"real", "alias"}},
		// The later member wins, as with tar, and replaces the symlink
		// rather than writing through it (a manifest would flag the
		// duplicate, and then nothing is moved into place at all).
		{"symlink then file over it", []member{
			{hdr: tar.Header{Name: "target", Typeflag: tar.TypeSymlink, Linkname: "../OUTSIDE/over"}},
			{hdr: tar.Header{Name: "target"}, body: "x"},
		}, nil, []string{"target"}},
		{"hard link escape", []member{{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../OUTSIDE/victim"}}}, []string{"leaves the restore directory"}, nil},
		{"hard link absolute", []member{{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}}, []string{"leaves the restore directory"}, nil},
		{"hard link to a symlink", []member{
			{hdr: tar.Header{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "../OUTSIDE/victim"}},
			{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "s"}},
		}, []string{"not a file restored by this run"}, []string{"s"}},
		{"hard link to a pre-existing file", []member{{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "existing"}}}, []string{"not a file restored by this run"}, nil},
		{"device nodes and fifo", []member{
			{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
			{hdr: tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8}},
			{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}},
		}, []string{"character device", "block device", "FIFO"}, nil},
		{"10 KB name", []member{{hdr: tar.Header{Name: long}, body: "x"}}, []string{"longer than"}, nil},
		{"10 KB deep name", []member{{hdr: tar.Header{Name: deep + "f"}, body: "x"}}, []string{"longer than"}, nil},
		{"long component", []member{{hdr: tar.Header{Name: strings.Repeat("c", 300)}, body: "x"}}, []string{"file name too long"}, nil},
		{"manifest lies about nothing, file is fine", []member{{hdr: tar.Header{Name: "./fine"}, body: "ok"}}, nil, []string{"fine"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dest := filepath.Join(base, "restore")
			outside := filepath.Join(base, "OUTSIDE")
			if err := os.MkdirAll(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dest, "existing"), []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove("/tmp/OUTSIDE/abs")
			// OUTSIDEABS: an absolute target only exists for this test.
			for i := range tt.members {
				if tt.members[i].hdr.Linkname == "OUTSIDEABS" {
					tt.members[i].hdr.Linkname = outside
				}
			}
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			rep, err := extractAll(context.Background(), bytes.NewReader(plainTar(t, tt.members...)), dest, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("written outside: %v", ents)
			}
			if ents, _ := os.ReadDir(base); len(ents) != 2 {
				t.Errorf("base dir holds %v", ents)
			}
			if _, err := os.Stat("/tmp/OUTSIDE/abs"); err == nil {
				t.Error("absolute path written")
			}
			if b, _ := os.ReadFile(filepath.Join(dest, "existing")); string(b) != "mine" {
				t.Errorf("existing file changed to %q", b)
			}
			if rep.Refused.Count != len(tt.refused) {
				t.Fatalf("refused %d %q, want %q", rep.Refused.Count, rep.Refused.List, tt.refused)
			}
			for i, w := range tt.refused {
				if !strings.Contains(rep.Refused.List[i], w) {
					t.Errorf("refusal %d = %q, want %q", i, rep.Refused.List[i], w)
				}
			}
			for _, p := range tt.inside {
				if _, err := os.Lstat(filepath.Join(dest, p)); err != nil {
					t.Errorf("%s not restored: %v", p, err)
				}
			}
			if rep.Verified {
				t.Error("verified without a manifest")
			}
		})
	}
}

// TestExtractOverwriteSymlink: --overwrite replaces a symlink in the way, it
// never writes through it.
func TestExtractOverwriteSymlink(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "restore")
	os.MkdirAll(dest, 0o755)
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	if err := os.Symlink(victim, filepath.Join(dest, "f")); err != nil {
		t.Fatal(err)
	}
	rep, err := extractAll(context.Background(), bytes.NewReader(plainTar(t, member{hdr: tar.Header{Name: "f"}, body: "new"})), dest, Options{Overwrite: true})
	if err != nil || rep.Refused.Count != 0 {
		t.Fatalf("err %v refused %v", err, rep.Refused)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("victim = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "f")); string(b) != "new" {
		t.Errorf("f = %q", b)
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a", "./a/", "/a", "../a", "a/../b", "a//b", ".", "./", "a/./b", "\x00", "./../x", "....//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, err := CleanName(name)
		if err != nil {
			return
		}
		if n == "" {
			return
		}
		if strings.HasPrefix(n, "/") || filepath.Clean(n) != n || strings.Contains(n, "\x00") {
			t.Fatalf("CleanName(%q) = %q", name, n)
		}
		for _, p := range strings.Split(n, "/") {
			if p == ".." || p == "." || p == "" {
				t.Fatalf("CleanName(%q) = %q", name, n)
			}
		}
	})
}

// FuzzRestorePath: a symlink member (any target) followed by a file under
// any name never puts anything outside the restore directory.
func FuzzRestorePath(f *testing.F) {
	f.Add("l", "../out", "l/x", byte(tar.TypeReg))
	f.Add("l", "/tmp", "l/x", byte(tar.TypeLink))
	f.Add("a", ".", "a/a/a", byte(tar.TypeReg))
	f.Add("d", "..", "d/../x", byte(tar.TypeSymlink))
	f.Fuzz(func(t *testing.T, link, target, name string, typ byte) {
		switch typ {
		case tar.TypeReg, tar.TypeLink, tar.TypeSymlink, tar.TypeDir:
		default:
			typ = tar.TypeReg
		}
		base := t.TempDir()
		dest := filepath.Join(base, "restore")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if tw.WriteHeader(&tar.Header{Name: link, Typeflag: tar.TypeSymlink, Linkname: target}) != nil {
			return
		}
		h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Linkname: target}
		if typ == tar.TypeReg {
			h.Size = 1
		}
		if tw.WriteHeader(h) != nil {
			return
		}
		if typ == tar.TypeReg {
			tw.Write([]byte("x"))
		}
		tw.Close()
		if _, err := extractAll(context.Background(), &buf, dest, Options{Overwrite: true}); err != nil {
			return
		}
		ents, _ := os.ReadDir(base)
		if len(ents) != 1 || ents[0].Name() != "restore" {
			t.Fatalf("outside the restore dir: %v", ents)
		}
	})
}
