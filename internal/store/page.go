package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Pager is what the monitoring side reads a store with: part of an object,
// and listings that start at a key and stop after a bounded page. With
// time-ordered names that is how a check finds the newest backup of a host
// with a constant number of requests however many objects are stored. Both
// Dir and S3 implement it; callers reach it through ReadRange, ListPage and
// ListDirs, so the Store interface stays as it is.
type Pager interface {
	// ReadRange returns at most n bytes of name from offset off (fewer at
	// the end of the object; none past it). One ranged GET on S3.
	ReadRange(ctx context.Context, name string, off, n int64) ([]byte, error)
	// ListPage returns at most max objects whose names start with prefix
	// and sort after startAfter ("" for the first), in lexical order, and
	// the token for the next page ("" when there is none). A non-empty
	// token continues a listing instead of startAfter. One request on S3.
	ListPage(ctx context.Context, prefix, startAfter, token string, max int) (Page, error)
	// ListDirs returns at most max folder names directly under the store
	// (the hosts of a destination opened without a host scope), in lexical
	// order, and the token for the next page ("" when there is none).
	ListDirs(ctx context.Context, token string, max int) (dirs []string, next string, err error)
}

// Page is one bounded page of a listing.
type Page struct {
	Objects []Info
	// Next continues the listing; "" when this was the last page.
	Next string
}

// MaxPage is the most objects one page holds (S3's own limit).
const MaxPage = 1000

// ErrDenied means the credentials (or, for a directory, the user) may not
// read what was asked: the monitoring policy working as meant, or a wrong
// profile. Permission errors of a Dir store match it too (IsDenied).
var ErrDenied = errors.New("access denied")

// IsDenied reports whether err is a refusal rather than a fault.
func IsDenied(err error) bool {
	return errors.Is(err, ErrDenied) || errors.Is(err, fs.ErrPermission)
}

var errNoPager = errors.New("this store cannot read ranges or list in pages")

func pager(s Store) (Pager, error) {
	p, ok := s.(Pager)
	if !ok {
		return nil, fmt.Errorf("%s: %w", s, errNoPager)
	}
	return p, nil
}

// ReadRange reads at most n bytes of name from off (see Pager).
func ReadRange(ctx context.Context, s Store, name string, off, n int64) ([]byte, error) {
	p, err := pager(s)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("bad range %d+%d of %s", off, n, name)
	}
	return p.ReadRange(ctx, name, off, n)
}

// ListPage lists one bounded page (see Pager). max is capped at MaxPage.
func ListPage(ctx context.Context, s Store, prefix, startAfter, token string, max int) (Page, error) {
	p, err := pager(s)
	if err != nil {
		return Page{}, err
	}
	return p.ListPage(ctx, prefix, startAfter, token, clampPage(max))
}

// ListDirs lists one bounded page of folder names (see Pager).
func ListDirs(ctx context.Context, s Store, token string, max int) ([]string, string, error) {
	p, err := pager(s)
	if err != nil {
		return nil, "", err
	}
	return p.ListDirs(ctx, token, clampPage(max))
}

func clampPage(n int) int {
	if n <= 0 || n > MaxPage {
		return MaxPage
	}
	return n
}

// Scope returns the store of the folder name inside s (a host's folder in
// a destination opened without a host scope), sharing s's connection: a
// sweep over a thousand hosts sets up its credentials and client once.
func Scope(s Store, name string) (Store, error) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return nil, fmt.Errorf("bad store scope %q", name)
	}
	switch t := s.(type) {
	case *Dir:
		return NewDir(t.Path(name)), nil
	case *S3:
		c := *t
		c.prefix = t.prefix + name + "/"
		c.url = t.url + name + "/"
		return &c, nil
	}
	return nil, fmt.Errorf("%s: cannot scope this store", s)
}
