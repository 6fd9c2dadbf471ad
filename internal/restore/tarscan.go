package restore

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"hash"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// tarScanner reads the members of a tar stream for verify. archive/tar's
// Reader cost about 3 µs and several allocations a member (a 512-byte read
// through the pipe per header, every field parsed into a fresh Header, the
// whole block scanned rune by rune for its format), which on trees of small
// files made the tar stage the longest of the pipeline.
//
// The scanner reads the stream in large pieces and parses itself only the
// one header shape drym writes for ordinary members: a POSIX ustar block
// (magic "ustar\0", not star's), unsigned checksum correct, type regular
// file, hard link, symlink or directory, every numeric field plain octal,
// a local name. Anything else (PAX or GNU extension headers, the end of
// the archive, a short or failed read, a field it does not read exactly as
// archive/tar would) hands the stream, from that header block on, to
// archive/tar for good. A header it parses starts no state in archive/tar
// (no pending extension records), so what follows a hand-over is read
// exactly as archive/tar alone would have read it: the two give the same
// members, contents and errors (FuzzTarScan compares them).
type tarScanner struct {
	r     io.Reader
	piece func() ([]byte, error) // the next piece of the stream
	buf   []byte                 // pieces of a reader without ReadChunk
	win   []byte                 // unread bytes of the current piece
	err   error                  // the error that ended r (sticky: r is not read again)
	blk   [blockLen]byte         // a header block split between two pieces

	tr  *tar.Reader // set once the stream is handed over
	hdr tar.Header  // the current member (lean path)

	remain int64 // content bytes of the current member not yet read
	pad    int   // block padding after them
	stuck  error // a failure while skipping: every later Next returns it

	sum     [32]byte // for h.Sum, which appends
	copyBuf []byte   // read buffer for archive/tar's members
}

// chunkReader hands out its buffered data without a copy (pipe.Pipe,
// Stream): the slice is valid until the next read of any kind. Copying
// every decompressed byte into the scanner's buffer cost as much CPU as
// parsing every header.
type chunkReader interface {
	ReadChunk() ([]byte, error)
}

func newTarScanner(r io.Reader, bufSize int) *tarScanner {
	s := &tarScanner{r: r}
	if c, ok := r.(chunkReader); ok {
		s.piece = c.ReadChunk
	} else {
		// The previous piece is always consumed (or copied out) before
		// the next is asked for, so one buffer serves every read.
		s.buf = make([]byte, bufSize)
		s.piece = func() ([]byte, error) {
			n, err := s.r.Read(s.buf)
			return s.buf[:n], err
		}
	}
	return s
}

// more replaces the consumed piece with the next one, and reports whether
// it holds any bytes.
func (s *tarScanner) more() bool {
	for s.err == nil {
		b, err := s.piece()
		s.win = b
		if err != nil {
			s.err = err
		}
		if len(b) > 0 {
			return true
		}
	}
	return false
}

// handOver gives the rest of the stream, head (a header block's first
// bytes) and the unread bytes first, to archive/tar. They are copied: a
// borrowed piece is only valid until the next read.
func (s *tarScanner) handOver(head []byte) {
	rest := append(append([]byte(nil), head...), s.win...)
	s.win = nil
	var r io.Reader = s.r
	if s.err != nil {
		r = errReader{s.err}
	}
	s.tr = tar.NewReader(io.MultiReader(bytes.NewReader(rest), r))
}

// skip drops n unread bytes; at the end of r it reports how many it could
// not.
func (s *tarScanner) skip(n int64) int64 {
	for n > 0 {
		if len(s.win) == 0 && !s.more() {
			return n
		}
		k := min(int64(len(s.win)), n)
		s.win = s.win[k:]
		n -= k
	}
	return 0
}

// Next returns the next member's header (valid until the next call), or
// io.EOF at the end of the archive. A header the scanner parsed itself
// carries what verify reads: type, name, link, mode, mtime and size.
func (s *tarScanner) Next() (*tar.Header, error) {
	if s.tr != nil {
		return s.tr.Next()
	}
	if s.stuck != nil {
		return nil, s.stuck
	}
	// The rest of the current member and its padding, with archive/tar's
	// verdicts: a stream cut inside the content is an unexpected EOF, one
	// cut inside the padding simply ends.
	if left := s.skip(s.remain); left > 0 {
		s.stuck = s.cutErr(io.ErrUnexpectedEOF)
		return nil, s.stuck
	}
	s.remain = 0
	if s.pad > 0 {
		pad := int64(s.pad)
		s.pad = 0
		if left := s.skip(pad); left > 0 {
			s.stuck = s.cutErr(io.EOF)
			return nil, s.stuck
		}
	}
	if len(s.win) >= blockLen {
		if !s.parse(s.win[:blockLen]) {
			s.handOver(nil)
			return s.tr.Next()
		}
		s.win = s.win[blockLen:]
		return &s.hdr, nil
	}
	n := copy(s.blk[:], s.win)
	s.win = nil
	for n < blockLen && s.more() {
		k := copy(s.blk[n:], s.win)
		s.win = s.win[k:]
		n += k
	}
	if n < blockLen || !s.parse(s.blk[:]) {
		s.handOver(s.blk[:n])
		return s.tr.Next()
	}
	return &s.hdr, nil
}

// cutErr is what a read that came short returns: r's own error, or eof
// when r simply ended.
func (s *tarScanner) cutErr(eof error) error {
	if s.err == nil || s.err == io.EOF {
		return eof
	}
	return s.err
}

const blockLen = 512

// parse fills s.hdr and the content length from one header block, and
// reports false for anything it does not read exactly as archive/tar does.
func (s *tarScanner) parse(b []byte) bool {
	if string(b[257:263]) != "ustar\x00" || string(b[508:512]) == "tar\x00" {
		return false // not ustar (GNU, v7, the zero block), or star
	}
	chk, ok := octal(b[148:156])
	if !ok {
		return false
	}
	// Unsigned sum, the checksum field counted as spaces (archive/tar also
	// accepts the signed sum; such a block goes to it).
	sum := blockSum(b) + 8*' '
	for _, c := range b[148:156] {
		sum -= int64(c)
	}
	if sum != chk {
		return false
	}
	typ := b[156]
	switch typ {
	case tar.TypeReg, tar.TypeLink, tar.TypeSymlink, tar.TypeDir:
	default:
		return false
	}
	mode, ok1 := octal(b[100:108])
	mtime, ok2 := octal(b[136:148])
	size, ok3 := octal(b[124:136])
	_, ok4 := octal(b[108:116]) // uid, gid, device numbers: archive/tar
	_, ok5 := octal(b[116:124]) // refuses the header when they do not parse
	_, ok6 := octal(b[329:337])
	_, ok7 := octal(b[337:345])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 {
		return false
	}
	name := cstr(b[0:100])
	prefix := cstr(b[345:500])
	var full string
	if len(prefix) > 0 {
		full = string(prefix) + "/" + string(name)
	} else {
		full = string(name)
	}
	// Not empty, not absolute and without ".." is local; only the rest
	// needs filepath's full test.
	if (full == "" || full[0] == '/' || strings.Contains(full, "..")) && !filepath.IsLocal(full) {
		return false // archive/tar may refuse it (GODEBUG tarinsecurepath)
	}
	s.hdr = tar.Header{
		Typeflag: typ,
		Name:     full,
		Size:     size,
		Mode:     mode,
		ModTime:  time.Unix(mtime, 0),
	}
	if l := cstr(b[157:257]); len(l) > 0 {
		s.hdr.Linkname = string(l)
	}
	// Links and directories have no content whatever their size field
	// says (archive/tar's rule).
	s.remain = 0
	if typ == tar.TypeReg {
		s.remain = size
	}
	s.pad = int(-s.remain & (blockLen - 1))
	return true
}

// blockSum adds up the bytes of a 512-byte block eight at a time: bytes
// are summed in 16-bit lanes (64 words × 2 × 255 cannot overflow one), then
// the lanes folded. A byte at a time it was a third of parsing a header.
func blockSum(b []byte) int64 {
	const m = 0x00ff00ff00ff00ff
	var acc uint64
	for i := 0; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		acc += w&m + w>>8&m
	}
	return int64(acc&0xffff + acc>>16&0xffff + acc>>32&0xffff + acc>>48)
}

// octal reads a numeric field when it is plain octal: optional spaces or
// NULs, digits, optional spaces or NULs (what archive/tar reads after
// trimming both). Base-256 and anything else is left to archive/tar.
func octal(f []byte) (int64, bool) {
	i := 0
	for i < len(f) && (f[i] == ' ' || f[i] == 0) {
		i++
	}
	var v int64
	for ; i < len(f) && '0' <= f[i] && f[i] <= '7'; i++ {
		v = v<<3 | int64(f[i]-'0')
	}
	for ; i < len(f); i++ {
		if f[i] != ' ' && f[i] != 0 {
			return 0, false
		}
	}
	return v, true
}

// cstr is a field up to its first NUL.
func cstr(f []byte) []byte {
	if i := bytes.IndexByte(f, 0); i >= 0 {
		return f[:i]
	}
	return f
}

// Read reads the current member's content.
func (s *tarScanner) Read(p []byte) (int, error) {
	if s.tr != nil {
		return s.tr.Read(p)
	}
	if s.remain == 0 {
		return 0, io.EOF
	}
	if len(s.win) == 0 && !s.more() {
		return 0, s.cutErr(io.ErrUnexpectedEOF)
	}
	n := copy(p, s.win[:min(int64(len(s.win)), s.remain)])
	s.win = s.win[n:]
	s.remain -= int64(n)
	return n, nil
}

// hash feeds the current member's content to h straight from the stream's
// buffers (no copy), puts the SHA-256 in sum and returns the length.
func (s *tarScanner) hash(h hash.Hash, sum *[32]byte) (int64, error) {
	if s.tr != nil {
		if s.copyBuf == nil {
			s.copyBuf = make([]byte, copyBufSize)
		}
		return hashFile(s.tr, h, s.copyBuf, sum)
	}
	h.Reset()
	var n int64
	for s.remain > 0 {
		if len(s.win) == 0 && !s.more() {
			return n, s.cutErr(io.ErrUnexpectedEOF)
		}
		k := min(int64(len(s.win)), s.remain)
		h.Write(s.win[:k])
		s.win = s.win[k:]
		s.remain -= k
		n += k
	}
	copy(sum[:], h.Sum(s.sum[:0]))
	return n, nil
}
