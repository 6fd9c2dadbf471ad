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

// ParseManifest decodes and validates a manifest: known version, clean
// relative paths, known types, no duplicate paths.
func ParseManifest(r io.Reader) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(r, MaxManifestSize))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("manifest: unknown version %d (this drym reads %d)", m.Version, ManifestVersion)
	}
	seen := make(map[string]struct{}, len(m.Entries))
	for i, e := range m.Entries {
		if err := CheckName(e.Path); err != nil {
			return nil, fmt.Errorf("manifest entry %d: %w", i, err)
		}
		switch e.Type {
		case TypeFile:
			if e.Size < 0 || len(e.SHA256) != 64 {
				return nil, fmt.Errorf("manifest entry %q: bad size or sha256", e.Path)
			}
		case TypeDir, TypeSymlink, TypeHardlink:
		default:
			return nil, fmt.Errorf("manifest entry %q: unknown type %q", e.Path, e.Type)
		}
		if _, dup := seen[e.Path]; dup {
			return nil, fmt.Errorf("manifest: %q listed twice", e.Path)
		}
		seen[e.Path] = struct{}{}
	}
	return &m, nil
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
