package archive

import (
	"archive/tar"
	"errors"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Sparse files are archived in GNU tar's sparse format 1.0 (what
// `tar --sparse --format=posix` writes): the member is named
// <dir>/GNUSparseFile.0/<name>, its PAX records carry GNU.sparse.major=1,
// GNU.sparse.minor=0, GNU.sparse.name (the real name) and
// GNU.sparse.realsize, and its data is a map of the data regions (decimal
// numbers, one a line, padded to a block) followed by those regions only.
// GNU tar and Go's archive/tar both read it, and stock `tar -x` restores
// the file sparse; the holes are neither read at backup nor carried in the
// stream. Go's tar.Writer cannot write such a member (its sparse support is
// disabled), so drym writes the two headers itself, between members, and
// goes on with the tar.Writer after them.
//
// The manifest's SHA-256 covers the whole logical content, holes read as
// zeros, as `sha256sum` of the file gives.

// maxSparseRegions bounds the data map: Go's reader refuses maps over
// 1 MiB; a file fragmented beyond this is archived whole instead.
const maxSparseRegions = 20000

// dataMap returns the data regions (offset, length) of the open file of
// size bytes, and whether it has holes at all. It asks the file system
// (SEEK_DATA/SEEK_HOLE), which knows; files it cannot map are not sparse.
func dataMap(fd int, size int64) ([][2]int64, bool) {
	var regions [][2]int64
	var data int64
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole from off to the end
		}
		if err != nil || d >= size {
			if err != nil {
				return nil, false
			}
			break
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil || h <= d {
			return nil, false
		}
		h = min(h, size)
		regions = append(regions, [2]int64{d, h - d})
		data += h - d
		if len(regions) > maxSparseRegions {
			return nil, false
		}
		off = h
	}
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, false
	}
	if data == size {
		return nil, false // no holes: compressed or inline data, not sparse
	}
	// GNU tar ends a map whose file ends in a hole with an empty region at
	// the end, so that the size needs no other record.
	if len(regions) == 0 || regions[len(regions)-1][0]+regions[len(regions)-1][1] < size {
		regions = append(regions, [2]int64{size, 0})
	}
	return regions, true
}

// addSparse writes one regular file as a GNU sparse 1.0 member.
func (a *writer) addSparse(fd int, name string, hdr *tar.Header, entry *Entry, size int64, regions [][2]int64) error {
	var sm []byte
	sm = strconv.AppendInt(sm, int64(len(regions)), 10)
	sm = append(sm, '\n')
	var stored int64
	for _, r := range regions {
		sm = strconv.AppendInt(sm, r[0], 10)
		sm = append(sm, '\n')
		sm = strconv.AppendInt(sm, r[1], 10)
		sm = append(sm, '\n')
		stored += r[1]
	}
	sm = append(sm, make([]byte, blockPad(int64(len(sm))))...)
	stored += int64(len(sm))

	recs := map[string]string{
		"GNU.sparse.major":    "1",
		"GNU.sparse.minor":    "0",
		"GNU.sparse.name":     hdr.Name,
		"GNU.sparse.realsize": strconv.FormatInt(size, 10),
	}
	dir, base := path.Split(hdr.Name)
	if err := a.writeRaw(hdr, dir+"GNUSparseFile.0/"+base, stored, recs); err != nil {
		return err
	}
	out := a.out
	if _, err := out.Write(sm); err != nil {
		return err
	}

	// The regions, hashing the holes between them as the zeros they read
	// as. A file that shrinks (or fails) while read is padded with zeros,
	// as addFile does: the header already promised the bytes.
	var pos int64
	var rerr error
	zero := func(n int64) {
		clear(a.buf)
		for n > 0 {
			m := min(n, int64(len(a.buf)))
			a.h.Write(a.buf[:m])
			n -= m
		}
	}
	for _, r := range regions {
		zero(r[0] - pos)
		pos = r[0]
		for end := r[0] + r[1]; pos < end; {
			want := min(int64(len(a.buf)), end-pos)
			m := 0
			if rerr == nil {
				var err error
				m, err = pread(fd, a.buf[:want], pos)
				if m < int(want) {
					rerr = err
					if err == nil || err == io.EOF {
						rerr = errShrank
					}
				}
			}
			clear(a.buf[m:want])
			a.h.Write(a.buf[:want])
			if _, err := out.Write(a.buf[:want]); err != nil {
				return err
			}
			pos += want
		}
	}
	zero(size - pos)
	if _, err := out.Write(make([]byte, blockPad(stored))); err != nil {
		return err
	}
	if rerr != nil {
		a.stats.warn(name, rerr)
	} else if m, _ := pread(fd, a.buf[:1], size); m > 0 {
		a.stats.warn(name, grew(size))
	}
	a.stats.Sparse++
	return nil
}

func blockPad(n int64) int64 { return -n & 511 }

// pread reads len(b) bytes at off like os.File.ReadAt (io.EOF when the
// file ends first), from a plain descriptor.
func pread(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// writeRaw writes the headers of one member straight to the stream,
// past the tar.Writer: a PAX extended header with recs, hdr's PAX records
// and whatever the ustar block cannot hold, then the ustar block, named
// name (the member's own name unless a sparse member's). The caller then
// writes size bytes of data and their padding to a.out.
func (a *writer) writeRaw(hdr *tar.Header, name string, size int64, recs map[string]string) error {
	if recs == nil {
		recs = map[string]string{}
	}
	for k, v := range hdr.PAXRecords {
		recs[k] = v
	}
	main := ustar{
		name: name, mode: hdr.Mode, uid: int64(hdr.Uid), gid: int64(hdr.Gid), size: size,
		mtime: hdr.ModTime.Unix(), typeflag: hdr.Typeflag, uname: hdr.Uname, gname: hdr.Gname, link: hdr.Linkname,
	}
	if _, sparse := recs["GNU.sparse.name"]; !sparse && !asciiFits(name, 100) {
		recs["path"] = name
	}
	if !asciiFits(hdr.Linkname, 100) {
		recs["linkpath"] = hdr.Linkname
	}
	main.name = fitName("", name)
	main.overflow(recs)
	// Between members the tar.Writer holds nothing: after Flush (the
	// previous member's padding) the stream is at a block boundary.
	if err := a.tw.Flush(); err != nil {
		return err
	}
	if len(recs) > 0 {
		var records []byte
		for _, k := range slices.Sorted(maps.Keys(recs)) {
			records = appendPAXRecord(records, k, recs[k])
		}
		dir, base := path.Split(strings.TrimSuffix(hdr.Name, "/"))
		ext := ustar{name: fitName(dir+"PaxHeaders.0/", base), size: int64(len(records)), typeflag: tar.TypeXHeader}
		blk := ext.block()
		records = append(records, make([]byte, blockPad(int64(len(records))))...)
		if _, err := a.out.Write(append(blk[:], records...)); err != nil {
			return err
		}
	}
	blk := main.block()
	_, err := a.out.Write(blk[:])
	return err
}

// fitName is prefix+base cut to the 100 bytes of a ustar name field, ASCII
// only. Only stock tars that know neither PAX nor GNU sparse use it.
func fitName(prefix, base string) string {
	b := []byte(prefix + base)
	for i, c := range b {
		if c >= 0x80 || c == 0 {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[len(b)-100:]
	}
	return string(b)
}

// appendPAXRecord appends "<len> <key>=<value>\n", where len counts the
// whole record, its own digits included.
func appendPAXRecord(b []byte, k, v string) []byte {
	const padding = 3 // ' ', '=' and '\n'
	size := len(k) + len(v) + padding
	size += len(strconv.Itoa(size))
	rec := strconv.Itoa(size) + " " + k + "=" + v + "\n"
	if len(rec) != size { // the length gained a digit
		size = len(rec)
		rec = strconv.Itoa(size) + " " + k + "=" + v + "\n"
	}
	return append(b, rec...)
}

// ustar is one header block's fields.
type ustar struct {
	name             string
	mode, uid, gid   int64
	size, mtime      int64
	typeflag         byte
	uname, gname     string
	link             string
	noUID, noGID     bool
	noSize, noMTime  bool
	noUname, noGname bool
}

const (
	max7  = 1<<21 - 1 // 7 octal digits
	max11 = 1<<33 - 1 // 11 octal digits
)

// overflow moves the fields a ustar block cannot hold into PAX records, as
// tar.Writer does.
func (u *ustar) overflow(recs map[string]string) {
	if u.uid < 0 || u.uid > max7 {
		recs["uid"], u.noUID = strconv.FormatInt(u.uid, 10), true
	}
	if u.gid < 0 || u.gid > max7 {
		recs["gid"], u.noGID = strconv.FormatInt(u.gid, 10), true
	}
	if u.size > max11 {
		recs["size"], u.noSize = strconv.FormatInt(u.size, 10), true
	}
	if u.mtime < 0 || u.mtime > max11 {
		recs["mtime"], u.noMTime = strconv.FormatInt(u.mtime, 10), true
	}
	if !asciiFits(u.uname, 32) {
		recs["uname"], u.noUname = u.uname, true
	}
	if !asciiFits(u.gname, 32) {
		recs["gname"], u.noGname = u.gname, true
	}
}

func asciiFits(s string, n int) bool {
	if len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

// block renders the header block (POSIX ustar layout, checksum included).
func (u *ustar) block() [512]byte {
	var b [512]byte
	copy(b[0:100], u.name)
	octal(b[100:108], u.mode&0o7777)
	if !u.noUID {
		octal(b[108:116], u.uid)
	} else {
		octal(b[108:116], 0)
	}
	if !u.noGID {
		octal(b[116:124], u.gid)
	} else {
		octal(b[116:124], 0)
	}
	if !u.noSize {
		octal(b[124:136], u.size)
	} else {
		octal(b[124:136], 0)
	}
	if !u.noMTime {
		octal(b[136:148], u.mtime)
	} else {
		octal(b[136:148], 0)
	}
	b[156] = u.typeflag
	if asciiFits(u.link, 100) {
		copy(b[157:257], u.link)
	}
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	if !u.noUname {
		copy(b[265:297], u.uname)
	}
	if !u.noGname {
		copy(b[297:329], u.gname)
	}
	octal(b[329:337], 0)
	octal(b[337:345], 0)
	// The checksum is computed with its own field as spaces.
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	octal(b[148:155], sum) // six digits and NUL; the space stays
	return b
}

// octal writes n (≥ 0) as zero-padded octal digits ending in NUL, the low
// digits when it has more than fit. Digit by digit, not through
// strconv: it runs for five fields of every member.
func octal(f []byte, n int64) {
	w := len(f) - 1
	for i := w - 1; i >= 0; i-- {
		f[i] = byte('0' + n&7)
		n >>= 3
	}
	f[w] = 0
}
