// Package store is where drym's objects go: backups, their .sha256 sidecars
// and escrow zips. One small interface, two implementations: Dir (a local or
// mounted directory, the embedded default) and S3.
//
// A store never replaces an existing object: Put fails with ErrExists when
// the name is taken. Backups only ever need Put, so they work with put-only
// credentials on S3; Open, Stat and List use separate read credentials.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/config"
)

// Info describes one stored object.
type Info struct {
	Name    string // relative to the store, e.g. 20261123T180000Z-<hex>.tar.zst.gpg
	Size    int64
	ModTime time.Time
}

// Store is a flat namespace of immutable objects.
type Store interface {
	// Put stores everything read from r under name and returns the number of
	// bytes stored. It never replaces an existing object (ErrExists), and on
	// any error no object of that name becomes visible.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Open returns the content of name. ErrNotFound if there is none.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Stat returns the size of name. ErrNotFound if there is none.
	Stat(ctx context.Context, name string) (Info, error)
	// List calls fn for every object whose name starts with prefix, in
	// lexical order (which for backup names is time order). An error from fn
	// stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// String is the store's URL, for messages.
	String() string
}

// PrivatePutter is implemented by stores that set file modes (Dir): its
// PutPrivate is Put for an object only the writing user may read.
type PrivatePutter interface {
	PutPrivate(ctx context.Context, name string, r io.Reader) (int64, error)
}

// PutPrivate stores an object that may hold a secret (an escrow zip with the
// bare host key): private where the store has file modes; on S3 the bucket
// policy decides who reads it.
func PutPrivate(ctx context.Context, s Store, name string, r io.Reader) (int64, error) {
	if p, ok := s.(PrivatePutter); ok {
		return p.PutPrivate(ctx, name, r)
	}
	return s.Put(ctx, name, r)
}

// Errors callers tell apart.
var (
	ErrExists   = errors.New("object already exists (drym never overwrites)")
	ErrNotFound = errors.New("object not found")
)

// Access says which credentials a store uses.
type Access int

const (
	// Write uses [..] profile: put-only is enough.
	Write Access = iota
	// Read uses [..] read_profile (or the default chain).
	Read
)

// Open returns the store for remote (its URL parsed), scoped to the
// subdirectory or key prefix sub ("<host>" for backups, "" for a flat escrow
// drop). ctx bounds the set-up (credential lookup).
func Open(ctx context.Context, remote config.Remote, sub string, access Access) (Store, error) {
	loc, err := config.ParseURL(remote.URL)
	if err != nil {
		return nil, err
	}
	if sub != "" && (strings.Contains(sub, "/") || sub == "." || sub == "..") {
		return nil, fmt.Errorf("bad store scope %q", sub)
	}
	switch loc.Scheme {
	case "dir":
		return NewDir(path.Join(loc.Path, sub)), nil
	case "s3":
		return NewS3(ctx, loc, remote, sub, access)
	}
	return nil, fmt.Errorf("unsupported store %q", remote.URL)
}

// Latest returns the last object, in name order, whose name match accepts
// (for time-prefixed backup names: the newest), or ErrNotFound.
func Latest(ctx context.Context, s Store, match func(name string) bool) (Info, error) {
	var last Info
	found := false
	err := s.List(ctx, "", func(i Info) error {
		if match(i.Name) {
			last, found = i, true
		}
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	if !found {
		return Info{}, fmt.Errorf("%s: %w", s, ErrNotFound)
	}
	return last, nil
}

// validName refuses names that could leave the store's scope.
func validName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return fmt.Errorf("invalid object name %q", name)
	}
	return nil
}
