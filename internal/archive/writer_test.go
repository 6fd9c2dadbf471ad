package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type member struct {
	hdr  *tar.Header
	data []byte
}

func readAll(t *testing.T, r io.Reader) []member {
	t.Helper()
	tr := tar.NewReader(r)
	var out []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, member{h, b})
	}
}

func TestWrite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	files := map[string]string{"a.txt": "alpha", "sub/b.txt": "beta", "sub/skip.tmp": "x", "cache/big": "y", "ü/é": "non-ascii"}
	for n, c := range files {
		p := filepath.Join(src, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(c), 0o640)
	}
	os.Symlink("a.txt", filepath.Join(src, "link"))
	os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "hard"))
	var buf bytes.Buffer
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	st, err := Write(context.Background(), &buf, Options{
		Host: "h", Sources: []string{src}, Exclude: []string{"*.tmp", src + "/cache"}, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 3 || st.Hardlinks != 1 || st.Symlinks != 1 || st.Warnings != 0 || st.BytesIn != int64(len("alpha")+len("beta")+len("non-ascii")) {
		t.Fatalf("stats %+v", st)
	}
	ms := readAll(t, &buf)
	last := ms[len(ms)-1]
	if last.hdr.Name != ManifestName {
		t.Fatalf("last member %q, want the manifest", last.hdr.Name)
	}
	m, err := ParseManifest(bytes.NewReader(last.data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Host != "h" || !m.Created.Equal(now) || len(m.Entries) != len(ms)-1 {
		t.Fatalf("manifest %+v with %d members", m, len(ms))
	}
	prefix := strings.TrimPrefix(src, "/")
	byPath := map[string]Entry{}
	for _, e := range m.Entries {
		byPath[e.Path] = e
	}
	for _, mem := range ms[:len(ms)-1] {
		name := strings.TrimSuffix(mem.hdr.Name, "/")
		e, ok := byPath[name]
		if !ok {
			t.Fatalf("member %s not in manifest", name)
		}
		if mem.hdr.Typeflag == tar.TypeReg {
			sum := sha256.Sum256(mem.data)
			if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != int64(len(mem.data)) || e.Mode != "0640" {
				t.Fatalf("%s: manifest %+v does not match the member", name, e)
			}
		}
		if strings.Contains(name, "skip.tmp") || strings.Contains(name, "cache") {
			t.Fatalf("excluded %s archived", name)
		}
	}
	if e := byPath[prefix+"/link"]; e.Type != TypeSymlink || e.Link != "a.txt" {
		t.Fatalf("symlink entry %+v", e)
	}
	if e := byPath[prefix+"/hard"]; e.Type != TypeHardlink && byPath[prefix+"/a.txt"].Type != TypeHardlink {
		t.Fatalf("no hard link entry: %+v", e)
	}
}

func TestWriteMissingSource(t *testing.T) {
	_, err := Write(context.Background(), io.Discard, Options{Sources: []string{"/nonexistent/drym"}, Now: time.Now()})
	if !errors.Is(err, ErrSource) {
		t.Fatalf("want ErrSource, got %v", err)
	}
}

func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Write(ctx, io.Discard, Options{Sources: []string{t.TempDir()}, Now: time.Now()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestCheckNameAndManifest(t *testing.T) {
	for _, bad := range []string{"", "/etc", "../x", "a/../../x", "a//b", "./a", "a/", ".", "a\x00b", "..", "a/..", "a/.", "a/./b", "/", "//"} {
		if CheckName(bad) == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"etc", "etc/hosts", "a..b", "ü/é", ".drym/manifest.json", "...", "a/.b", "a/..b/c", ".a"} {
		if err := CheckName(good); err != nil {
			t.Errorf("CheckName(%q): %v", good, err)
		}
	}
	bad := []string{
		`{"version":3,"entries":[]}`,
		`{"version":1,"entries":[{"path":"../x","type":"file","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}]}`,
		`{"version":1,"entries":[{"path":"x","type":"file","size":1,"sha256":"short"}]}`,
		`{"version":1,"entries":[{"path":"x","type":"device"}]}`,
		`{"version":1,"entries":[{"path":"x","type":"dir"},{"path":"x","type":"dir"}]}`,
		`not json`,
	}
	for _, b := range bad {
		if _, err := ParseManifest(strings.NewReader(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
}

// A zero Options.Now is refused before anything is written: it would date
// the manifest in year 1.
func TestWriteZeroNow(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	var buf bytes.Buffer
	_, err := Write(context.Background(), &buf, Options{Host: "h", Sources: []string{src}})
	if !errors.Is(err, ErrNoTime) {
		t.Fatalf("err = %v, want ErrNoTime", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes written", buf.Len())
	}
}
