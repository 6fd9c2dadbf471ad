package restore

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/drym-backup/drym/internal/archive"
)

// decodeManifest hands every entry of a manifest to fn, with exactly the
// entries, validation and error messages of archive.DecodeManifest, but
// without encoding/json for the entries drym itself writes: reflection
// decoding of every entry was a fifth of a test restore's CPU for a tree of
// 100,000 small files, spent while every other stage had already finished.
//
// The fast path reads only the compact form drym writes (version 2, known
// keys, strings without escapes, integers, no whitespace) and only entries
// that pass the manifest's own checks. At the first byte it does not take,
// it hands the rest of the stream to archive.DecodeManifest behind a
// synthetic prefix that puts that decoder in the same state (inside the
// entries list, after the entries already given to fn), so anything
// unusual, malformed or hostile is judged by the one reference decoder.
func decodeManifest(r io.Reader, fn func(archive.Entry) error) error {
	c := &manifestCursor{r: io.LimitReader(r, archive.MaxManifestSize), buf: make([]byte, 0, 16<<10)}
	return c.run(fn)
}

// Bounds of the fast path: what comes before the entries list (version,
// host, created, sources), and one entry (a path and a link target of up to
// 4 KiB each fit many times over). Anything longer goes to the reference
// decoder.
const (
	maxManifestHead  = 64 << 10
	maxManifestEntry = 64 << 10
)

var entriesKey = []byte(`"entries":[`)

// dummyEntry stands for the entry the fast path has just handed to fn when
// the reference decoder takes over right after it: the decoder then expects
// what may follow an element (',' or ']'), as it would have. fn never sees
// it.
const dummyEntry = `{"path":"a","type":"dir","mode":"0","mtime":0}`

type manifestCursor struct {
	r    io.Reader
	buf  []byte // unread bytes are buf[pos:]
	pos  int
	rerr error // the error that ended r (io.EOF at its end)
	n    int   // entries handed to fn
	// entry is reused for every fast entry (its strings are fresh).
	entry archive.Entry
}

// fill reads at least want more bytes of r into buf (fewer at its end),
// keeping buf[keep:], and reports whether anything was added.
func (c *manifestCursor) fill(keep, want int) bool {
	if c.rerr != nil {
		return false
	}
	if keep > 0 {
		n := copy(c.buf, c.buf[keep:])
		c.buf = c.buf[:n]
		c.pos -= keep
	}
	if room := cap(c.buf) - len(c.buf); room < want {
		c.buf = append(c.buf[:cap(c.buf)], make([]byte, want-room)...)[:len(c.buf)]
	}
	added := 0
	for added < want && c.rerr == nil {
		n, err := c.r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		added += n
		if err != nil {
			c.rerr = err
		}
	}
	return added > 0
}

// rest is what has not been consumed: buf from off, then r (or the error
// that ended it).
func (c *manifestCursor) rest(off int) io.Reader {
	tail := bytes.NewReader(c.buf[off:])
	switch c.rerr {
	case nil:
		return io.MultiReader(tail, c.r)
	case io.EOF:
		return tail
	}
	return io.MultiReader(tail, errReader{c.rerr})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (c *manifestCursor) run(fn func(archive.Entry) error) error {
	// The head, up to and including `"entries":[`.
	at := -1
	for {
		if at = bytes.Index(c.buf, entriesKey); at >= 0 || len(c.buf) > maxManifestHead || !c.fill(0, 4096) {
			break
		}
	}
	if at < 0 {
		return c.reference(c.rest(0), fn, 0, 0)
	}
	// The head as a manifest of its own, with an empty list: that decides
	// the version and judges every field before the entries exactly as
	// the reference decoder would. (`"entries":[` cannot start inside a
	// JSON string: its quote would be escaped there; if it is not a key,
	// this parse fails.)
	head := append(append([]byte(nil), c.buf[:at+len(entriesKey)]...), "]}"...)
	m, err := archive.DecodeManifest(bytes.NewReader(head), func(archive.Entry) error { return nil })
	if err != nil || m.Version != 2 {
		return c.reference(c.rest(0), fn, 0, 0)
	}
	c.pos = at + len(entriesKey)
	const prefix = `{"version":2,"entries":[`
	for {
		// Before the first element, or after one: the reference decoder
		// takes over from the same point, with a stand-in for the
		// element already handed to fn.
		first := c.n == 0
		e, ok := c.next(first)
		switch {
		case !ok && first:
			return c.reference(io.MultiReader(strings.NewReader(prefix), c.rest(c.pos)), fn, 0, 0)
		case !ok:
			return c.reference(io.MultiReader(strings.NewReader(prefix+dummyEntry), c.rest(c.pos)), fn, 1, c.n-1)
		case e == nil: // "]}": the end, as the reference decoder reads it
			return nil
		}
		if err := fn(*e); err != nil {
			return err
		}
		c.n++
	}
}

// referenceHook lets tests see when the reference decoder takes over.
var referenceHook func()

var entryNumber = regexp.MustCompile(`^manifest: entry ([0-9]+): `)

// reference lets archive.DecodeManifest read r, a manifest that has the
// rest of the real one after a prefix: its first skip entries are the
// prefix's own and not given to fn, and its entry numbers (in errors) are
// shifted by offset to count the entries the fast path already handled.
func (c *manifestCursor) reference(r io.Reader, fn func(archive.Entry) error, skip, offset int) error {
	if referenceHook != nil {
		referenceHook()
	}
	k := 0
	_, err := archive.DecodeManifest(r, func(e archive.Entry) error {
		k++
		if k <= skip {
			return nil
		}
		return fn(e)
	})
	if err == nil || offset == 0 {
		return err
	}
	msg := err.Error()
	if m := entryNumber.FindStringSubmatchIndex(msg); m != nil {
		if i, perr := strconv.Atoi(msg[m[2]:m[3]]); perr == nil {
			return errors.New(msg[:m[2]] + strconv.Itoa(i+offset) + msg[m[3]:])
		}
	}
	return err
}

// next reads what follows c.pos: before the first element (first) an
// entry or the list's end, after one a ',' and an entry or the end. It
// returns the entry (ok), or nil, ok for the end (']' then '}'), and ok
// false, with c.pos unchanged, for anything the fast path does not take.
func (c *manifestCursor) next(first bool) (*archive.Entry, bool) {
	start := c.pos
	for {
		e, n, more := c.parse(c.buf[start:], first)
		if !more {
			if n > 0 {
				c.pos = start + n
			}
			return e, n > 0
		}
		// At least as much again as the element so far: an element is
		// parsed from its start after every fill, so it must not be
		// refilled a few bytes at a time.
		have := len(c.buf) - start
		if have > maxManifestEntry || !c.fill(start, max(4096, have)) {
			return nil, false
		}
		start = c.pos
	}
}

// Keys of an entry the fast path reads (a bit each, to refuse a key given
// twice: encoding/json lets the last win, the fast path leaves that to it).
const (
	kPath = 1 << iota
	kType
	kSize
	kSHA256
	kMode
	kMTime
	kLink
)

// parse reads the next element from b (after first, the ',' before it):
// the entry and the bytes it took, or (nil, 2) for "]}"; n == 0 when the
// fast path does not take it; more when b ends too soon to tell. It is one
// loop over the keys of an entry, kept whole because every key shares the
// same position and bail-out rule, and it runs once per file of a backup.
func (c *manifestCursor) parse(b []byte, first bool) (e *archive.Entry, n int, more bool) {
	if len(b) < 2 {
		return nil, 0, true
	}
	if b[0] == ']' {
		if b[1] == '}' {
			return nil, 2, false
		}
		return nil, 0, false
	}
	i := 0
	if !first {
		if b[0] != ',' {
			return nil, 0, false
		}
		i++
	}
	if b[i] != '{' {
		return nil, 0, false
	}
	i++
	var path, typ, sha, mode, link []byte
	var size, mtime int64
	seen := 0
	for {
		// "key":
		if i >= len(b) {
			return nil, 0, true
		}
		if b[i] != '"' {
			return nil, 0, false
		}
		end := bytes.IndexByte(b[i+1:], '"')
		if end < 0 {
			return nil, 0, true
		}
		key := string(b[i+1 : i+1+end]) // no allocation: a switch on a converted slice
		i += end + 2
		if i >= len(b) {
			return nil, 0, true
		}
		if b[i] != ':' {
			return nil, 0, false
		}
		i++
		var bit int
		var ok bool
		switch key {
		case "path":
			bit = kPath
			path, i, ok, more = str(b, i, false)
		case "type":
			bit = kType
			typ, i, ok, more = str(b, i, true)
		case "sha256":
			bit = kSHA256
			sha, i, ok, more = str(b, i, true)
		case "mode":
			bit = kMode
			mode, i, ok, more = str(b, i, true)
		case "link":
			bit = kLink
			link, i, ok, more = str(b, i, false)
		case "size":
			bit = kSize
			size, i, ok, more = integer(b, i)
		case "mtime":
			bit = kMTime
			mtime, i, ok, more = integer(b, i)
		default:
			return nil, 0, false
		}
		if more {
			return nil, 0, true
		}
		if !ok || seen&bit != 0 {
			return nil, 0, false
		}
		seen |= bit
		if i >= len(b) {
			return nil, 0, true
		}
		switch b[i] {
		case ',':
			i++
			continue
		case '}':
			i++
		default:
			return nil, 0, false
		}
		break
	}
	e = &c.entry
	*e = archive.Entry{Size: size, MTime: mtime}
	switch string(typ) {
	case archive.TypeFile:
		e.Type = archive.TypeFile
		if size < 0 || len(sha) != 64 {
			return nil, 0, false
		}
	case archive.TypeDir:
		e.Type = archive.TypeDir
	case archive.TypeSymlink:
		e.Type = archive.TypeSymlink
	case archive.TypeHardlink:
		e.Type = archive.TypeHardlink
	default:
		return nil, 0, false
	}
	e.Path = string(path)
	if archive.CheckName(e.Path) != nil {
		return nil, 0, false
	}
	e.SHA256 = string(sha)
	e.Mode = modeString(mode)
	e.Link = string(link)
	return e, i, false
}

// str reads a JSON string at b[i] that needs no unescaping: no '\\' and no
// control character (which JSON refuses); with ascii, nothing above 0x7f
// either (encoding/json turns invalid UTF-8 into U+FFFD in a plain string
// field, the manifest's byte strings keep it as it is).
func str(b []byte, i int, ascii bool) (s []byte, next int, ok, more bool) {
	if i >= len(b) {
		return nil, i, false, true
	}
	if b[i] != '"' {
		return nil, i, false, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true, false
		case c == '\\' || c < 0x20 || ascii && c >= 0x80:
			return nil, i, false, false
		}
	}
	return nil, i, false, true
}

// integer reads a JSON integer of at most 18 digits (no sign on zero, no
// fraction or exponent: those are left to encoding/json).
func integer(b []byte, i int) (v int64, next int, ok, more bool) {
	j := i
	neg := false
	if j < len(b) && b[j] == '-' {
		neg = true
		j++
	}
	d := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		v = v*10 + int64(b[j]-'0')
		j++
		if j-d > 18 {
			return 0, i, false, false
		}
	}
	if j >= len(b) {
		return 0, i, false, true
	}
	switch {
	case j == d, b[d] == '0' && (j-d > 1 || neg):
		return 0, i, false, false
	case b[j] != ',' && b[j] != '}':
		return 0, i, false, false
	}
	if neg {
		v = -v
	}
	return v, j, true, false
}

// modeString avoids an allocation for the modes most files have.
func modeString(b []byte) string {
	switch string(b) {
	case "0644":
		return "0644"
	case "0755":
		return "0755"
	case "0600":
		return "0600"
	case "0777":
		return "0777"
	case "0700":
		return "0700"
	}
	return string(b)
}
