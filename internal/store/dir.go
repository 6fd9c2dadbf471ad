package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/drym-backup/drym/internal/status"
)

// Dir is a store in a local (or mounted) directory.
//
// Put writes to a hidden temp file ending in .partial in the same directory,
// fsyncs it, then link(2)s it to the final name: link fails if the name
// exists, so an object is never replaced, and a crash at any point leaves at
// most a .partial file, never a final-named object with half its bytes.
type Dir struct {
	dir string
}

// NewDir returns a store rooted at dir (created on first Put).
func NewDir(dir string) *Dir { return &Dir{dir: filepath.Clean(dir)} }

func (d *Dir) String() string { return "dir://" + d.dir }

// Path returns the file path of an object.
func (d *Dir) Path(name string) string { return filepath.Join(d.dir, name) }

// Put implements Store.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) (n int64, err error) {
	if err := validName(name); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(d.dir, 0o750); err != nil {
		return 0, fmt.Errorf("cannot create %s: %w", d.dir, err)
	}
	final := d.Path(name)
	if _, err := os.Lstat(final); err == nil {
		return 0, fmt.Errorf("%s: %w", final, ErrExists)
	}
	f, err := os.CreateTemp(d.dir, "."+name+".*.partial")
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
	n, err = io.Copy(f, ctxReader{ctx, r})
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
	if err := status.SyncDir(d.dir); err != nil {
		return n, err
	}
	return n, nil
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
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
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
