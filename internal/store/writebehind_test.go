package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/drym-backup/drym/internal/testutil"
)

// pattern is n deterministic bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// tmpfsDir is a fresh directory on a tmpfs (/dev/shm), or "" when there is
// none.
func tmpfsDir(t *testing.T) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != 0x01021994 { // TMPFS_MAGIC
		return ""
	}
	d, err := os.MkdirTemp("/dev/shm", "drym-store-test-")
	if err != nil {
		return ""
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// watchReader hands out data in odd-sized reads and, before each, checks
// that nothing of the object is visible yet: no final name, nothing listed.
type watchReader struct {
	t    *testing.T
	d    *Dir
	name string
	r    io.Reader
	fail error // returned once the data is read, instead of io.EOF
}

func (w *watchReader) Read(p []byte) (int, error) {
	if _, err := os.Lstat(w.d.Path(w.name)); !errors.Is(err, os.ErrNotExist) {
		w.t.Errorf("%s is visible before Put returned (%v)", w.name, err)
	}
	w.d.List(context.Background(), "", func(i Info) error {
		w.t.Errorf("List shows %s while it is being written", i.Name)
		return nil
	})
	n, err := w.r.Read(p[:min(len(p), 100_003)])
	if err == io.EOF && w.fail != nil {
		return n, w.fail
	}
	return n, err
}

// TestDirPutWriteBehind: whatever the size (below, at and over the chunk
// and the window) and whatever the file system (disk, tmpfs), the object
// has exactly the bytes put, is never visible before Put returns, and
// leaves no .partial file; a failed Put leaves nothing at all.
func TestDirPutWriteBehind(t *testing.T) {
	const chunk, window = 64 << 10, 128 << 10
	fss := []struct{ name, root string }{{"disk", t.TempDir()}}
	if d := tmpfsDir(t); d != "" {
		fss = append(fss, struct{ name, root string }{"tmpfs", d})
	} else {
		t.Log("no tmpfs at /dev/shm: the tmpfs cases do not run")
	}
	cases := []struct {
		name   string
		size   int
		chunk  int64
		fail   bool
		starts bool // write-behind must have started writeback
	}{
		{"empty", 0, chunk, false, false},
		{"one byte", 1, chunk, false, false},
		{"chunk-1", chunk - 1, chunk, false, false},
		{"chunk", chunk, chunk, false, true},
		{"window+odd", window + 12345, chunk, false, true},
		{"many chunks", 3<<20 + 7, chunk, false, true},
		{"default sizes", 20<<20 + 3, wbChunk, false, true},
		{"write-behind off", 1<<20 + 1, 0, false, false},
		{"reader fails midway", 1<<20 + 9, chunk, true, true},
	}
	for _, fs := range fss {
		for _, c := range cases {
			t.Run(fs.name+"/"+c.name, func(t *testing.T) {
				d := &Dir{dir: filepath.Join(fs.root, strings.ReplaceAll(c.name, " ", "_")), wbChunk: c.chunk, wbWindow: 2 * c.chunk}
				data := pattern(c.size)
				wr := &watchReader{t: t, d: d, name: "obj", r: bytes.NewReader(data)}
				if c.fail {
					wr.fail = errors.New("source broke")
				}
				n, err := d.Put(context.Background(), "obj", wr)
				ents, _ := os.ReadDir(d.dir)
				for _, e := range ents {
					if strings.HasSuffix(e.Name(), partialSuffix) {
						t.Errorf("%s left behind", e.Name())
					}
				}
				if c.fail {
					if err == nil {
						t.Fatal("Put of a failing reader succeeded")
					}
					if _, err := os.Lstat(d.Path("obj")); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("a failed Put left the object: %v", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if n != int64(c.size) {
					t.Errorf("Put returned %d bytes, want %d", n, c.size)
				}
				got, err := os.ReadFile(d.Path("obj"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Errorf("object has %d bytes, not the %d put (or different ones)", len(got), len(data))
				}
			})
		}
	}
}

// TestWriteBehindRanges: the writer starts writeback every chunk and waits
// for what is more than a window behind, whatever the write sizes; on a
// file that refuses sync_file_range (a pipe) it turns itself off and still
// writes every byte.
func TestWriteBehindRanges(t *testing.T) {
	const chunk, window = 64 << 10, 128 << 10
	for _, c := range []struct {
		name          string
		size, write   int
		starts, waits int
	}{
		{"below a chunk", chunk - 1, 4096, 0, 0},
		{"one chunk", chunk, 4096, 1, 0},
		{"window", window, 4096, 2, 0},
		{"window+chunk", window + chunk, 4096, 3, 1},
		{"ten chunks, big writes", 10 * chunk, 3 * chunk, 4, 4}, // starts at 192, 384, 576, 640 KiB
		{"ten chunks, odd writes", 10*chunk + 5, 1000, 9, 8},    // a start every 66,000 bytes (1,000-byte steps)
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w := newWriteBehind(f, chunk, window)
			data := pattern(c.size)
			for p := data; len(p) > 0; {
				m := min(len(p), c.write)
				if _, err := w.Write(p[:m]); err != nil {
					t.Fatal(err)
				}
				p = p[m:]
			}
			if w.disabled {
				// The kernel or file system of the temp dir refuses
				// sync_file_range (gVisor, some overlays): nothing to
				// count here, and a failure in CI, whose runners allow it.
				testutil.Unable(t, "sync_file_range is refused here: nothing to count")
			}
			if w.starts != c.starts || w.waits != c.waits {
				t.Errorf("%d starts, %d waits; want %d, %d", w.starts, w.waits, c.starts, c.waits)
			}
			if w.started-w.waited > window+chunk && w.waits > 0 {
				t.Errorf("%d bytes in flight, more than window + chunk", w.started-w.waited)
			}
			got, _ := os.ReadFile(f.Name())
			if !bytes.Equal(got, data) {
				t.Error("file content differs")
			}
		})
	}
	t.Run("pipe: turns itself off", func(t *testing.T) {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		data := pattern(4*chunk + 3)
		done := make(chan []byte)
		go func() { b, _ := io.ReadAll(r); done <- b }()
		w := newWriteBehind(pw, chunk, window)
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		if !bytes.Equal(<-done, data) {
			t.Error("pipe got other bytes")
		}
		if !w.disabled {
			t.Error("write-behind on a pipe did not turn itself off")
		}
	})
}
