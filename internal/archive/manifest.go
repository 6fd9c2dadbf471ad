// Package archive writes and reads drym's tar streams.
//
// A drym archive is a plain tar stream (readable by GNU tar) whose last member
// is .drym/manifest.json: one entry per archived path with its type, size,
// mode, mtime and, for regular files, the SHA-256 of its content. The
// manifest is what turns "the tar unpacked" into "every byte came back".
package archive

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// ManifestName is the tar member name of the manifest, always the last member.
const ManifestName = ".drym/manifest.json"

// ManifestVersion is the manifest format version this build writes and reads.
const ManifestVersion = 1

// MaxManifestSize bounds how much a reader accepts for the manifest, so a
// hostile archive cannot exhaust memory (≈ 10 M entries).
const MaxManifestSize = 2 << 30

// Entry types in a manifest.
const (
	TypeFile     = "file"
	TypeDir      = "dir"
	TypeSymlink  = "symlink"
	TypeHardlink = "hardlink"
)

// Entry describes one archived path.
type Entry struct {
	// Path is the tar member name: the absolute source path without its
	// leading slash ("etc/hosts"); directories have no trailing slash here.
	Path string `json:"path"`
	Type string `json:"type"`
	// Size and SHA256 are set for regular files.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Mode holds the permission bits and setuid/setgid/sticky, in octal.
	Mode string `json:"mode"`
	// MTime is the modification time, in whole seconds as tar stores it.
	MTime time.Time `json:"mtime"`
	// Link is the target of a symlink, or the path of the file a hard link
	// links to.
	Link string `json:"link,omitempty"`
}

// Manifest is .drym/manifest.json.
type Manifest struct {
	Version int       `json:"version"`
	Host    string    `json:"host"`
	Created time.Time `json:"created"`
	Sources []string  `json:"sources"`
	Entries []Entry   `json:"entries"`
}

// ParseManifest decodes and validates a whole manifest: known version,
// clean relative paths, known types, no duplicate paths. It is
// DecodeManifest keeping the entries.
func ParseManifest(r io.Reader) (*Manifest, error) {
	var entries []Entry
	seen := map[string]struct{}{}
	m, err := DecodeManifest(r, func(e Entry) error {
		if _, dup := seen[e.Path]; dup {
			return fmt.Errorf("%q listed twice", e.Path)
		}
		seen[e.Path] = struct{}{}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.Entries = entries
	return m, nil
}

// CheckName refuses member names that are not clean relative paths: empty,
// absolute, with "..", "." or empty parts, or NUL bytes.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("empty path")
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("absolute path %q", name)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("path with NUL byte")
	}
	if path.Clean(name) != name || name == "." {
		return fmt.Errorf("unclean path %q", name)
	}
	for part := range strings.SplitSeq(name, "/") {
		if part == ".." {
			return fmt.Errorf("path %q leaves the archive", name)
		}
	}
	return nil
}

// DecodeManifest reads a manifest like ParseManifest but hands each entry to
// fn as it is decoded instead of keeping them all: verifying a backup of
// millions of files then holds one entry at a time, not the whole list.
// Entries are validated as ParseManifest does, except that duplicates are
// left to the caller (it already tracks what it has seen). The returned
// Manifest has every field but Entries.
func DecodeManifest(r io.Reader, fn func(Entry) error) (*Manifest, error) {
	dec := json.NewDecoder(io.LimitReader(r, MaxManifestSize))
	var m Manifest
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	sawEntries := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		key, _ := tok.(string)
		switch key {
		case "version":
			err = dec.Decode(&m.Version)
		case "host":
			err = dec.Decode(&m.Host)
		case "created":
			err = dec.Decode(&m.Created)
		case "sources":
			err = dec.Decode(&m.Sources)
		case "entries":
			// version precedes entries in what drym writes; refuse to
			// interpret entries of a format we do not know.
			if m.Version != ManifestVersion {
				return nil, fmt.Errorf("manifest: unknown version %d (this drym reads %d)", m.Version, ManifestVersion)
			}
			sawEntries = true
			err = decodeEntries(dec, fn)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("manifest: unknown version %d (this drym reads %d)", m.Version, ManifestVersion)
	}
	if !sawEntries {
		return nil, fmt.Errorf("manifest: no entries list")
	}
	return &m, nil
}

func decodeEntries(dec *json.Decoder, fn func(Entry) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil // "entries": null, an empty list as encoding/json writes it
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("entries: expected a list, found %v", tok)
	}
	for i := 0; dec.More(); i++ {
		var e Entry
		if err := dec.Decode(&e); err != nil {
			return err
		}
		if err := checkEntry(e); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("manifest: expected %q, found %v", want, tok)
	}
	return nil
}

// checkEntry validates one entry: a clean relative path and a known type.
func checkEntry(e Entry) error {
	if err := CheckName(e.Path); err != nil {
		return err
	}
	switch e.Type {
	case TypeFile:
		if e.Size < 0 || len(e.SHA256) != 64 {
			return fmt.Errorf("%q: bad size or sha256", e.Path)
		}
	case TypeDir, TypeSymlink, TypeHardlink:
	default:
		return fmt.Errorf("%q: unknown type %q", e.Path, e.Type)
	}
	return nil
}
