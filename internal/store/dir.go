package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/drym-backup/drym/internal/safefile"
)

// Dir is a store in a local (or mounted) directory.
//
// Put writes to a hidden temp file ending in .partial in the same directory,
// fsyncs it, then link(2)s it to the final name: link fails if the name
// exists, so an object is never replaced, and a crash at any point leaves at
// most a .partial file, never a final-named object with half its bytes. The
// writer holds an flock on its .partial file; the next Put removes partial
// files nobody holds (left by a SIGKILL or a crash). While the object
// grows, its writeback is started every few MiB and older ranges are waited
// for (writebehind.go), so the final fsync is short and the dirty pages of
// one backup stay bounded; the fsync still comes before the link.
//
// Modes are set explicitly, whatever the umask: directories 0755 and objects
// 0644, so the checks can look at the destination as user nagios (backups
// are encrypted; their names and sizes are not secret), except objects
// written with PutPrivate (escrow zips, which may hold the bare secret key),
// which are 0600.
type Dir struct {
	dir string
	// write-behind while an object is written (writebehind.go); a chunk
	// of 0 turns it off
	wbChunk, wbWindow int64
}

// Modes of what a Dir creates.
const (
	DirMode     = 0o755
	ObjectMode  = 0o644
	PrivateMode = 0o600
)

// NewDir returns a store rooted at dir (created on first Put).
func NewDir(dir string) *Dir {
	return &Dir{dir: filepath.Clean(dir), wbChunk: wbChunk, wbWindow: wbWindow}
}

func (d *Dir) String() string { return "dir://" + d.dir }

// Path returns the file path of an object.
func (d *Dir) Path(name string) string { return filepath.Join(d.dir, name) }

// Put implements Store.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) (n int64, err error) {
	return d.put(ctx, name, r, ObjectMode)
}

// PutPrivate is Put for an object only its owner may read.
func (d *Dir) PutPrivate(ctx context.Context, name string, r io.Reader) (int64, error) {
	return d.put(ctx, name, r, PrivateMode)
}

func (d *Dir) put(ctx context.Context, name string, r io.Reader, mode os.FileMode) (n int64, err error) {
	if err := validName(name); err != nil {
		return 0, err
	}
	if err := mkdirAll(d.dir); err != nil {
		return 0, fmt.Errorf("cannot create %s: %w", d.dir, err)
	}
	d.removeStalePartials()
	final := d.Path(name)
	if _, err := os.Lstat(final); err == nil {
		return 0, fmt.Errorf("%s: %w", final, ErrExists)
	}
	f, err := os.CreateTemp(d.dir, "."+name+".*"+partialSuffix)
	if err != nil {
		return 0, fmt.Errorf("cannot write to %s: %w", d.dir, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp) // after link, the object lives on under its final name
	}()
	// Held until the file is closed: tells the next Put this partial file
	// is being written, not left behind.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return 0, fmt.Errorf("cannot lock %s: %w", tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		return 0, fmt.Errorf("cannot write to %s: %w", d.dir, err)
	}
	// 256 KiB copies instead of io.Copy's 32 KiB: an eighth of the write
	// calls for a multi-GiB object.
	n, err = io.CopyBuffer(newWriteBehind(f, d.wbChunk, d.wbWindow), ctxReader{ctx, r}, make([]byte, copyBuffer))
	if err != nil {
		return n, fmt.Errorf("writing %s: %w", final, err)
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("writing %s: %w", final, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("writing %s: %w", final, err)
	}
	f = nil
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return n, fmt.Errorf("%s: %w", final, ErrExists)
		}
		return n, fmt.Errorf("cannot publish %s: %w", final, err)
	}
	if err := safefile.SyncDir(d.dir); err != nil {
		return n, err
	}
	return n, nil
}

const (
	partialSuffix = ".partial"
	copyBuffer    = 256 << 10
)

// mkdirAll creates dir and its missing parents with DirMode, whatever the
// umask (existing directories keep their mode: that is the admin's choice).
func mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, DirMode); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.Chmod(dir, DirMode)
}

// removeStalePartials deletes .partial files no writer holds: what a
// SIGKILLed or crashed run left behind. A live writer holds an flock on its
// file, so a second run (or another host sharing the directory) never
// removes a file that is being written.
func (d *Dir) removeStalePartials() {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, partialSuffix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(d.dir, name)
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}

// Open implements Store.
func (d *Dir) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(d.Path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", d.Path(name), ErrNotFound)
	}
	return f, err
}

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, name string) (Info, error) {
	if err := validName(name); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(d.Path(name))
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("%s: %w", d.Path(name), ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%s is not a regular file", d.Path(name))
	}
	return Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements Store. Hidden files (temp and .partial files) are not
// objects.
func (d *Dir) List(ctx context.Context, prefix string, fn func(Info) error) error {
	ents, err := os.ReadDir(d.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// os.ReadDir returns the entries sorted by name: lexical order.
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasPrefix(name, prefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // vanished between ReadDir and Info
		}
		if err := fn(Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// ctxReader stops a copy when ctx is done (SIGTERM, timeout).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
