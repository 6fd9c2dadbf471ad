package restore

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"github.com/drym-backup/drym/internal/archive"
)

// MaxListed bounds the problems a report lists; the count is always exact.
const MaxListed = 20

// MaxNameLen refuses member names longer than Linux's PATH_MAX: nothing that
// long can be a real path of the source host.
const MaxNameLen = 4095

// ErrNoManifest means the archive has no .drym/manifest.json: it was not
// made by drym (or was cut before its end), so nothing can be verified.
var ErrNoManifest = errors.New("no manifest: the archive has no " + archive.ManifestName + " (not made by drym, or cut short), so its content cannot be verified")

// Problems is a bounded list of findings with an exact count.
type Problems struct {
	Count int
	List  []string
}

func (p *Problems) add(format string, args ...any) {
	p.Count++
	if len(p.List) < MaxListed {
		p.List = append(p.List, fmt.Sprintf(format, args...))
	}
}

// Summary is one line: the count and the first problem.
func (p Problems) Summary() string {
	if p.Count == 0 {
		return ""
	}
	if p.Count == 1 {
		return p.List[0]
	}
	return fmt.Sprintf("%s (and %d more)", p.List[0], p.Count-1)
}

// CleanName turns a tar member name into a clean relative path, or refuses
// it. drym writes clean names; stock tar writes "./x" or "dir/" forms, which
// are accepted. Absolute names, "..", NUL bytes and over-long names are not.
// The empty result (for "./") means the archive root itself.
func CleanName(name string) (string, error) {
	if len(name) > MaxNameLen {
		return "", fmt.Errorf("name longer than %d bytes", MaxNameLen)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute name %q", trunc(name))
	}
	n := strings.TrimSuffix(name, "/")
	for strings.HasPrefix(n, "./") {
		n = n[2:]
	}
	if n == "." || n == "" {
		return "", nil
	}
	if err := archive.CheckName(n); err != nil {
		return "", err
	}
	return n, nil
}

// trunc keeps hostile names from flooding messages.
func trunc(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// seen is what the archive held for one path.
type seen struct {
	typ    string
	size   int64
	sha256 string
	// sum is the raw SHA-256 when hasSum is set (verify hashes into it
	// directly: a hex string per file only to be decoded again was two
	// allocations per file).
	sum    [32]byte
	hasSum bool
	mode   int64
	mtime  int64
	link   string
	// attrs is the digest of the member's extended attributes and ACLs
	// (archive.Attrs.Digest; zero for none).
	attrs [32]byte
}

// seenOf starts the record of a member from its header.
func seenOf(hdr *tar.Header) seen {
	s := seen{typ: typeOf(hdr), mode: hdr.Mode & 0o7777, mtime: hdr.ModTime.Unix(), link: hdr.Linkname}
	if len(hdr.PAXRecords) > 0 && s.typ != archive.TypeHardlink {
		a := archive.FromPAX(hdr.PAXRecords)
		s.attrs = a.Digest()
	}
	return s
}

// checker compares archive members with the manifest that ends the archive.
// Members are remembered as they stream past; the manifest, last, is then
// decoded one entry at a time and matched off, so memory holds what the
// archive had, never a second, decoded copy of the manifest.
type checker struct {
	seen     *members
	keep     func(string) bool // restore's path selection; nil: all
	hasMan   bool
	after    bool // a member followed the manifest
	problems Problems
}

func newChecker(keep func(string) bool) *checker {
	return &checker{seen: newMembers(), keep: keep}
}

func (c *checker) add(name string, s seen) {
	if c.hasMan && !c.after {
		c.after = true
		c.problems.add("%s: member after the manifest (the manifest must be last)", trunc(name))
	}
	if c.seen.put(name, s) {
		c.problems.add("%s: in the archive twice", trunc(name))
	}
}

func (c *checker) manifest(r io.Reader) error {
	if c.hasMan {
		c.problems.add("%s: in the archive twice", archive.ManifestName)
		return nil
	}
	c.hasMan = true
	err := decodeManifest(r, func(e archive.Entry) error {
		i, v := c.seen.lookup(e.Path)
		switch {
		case i < 0:
			if c.keep == nil || c.keep(e.Path) {
				c.problems.add("%s: in the manifest but missing from the archive", trunc(e.Path))
			}
			return nil
		case c.seen.isDone(i):
			// Matched marks are what catch a manifest listing a path
			// twice without keeping the manifest.
			c.problems.add("%s: listed twice in the manifest", trunc(e.Path))
			return nil
		}
		c.seen.setDone(i)
		if c.keep != nil && !c.keep(e.Path) {
			return nil
		}
		for _, d := range compare(e, v) {
			c.problems.add("%s: %s", trunc(e.Path), d)
		}
		return nil
	})
	if err != nil {
		// An unreadable manifest verifies nothing: what it did not match
		// off is reported as unexpected rather than passing as unverified.
		c.problems.add("%s: %v", archive.ManifestName, err)
	}
	return nil
}

// finish reports the members the manifest did not list, for the paths keep
// accepts. It returns false when there was no manifest.
func (c *checker) finish() bool {
	if !c.hasMan {
		return false
	}
	var extra []string
	c.seen.each(func(i int, name []byte) {
		if !c.seen.isDone(i) && (c.keep == nil || c.keep(string(name))) {
			extra = append(extra, string(name))
		}
	})
	sort.Strings(extra)
	for _, name := range extra {
		c.problems.add("%s: in the archive but not in the manifest", trunc(name))
	}
	return true
}

// compare lists the differences between a manifest entry and the member.
func compare(e archive.Entry, s view) []string {
	if e.Type != s.typ {
		return []string{fmt.Sprintf("is a %s in the archive, a %s in the manifest", s.typ, e.Type)}
	}
	var d []string
	switch e.Type {
	case archive.TypeFile:
		if e.Size != s.size {
			d = append(d, fmt.Sprintf("size %d, manifest says %d", s.size, e.Size))
		} else if !sameSHA256(e.SHA256, &s.sha) {
			d = append(d, fmt.Sprintf("content differs: sha256 %s, manifest says %s", short(hex.EncodeToString(s.sha[:])), short(e.SHA256)))
		}
	case archive.TypeSymlink, archive.TypeHardlink:
		if e.Link != s.link {
			d = append(d, fmt.Sprintf("links to %q, manifest says %q", trunc(s.link), trunc(e.Link)))
		}
	}
	if e.Type != archive.TypeHardlink {
		if m, err := strconv.ParseInt(e.Mode, 8, 64); err != nil || m != s.mode {
			d = append(d, fmt.Sprintf("mode %04o, manifest says %s", s.mode, e.Mode))
		}
		if e.MTime != s.mtime {
			d = append(d, fmt.Sprintf("mtime %d, manifest says %d", s.mtime, e.MTime))
		}
		if e.Attrs.Digest() != s.attrs {
			var none [32]byte
			switch {
			case s.attrs == none:
				d = append(d, "has no extended attributes or ACLs in the archive, the manifest lists some")
			case e.Attrs.Empty():
				d = append(d, "has extended attributes or ACLs in the archive the manifest does not list")
			default:
				d = append(d, "extended attributes or ACLs differ from the manifest")
			}
		}
	}
	return d
}

// sameSHA256 compares a manifest's hex digest with a raw one, without
// allocating (it runs once per file).
func sameSHA256(hexsum string, raw *[32]byte) bool {
	var b [64]byte
	hex.Encode(b[:], raw[:])
	return string(b[:]) == hexsum
}

// typeOf maps a tar type to a manifest type ("" for what drym never archives).
func typeOf(h *tar.Header) string {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, '\x00', tar.TypeCont:
		return archive.TypeFile
	case tar.TypeDir:
		return archive.TypeDir
	case tar.TypeSymlink:
		return archive.TypeSymlink
	case tar.TypeLink:
		return archive.TypeHardlink
	}
	return ""
}

// Report is what Verify found.
type Report struct {
	// Files and Bytes count the regular files read and hashed.
	Files, Bytes int64
	// Members counts every tar member except the manifest.
	Members int64
	// Verified is true when the archive had a manifest to compare with.
	Verified bool
	Problems Problems
}

// Verify reads a tar stream to its end, hashes every regular file and
// compares every member with the manifest. It returns an error only when
// the stream itself fails (decompression, tar framing, cancellation);
// differences are Problems. onFile, when set, gets each file's size.
func Verify(ctx context.Context, r io.Reader, onFile func(int64)) (Report, error) {
	rep, _, err := verify(ctx, r, onFile)
	return rep, err
}

// Listing is a verified archive's table of contents.
type Listing struct {
	Report
	m *members
}

// Item is one path of a Listing.
type Item struct {
	Type  string // archive.TypeFile, …
	Size  int64
	Mode  int64
	MTime int64
	Link  string
}

// List verifies the tar stream as Verify does and keeps its table of
// contents, to be read (Each) once the caller knows the object's integrity
// check and SHA-256 passed too.
func List(ctx context.Context, r io.Reader, onFile func(int64)) (*Listing, error) {
	rep, c, err := verify(ctx, r, onFile)
	return &Listing{Report: rep, m: c.seen}, err
}

// Each calls fn for every member, in archive order, until it returns false.
func (l *Listing) Each(fn func(name string, it Item) bool) {
	stop := false
	l.m.eachView(true, func(_ int, name []byte, v *view) {
		if !stop && !fn(string(name), Item{Type: v.typ, Size: v.size, Mode: v.mode, MTime: v.mtime, Link: v.link}) {
			stop = true
		}
	})
}

func verify(ctx context.Context, r io.Reader, onFile func(int64)) (Report, *checker, error) {
	defer tightGC()()
	var rep Report
	c := newChecker(nil)
	tr := newTarScanner(r, copyBufSize)
	h := sha256.New()
	for {
		if err := ctx.Err(); err != nil {
			return rep, c, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rep, c, fmt.Errorf("reading the tar stream: %w", err)
		}
		name, err := CleanName(hdr.Name)
		if err != nil {
			c.problems.add("refused member: %v", err)
			continue
		}
		if name == "" || name == ".drym" && hdr.Typeflag == tar.TypeDir {
			continue
		}
		if name == archive.ManifestName {
			if err := c.manifest(tr); err != nil {
				return rep, c, err
			}
			continue
		}
		rep.Members++
		s := seenOf(hdr)
		switch s.typ {
		case archive.TypeFile:
			s.size, err = tr.hash(h, &s.sum)
			s.hasSum = true
			if err != nil {
				return rep, c, fmt.Errorf("reading %s from the tar stream: %w", trunc(name), err)
			}
			rep.Files++
			rep.Bytes += s.size
			if onFile != nil {
				onFile(s.size)
			}
		case archive.TypeHardlink:
			if l, err := CleanName(hdr.Linkname); err == nil {
				s.link = l
			}
		case "":
			c.problems.add("%s: unsupported member type %q (device, FIFO, …)", trunc(name), string(hdr.Typeflag))
			continue
		}
		c.add(name, s)
	}
	rep.Verified = c.finish()
	rep.Problems = c.problems
	return rep, c, nil
}

// gcPercent: almost everything live in a test restore is allocated once
// (pipe chunks, the decoder's window, the member table) and the per-file
// garbage is small, so collecting at 10 % above the live heap costs little
// CPU, while the default (GOGC=100, up to the runner's soft limit) let the
// heap float to twice the live size: peak RSS then grew with the file
// count far more than the member table did.
const gcPercent = 10

// tightGC lowers the GC target for the duration of a verify or restore (a
// lower setting, e.g. from GOGC, is kept) and returns the undo.
func tightGC() func() {
	old := debug.SetGCPercent(gcPercent)
	if old < gcPercent { // lower, or off (-1)
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}

// copyBufSize is the read size for member content.
const copyBufSize = 1 << 20

// hashFile reads r to its end through h, and puts the SHA-256 in sum
// (through buf, so that Sum does not allocate).
func hashFile(r io.Reader, h hash.Hash, buf []byte, sum *[32]byte) (int64, error) {
	h.Reset()
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
		}
		if err == io.EOF {
			copy(sum[:], h.Sum(buf[:0]))
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// CleanPaths checks the paths asked for on the command line before anything
// is read: each names a path as it was on the host (/srv/www) or as
// archived (srv/www); "/" means everything. A ".." or a NUL byte is
// refused: the path would not mean what it seems to.
func CleanPaths(paths []string) error {
	for _, p := range paths {
		if p == "" {
			return fmt.Errorf("empty path")
		}
		if strings.ContainsRune(p, 0) {
			return fmt.Errorf("path %q: NUL byte", p)
		}
		for part := range strings.SplitSeq(p, "/") {
			if part == ".." {
				return fmt.Errorf("path %q: \"..\" is not allowed; give the path as it was on the host (/srv/www) or as archived (srv/www)", p)
			}
		}
		if c := ArchivedPath(p); c != "" && len(c) > MaxNameLen {
			return fmt.Errorf("path %q: longer than %d bytes", p, MaxNameLen)
		}
	}
	return nil
}

// ArchivedPath is the archived form of a path asked for: /srv/www and
// srv/www/ are srv/www ("" for everything).
func ArchivedPath(p string) string {
	c := path.Clean(strings.TrimLeft(p, "/"))
	if c == "." {
		return ""
	}
	return c
}

// matchPaths returns a filter for the paths given (nil keeps everything):
// a member is kept when it is one of them or lies below one.
func matchPaths(paths []string) (func(string) bool, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	if err := CleanPaths(paths); err != nil {
		return nil, err
	}
	var clean []string
	for _, p := range paths {
		c := ArchivedPath(p)
		if c == "" {
			return nil, nil // "/" or "." means everything
		}
		clean = append(clean, c)
	}
	return func(name string) bool {
		for _, p := range clean {
			if name == p || strings.HasPrefix(name, p+"/") {
				return true
			}
		}
		return false
	}, nil
}
