package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The read-ahead must not change a byte of the archive: the same tree
// archived with and without it gives the same stream, on the walk's tree
// of odd cases plus what only batches meet (more files than a batch, more
// content than a batch holds, files at the size limit and past it, an
// extended attribute, a hard link inside one batch, excluded files
// between read ones, a subdirectory between two batches).
func TestReadAheadSameArchive(t *testing.T) {
	src := walkTree(t)
	many := filepath.Join(src, "many")
	os.MkdirAll(many, 0o755)
	for i := range 3*readAheadFiles + 5 {
		size := (i * 997) % 3000
		switch {
		case i == 3:
			size = readAheadMax
		case i == 4:
			size = readAheadMax + 1
		case i == 7:
			size = 0
		case i >= 10 && i < 16: // 6 × 60 KiB: more than one batch holds
			size = 60 << 10
		}
		os.WriteFile(filepath.Join(many, fmt.Sprintf("f%03d", i)), bytes.Repeat([]byte{byte('a' + i%26)}, size), 0o640)
	}
	os.Mkdir(filepath.Join(many, "f020.d"), 0o755)
	os.WriteFile(filepath.Join(many, "f020.d", "inner"), []byte("inner"), 0o600)
	os.Link(filepath.Join(many, "f001"), filepath.Join(many, "f002.link"))
	os.WriteFile(filepath.Join(many, "f005.skip"), []byte("excluded"), 0o644)
	xattrs := unix.Setxattr(filepath.Join(many, "f006"), "user.drym", []byte("v"), 0) == nil
	opt := Options{Host: "h", Sources: []string{src}, Now: time.Unix(1_700_000_000, 0), Exclude: []string{"*.skip"}}
	var serial, ahead bytes.Buffer
	sOpt := opt
	sOpt.serial = true
	st1, err := Write(context.Background(), &serial, sOpt)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := Write(context.Background(), &ahead, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(serial.Bytes(), ahead.Bytes()) {
		t.Errorf("the archives differ (%d and %d bytes)", serial.Len(), ahead.Len())
	}
	if fmt.Sprint(st1) != fmt.Sprint(st2) {
		t.Errorf("stats differ:\n%+v\n%+v", st1, st2)
	}
	got := strings.Join(gotMembers(t, ahead.Bytes()), "\n")
	for _, want := range []string{"many/f000 ", "many/f004 ", "many/f020.d/inner ", "many/f002.link -> "} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q among the members", want)
		}
	}
	if strings.Contains(got, "f005.skip") {
		t.Error("an excluded file was archived")
	}
	if !xattrs {
		t.Log("no user extended attributes on this file system: f006 is a plain file")
	}
}

// readOne reads only the plain case and hands every other back, saying
// how: what the writer then does with it is the writer's own tested path.
func TestReadOne(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte("x"), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("plain", 1000)
	write("empty", 0)
	write("limit", readAheadMax)
	write("large", readAheadMax+1)
	write("linked", 10)
	os.Link(filepath.Join(dir, "linked"), filepath.Join(dir, "linked2"))
	os.Symlink("plain", filepath.Join(dir, "symlink"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	os.Mkdir(filepath.Join(dir, "dir"), 0o755)
	sp, _ := os.Create(filepath.Join(dir, "sparse"))
	sp.Truncate(32 << 10)
	sp.Close()
	write("xattr", 10)
	hasXattr := unix.Setxattr(filepath.Join(dir, "xattr"), "user.drym", []byte("v"), 0) == nil
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	for _, tc := range []struct {
		name string
		want int
		full bool // the batch is almost full already
	}{
		{"plain", aheadRead, false},
		{"empty", aheadRead, false},
		{"limit", aheadRead, false},
		{"large", aheadOpen, false},
		{"plain", aheadOpen, true},
		{"linked", aheadOpen, false},
		{"sparse", aheadOpen, false},
		{"xattr", aheadOpen, false},
		{"symlink", aheadRedo, false}, // O_NOFOLLOW: the writer archives the link
		{"fifo", aheadRedo, false},
		{"dir", aheadRedo, false},
		{"missing", aheadRedo, false},
	} {
		if tc.name == "xattr" && !hasXattr {
			tc.want = aheadRead // no attribute could be set: a plain file
		}
		t.Run(fmt.Sprintf("%s full=%v", tc.name, tc.full), func(t *testing.T) {
			b := &aheadBatch{dirfd: dirfd, data: make([]byte, 0, readAheadBatch+readAheadMax+1)}
			if tc.full {
				b.data = b.data[:readAheadBatch+readAheadMax-500]
			}
			name, _ := unix.BytePtrFromString(tc.name)
			f := &aheadFile{cname: name}
			readOne(b, f, sha256.New(), make([]byte, 1))
			if f.state != tc.want {
				t.Fatalf("state %d, want %d", f.state, tc.want)
			}
			switch f.state {
			case aheadOpen:
				var st unix.Stat_t
				if err := unix.Fstat(f.fd, &st); err != nil || st.Ino != f.st.Ino {
					t.Errorf("handed back fd %d is not the file (%v)", f.fd, err)
				}
				unix.Close(f.fd)
			case aheadRead:
				want, _ := os.ReadFile(filepath.Join(dir, tc.name))
				got := b.data[f.off : f.off+int(f.st.Size)]
				if !bytes.Equal(got, want) || f.sum != sha256.Sum256(want) {
					t.Errorf("read %d bytes, sum %x; want %d bytes, %x", len(got), f.sum, len(want), sha256.Sum256(want))
				}
			}
		})
	}
}

// A walk cancelled in the middle of a directory returns with every batch
// drained and every descriptor a reader opened closed again.
func TestReadAheadCancelledLeavesNothingOpen(t *testing.T) {
	src := t.TempDir()
	for i := range 10 * readAheadFiles {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%04d", i)), []byte("content"), 0o644)
		if i == 5*readAheadFiles {
			os.WriteFile(filepath.Join(src, fmt.Sprintf("f%04d.big", i)), make([]byte, readAheadMax+1), 0o644)
		}
	}
	before := openFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := Write(ctx, &bytes.Buffer{}, Options{Host: "h", Sources: []string{src}, Now: time.Now(), OnFile: func(int64) {
		if n++; n == 3 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("a cancelled walk returned no error")
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before the walk, %d after", before, after)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
