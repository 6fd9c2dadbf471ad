package store

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// ReadRange implements Pager.
func (d *Dir) ReadRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(d.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", d.Path(name), ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", d.Path(name))
	}
	if off >= fi.Size() {
		return nil, nil
	}
	buf := make([]byte, min(n, fi.Size()-off))
	got, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", d.Path(name), err)
	}
	return buf[:got], ctx.Err()
}

// dirBatch is how many directory entries are read at a time: a directory of
// a million backups costs a scan, never a million entries in memory.
const dirBatch = 512

// scan reads d's directory in batches and keeps the max smallest entries
// that keep accepts and that sort after after. It returns them in order and
// whether more entries would have been kept.
func (d *Dir) scan(ctx context.Context, after string, max int, keep func(fs.DirEntry) bool) ([]fs.DirEntry, bool, error) {
	f, err := os.Open(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	h := &nameHeap{}
	more := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		ents, err := f.ReadDir(dirBatch)
		for _, e := range ents {
			if e.Name() <= after || strings.HasPrefix(e.Name(), ".") || !keep(e) {
				continue
			}
			heap.Push(h, e)
			if h.Len() > max {
				heap.Pop(h) // drop the largest: it belongs to a later page
				more = true
			}
		}
		if errors.Is(err, io.EOF) || len(ents) == 0 {
			break
		}
		if err != nil {
			return nil, false, err
		}
	}
	out := make([]fs.DirEntry, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(fs.DirEntry)
	}
	return out, more, nil
}

// ListPage implements Pager. The token is the last name of the previous
// page.
func (d *Dir) ListPage(ctx context.Context, prefix, startAfter, token string, max int) (Page, error) {
	after := startAfter
	if token != "" {
		after = token
	}
	ents, more, err := d.scan(ctx, after, max, func(e fs.DirEntry) bool {
		return strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular()
	})
	if err != nil {
		return Page{}, err
	}
	var p Page
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // vanished between ReadDir and Info
		}
		p.Objects = append(p.Objects, Info{Name: e.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
	}
	if more && len(ents) > 0 {
		p.Next = ents[len(ents)-1].Name()
	}
	return p, nil
}

// ListDirs implements Pager: the sub-directories of the store's directory.
func (d *Dir) ListDirs(ctx context.Context, token string, max int) ([]string, string, error) {
	ents, more, err := d.scan(ctx, token, max, func(e fs.DirEntry) bool { return e.IsDir() })
	if err != nil {
		return nil, "", err
	}
	dirs := make([]string, len(ents))
	for i, e := range ents {
		dirs[i] = e.Name()
	}
	next := ""
	if more && len(dirs) > 0 {
		next = dirs[len(dirs)-1]
	}
	return dirs, next, nil
}

// nameHeap is a max-heap of entries by name: its top is the one to drop
// when a page is full.
type nameHeap []fs.DirEntry

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i].Name() > h[j].Name() }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(fs.DirEntry)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
