package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// countdown is a context that ends after n checks: a SIGTERM arriving in
// the middle of the move.
type countdown struct {
	context.Context
	n int
}

func (c *countdown) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// TestCommitInterrupted: a move stopped midway leaves every path either
// absent or the restored entry, whole, with its mode; directories moved so
// far have their archived modes (not the 0700 of staging); the staging
// directory is gone.
func TestCommitInterrupted(t *testing.T) {
	mt := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	var members []member
	for _, d := range []string{"a", "b", "c"} {
		members = append(members, member{hdr: tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o751, ModTime: mt}})
		for i := range 6 {
			members = append(members, member{hdr: tar.Header{Name: fmt.Sprintf("%s/f%d", d, i), Mode: 0o640, ModTime: mt}, body: strings.Repeat(d, 1000+i)})
		}
	}
	data := plainTar(t, members...)
	dest := t.TempDir()
	st, err := Extract(context.Background(), bytes.NewReader(data), dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := st.Commit(&countdown{Context: context.Background(), n: 9})
	if !rep.Interrupted || rep.Files == 0 || rep.Files >= 18 {
		t.Fatalf("interrupted %v after %d files, want a move stopped midway", rep.Interrupted, rep.Files)
	}
	got := snapshot(t, dest)
	files := 0
	for rel, desc := range got {
		switch {
		case rel == ".":
		case strings.HasPrefix(rel, StagingPrefix):
			t.Errorf("%s: staging left behind", rel)
		case strings.Count(rel, "/") == 0:
			if !strings.HasPrefix(desc, "drwxr-x--x ") {
				t.Errorf("%s: %s, want the archived 0751 even after an interrupted move", rel, desc)
			}
		default:
			files++
			d, i := rel[:1], rel[len(rel)-1]-'0'
			if want := "-rw-r----- " + sum([]byte(strings.Repeat(d, 1000+int(i))))[:12]; !strings.HasPrefix(desc, want) {
				t.Errorf("%s: %s, want %s…: a half-moved entry", rel, desc, want)
			}
		}
	}
	if int64(files) != rep.Files {
		t.Errorf("%d files in place, the report says %d", files, rep.Files)
	}
}

// TestCommitRefusesWithoutOverwrite: a file that appears in the target
// between staging and the move is not replaced without Overwrite, and a
// directory is never replaced by a file.
func TestCommitRefusesWithoutOverwrite(t *testing.T) {
	data := plainTar(t, member{hdr: tar.Header{Name: "f"}, body: "new"}, member{hdr: tar.Header{Name: "d"}, body: "file"})
	dest := t.TempDir()
	st, err := Extract(context.Background(), bytes.NewReader(data), dest, Options{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dest, "f"), []byte("theirs"), 0o600)
	os.Mkdir(filepath.Join(dest, "d"), 0o755)
	st.opt.Overwrite = false
	rep := st.Commit(context.Background())
	if rep.Refused.Count != 2 || !strings.Contains(strings.Join(rep.Refused.List, "|"), "d: refused: exists as a directory") {
		t.Errorf("refused %v", rep.Refused)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "f")); string(b) != "theirs" {
		t.Errorf("f = %q", b)
	}
}

// TestSparseWrite: a sparse member is written with holes where its data
// is zero, whole blocks aligned to the file, and the right size.
func TestSparseWrite(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content := make([]byte, 10<<20)
	copy(content[100:], "data")
	copy(content[5<<20+4000:], "straddles a block edge")
	var off int64
	holes := false
	// Chunks that split blocks anywhere, as tar reads deliver them.
	for _, n := range []int{1000, 3 << 20, 5000, 10<<20 - 1000 - 3<<20 - 5000} {
		skipped, err := writeAt(int(f.Fd()), content[off:off+int64(n)], off, true)
		if err != nil {
			t.Fatal(err)
		}
		holes = holes || skipped
		off += int64(n)
	}
	if !holes {
		t.Fatal("no holes left")
	}
	if err := unix.Ftruncate(int(f.Fd()), off); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, content) {
		t.Fatal("content differs")
	}
	var st unix.Stat_t
	unix.Fstat(int(f.Fd()), &st)
	if st.Blocks*512 > 64<<10 {
		t.Errorf("%d bytes allocated for 2 small data regions", st.Blocks*512)
	}
}
