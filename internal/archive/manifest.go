// Package archive writes and reads drym's tar streams.
//
// A drym archive is a plain tar stream (readable by GNU tar) whose last member
// is .drym/manifest.json: one entry per archived path with its type, size,
// mode, mtime and, for regular files, the SHA-256 of its content. The
// manifest is what turns "the tar unpacked" into "every byte came back".
package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ManifestName is the tar member name of the manifest, always the last member.
const ManifestName = ".drym/manifest.json"

// ManifestVersion is the manifest format version this build writes. It
// reads every version from 1 to ManifestVersion, so backups made before an
// upgrade still verify.
//
// Version 2 (docs/REFERENCE.md#the-manifest): byte strings (paths, link
// targets, ACLs, extended attribute values) are a JSON string when they are
// valid UTF-8 and {"base64": "…"} otherwise, so any name a Linux file system
// holds round-trips exactly (version 1 wrote U+FFFD in their place); mtime is
// integer Unix seconds (version 1's RFC 3339 text cannot hold years outside
// 0–9999); and entries carry extended attributes and POSIX ACLs.
const ManifestVersion = 2

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

// Entry describes one archived path. Strings hold raw bytes (not
// necessarily UTF-8).
type Entry struct {
	// Path is the tar member name: the absolute source path without its
	// leading slash ("etc/hosts"); directories have no trailing slash here.
	Path string
	Type string
	// Size and SHA256 (lower-case hex) are set for regular files.
	Size   int64
	SHA256 string
	// Mode holds the permission bits and setuid/setgid/sticky, in octal.
	Mode string
	// MTime is the modification time in Unix seconds (tar keeps whole
	// seconds), any int64: before 1970 and after 2262 included.
	MTime int64
	// Link is the target of a symlink, or the path of the file a hard link
	// links to.
	Link string
	// Attrs are the extended attributes and POSIX ACLs (version 2).
	Attrs Attrs
}

// Attrs are what a path carries besides its content and mode: extended
// attributes (raw values, POSIX ACLs excluded) and the POSIX ACLs in the
// text form GNU tar archives (see acl.go).
type Attrs struct {
	Xattrs     []Xattr // sorted by name
	ACL        string  // access ACL; "" when the mode says it all
	DefaultACL string  // default ACL of a directory
}

// Xattr is one extended attribute.
type Xattr struct {
	Name, Value string
}

// Empty reports whether there is nothing besides the mode.
func (a *Attrs) Empty() bool {
	return len(a.Xattrs) == 0 && a.ACL == "" && a.DefaultACL == ""
}

// Digest is a SHA-256 over a canonical encoding of the attributes, so that
// archive members and manifest entries can be compared without keeping
// either's attributes (the zero digest for none).
func (a *Attrs) Digest() [32]byte {
	if a.Empty() {
		return [32]byte{}
	}
	var b []byte
	put := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, x := range a.Xattrs {
		put(x.Name)
		put(x.Value)
	}
	b = append(b, 0xff)
	put(a.ACL)
	put(a.DefaultACL)
	return sha256.Sum256(b)
}

// FromPAX collects the attributes of a tar header's PAX records: every
// SCHILY.xattr.<name> (a raw system.posix_acl_* one only when the ACL is not
// also there in text form, as GNU tar --xattrs --acls writes both) and the
// SCHILY.acl.* text.
func FromPAX(recs map[string]string) Attrs {
	var a Attrs
	if len(recs) == 0 {
		return a
	}
	a.ACL, a.DefaultACL = recs[PAXACLAccess], recs[PAXACLDefault]
	for k, v := range recs {
		name, ok := strings.CutPrefix(k, PAXXattr)
		if !ok {
			continue
		}
		if (name == XattrACLAccess && a.ACL != "") || (name == XattrACLDefault && a.DefaultACL != "") {
			continue
		}
		a.Xattrs = append(a.Xattrs, Xattr{name, v})
	}
	slices.SortFunc(a.Xattrs, func(x, y Xattr) int { return strings.Compare(x.Name, y.Name) })
	return a
}

// PAX adds the attributes to a tar header's PAX records, as GNU tar
// --xattrs --acls writes them.
func (a *Attrs) PAX(recs map[string]string) map[string]string {
	if a.Empty() {
		return recs
	}
	if recs == nil {
		recs = map[string]string{}
	}
	for _, x := range a.Xattrs {
		recs[PAXXattr+x.Name] = x.Value
	}
	if a.ACL != "" {
		recs[PAXACLAccess] = a.ACL
	}
	if a.DefaultACL != "" {
		recs[PAXACLDefault] = a.DefaultACL
	}
	return recs
}

// Manifest is .drym/manifest.json.
type Manifest struct {
	Version int
	Host    string
	Created time.Time
	Sources []string
	Entries []Entry
}

// MarshalJSON writes the manifest as this build does: version
// ManifestVersion, whatever version m was read from.
func (m Manifest) MarshalJSON() ([]byte, error) {
	b, err := m.head()
	if err != nil {
		return nil, err
	}
	for i := range m.Entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEntry(b, &m.Entries[i])
	}
	return append(b, "]}"...), nil
}

// head is the manifest up to and including the entries list's '['.
func (m *Manifest) head() ([]byte, error) {
	created, err := m.Created.MarshalJSON()
	if err != nil {
		return nil, err
	}
	sources, err := json.Marshal(m.Sources)
	if err != nil {
		return nil, err
	}
	b := append([]byte(`{"version":`), strconv.Itoa(ManifestVersion)...)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, m.Host)
	b = append(b, `,"created":`...)
	b = append(b, created...)
	b = append(b, `,"sources":`...)
	b = append(b, sources...)
	return append(b, `,"entries":[`...), nil
}

// MarshalJSON writes one version 2 entry.
func (e Entry) MarshalJSON() ([]byte, error) { return appendEntry(nil, &e), nil }

// appendEntry appends e as a version 2 JSON object. Written by hand: it
// runs once per archived path (twice, with the size pass), and byte strings
// need the base64 form when they are not UTF-8.
func appendEntry(b []byte, e *Entry) []byte {
	b = append(b, `{"path":`...)
	b = appendBytes(b, e.Path)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type)
	if e.Size != 0 {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, e.Size, 10)
	}
	if e.SHA256 != "" {
		b = append(b, `,"sha256":`...)
		b = appendJSONString(b, e.SHA256)
	}
	b = append(b, `,"mode":`...)
	b = appendJSONString(b, e.Mode)
	b = append(b, `,"mtime":`...)
	b = strconv.AppendInt(b, e.MTime, 10)
	if e.Link != "" {
		b = append(b, `,"link":`...)
		b = appendBytes(b, e.Link)
	}
	if len(e.Attrs.Xattrs) > 0 {
		b = append(b, `,"xattrs":{`...)
		for i, x := range e.Attrs.Xattrs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, x.Name)
			b = append(b, ':')
			b = appendBytes(b, x.Value)
		}
		b = append(b, '}')
	}
	if e.Attrs.ACL != "" {
		b = append(b, `,"acl":`...)
		b = appendBytes(b, e.Attrs.ACL)
	}
	if e.Attrs.DefaultACL != "" {
		b = append(b, `,"default_acl":`...)
		b = appendBytes(b, e.Attrs.DefaultACL)
	}
	return append(b, '}')
}

// appendBytes writes a byte string: a JSON string when it is valid UTF-8,
// else {"base64":"…"} (JSON strings cannot carry other bytes).
func appendBytes(b []byte, s string) []byte {
	if utf8.ValidString(s) {
		return appendJSONString(b, s)
	}
	b = append(b, `{"base64":"`...)
	b = base64.StdEncoding.AppendEncode(b, []byte(s))
	return append(b, `"}`...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString escapes a valid UTF-8 string exactly as encoding/json
// does (HTML-safe), so the manifest drym streams equals json.Marshal's.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Not reached for appendBytes; kept as encoding/json has it.
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// bstr decodes a byte string: a JSON string, or {"base64": "…"}.
type bstr string

func (s *bstr) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		// The common case, without escapes: the bytes as they stand.
		if inner := data[1 : len(data)-1]; !bytes.ContainsAny(inner, "\\\"") {
			*s = bstr(inner)
			return nil
		}
		var v string
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		*s = bstr(v)
		return nil
	}
	if string(data) == "null" {
		return nil
	}
	var v struct {
		Base64 *string `json:"base64"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("expected a string or {\"base64\": …}: %w", err)
	}
	if v.Base64 == nil {
		return errors.New(`expected a string or {"base64": …}`)
	}
	raw, err := base64.StdEncoding.DecodeString(*v.Base64)
	if err != nil {
		return fmt.Errorf("base64: %w", err)
	}
	*s = bstr(raw)
	return nil
}

// wireEntry is an entry as either version spells it.
type wireEntry struct {
	Path       bstr            `json:"path"`
	Type       string          `json:"type"`
	Size       int64           `json:"size"`
	SHA256     string          `json:"sha256"`
	Mode       string          `json:"mode"`
	MTime      json.RawMessage `json:"mtime"` // v1: RFC 3339 text; v2: Unix seconds
	Link       bstr            `json:"link"`
	Xattrs     map[string]bstr `json:"xattrs"`
	ACL        bstr            `json:"acl"`
	DefaultACL bstr            `json:"default_acl"`
}

func (w *wireEntry) entry(version int) (Entry, error) {
	e := Entry{Path: string(w.Path), Type: w.Type, Size: w.Size, SHA256: w.SHA256, Mode: w.Mode, Link: string(w.Link)}
	if len(w.MTime) > 0 && string(w.MTime) != "null" {
		if version == 1 {
			var t time.Time
			if err := json.Unmarshal(w.MTime, &t); err != nil {
				return e, fmt.Errorf("mtime: %w", err)
			}
			e.MTime = t.Unix()
		} else {
			n, err := strconv.ParseInt(string(w.MTime), 10, 64)
			if err != nil {
				return e, fmt.Errorf("mtime %s: not integer seconds", w.MTime)
			}
			e.MTime = n
		}
	}
	if version >= 2 {
		for name, v := range w.Xattrs {
			e.Attrs.Xattrs = append(e.Attrs.Xattrs, Xattr{name, string(v)})
		}
		slices.SortFunc(e.Attrs.Xattrs, func(x, y Xattr) int { return strings.Compare(x.Name, y.Name) })
		e.Attrs.ACL, e.Attrs.DefaultACL = string(w.ACL), string(w.DefaultACL)
	}
	return e, nil
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
	if plainName(name) {
		return nil
	}
	return checkName(name)
}

// plainName reports, in one pass and without path.Clean, that name is
// what checkName accepts in the common case: not absolute, no NUL, and
// every component neither empty nor "." nor "..", which is a clean path.
// Everything else goes to checkName for the verdict and the message. It
// runs twice for every file a test restore verifies.
func plainName(name string) bool {
	if name == "" || name[0] == '/' {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			if name[i] == 0 {
				return false
			}
			continue
		}
		if part := name[start:i]; part == "" || part == "." || part == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

func checkName(name string) error {
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
			if err := knownVersion(m.Version); err != nil {
				return nil, err
			}
			sawEntries = true
			err = decodeEntries(dec, m.Version, fn)
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
	if err := knownVersion(m.Version); err != nil {
		return nil, err
	}
	if !sawEntries {
		return nil, fmt.Errorf("manifest: no entries list")
	}
	return &m, nil
}

func knownVersion(v int) error {
	if v < 1 || v > ManifestVersion {
		return fmt.Errorf("manifest: unknown version %d (this drym reads 1 to %d; a newer drym wrote it)", v, ManifestVersion)
	}
	return nil
}

func decodeEntries(dec *json.Decoder, version int, fn func(Entry) error) error {
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
		var w wireEntry
		if err := dec.Decode(&w); err != nil {
			return err
		}
		e, err := w.entry(version)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
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
