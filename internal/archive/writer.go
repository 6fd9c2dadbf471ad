package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options says what Write archives.
type Options struct {
	Host    string
	Sources []string // absolute paths
	// Exclude holds globs (filepath.Match syntax) matched against each
	// absolute path and against its base name; a matching directory is not
	// descended into.
	Exclude []string
	// Now dates the manifest ("created") and its tar member. It must be
	// set: a zero time would date the backup in year 1, which no reader
	// could tell from a clock that was never read, so Write refuses it.
	Now time.Time
	// OnFile, when set, is called after each regular file is archived with
	// its size (progress reporting).
	OnFile func(size int64)
	// serial turns the read-ahead (prefetch.go) off: tests that change a
	// file from OnFile expect the next file to be read after that.
	serial bool
}

// Stats counts what Write archived.
type Stats struct {
	Files, Dirs, Symlinks, Hardlinks int64
	// BytesIn is the size of the regular files' content archived.
	BytesIn int64
	// Warnings counts paths skipped or changed during the walk;
	// WarningList holds the first of them.
	Warnings    int64
	WarningList []string
	// Skipped counts the sockets, FIFOs and device nodes not archived (they
	// hold no data a restore could bring back); SkippedList holds the first
	// of them as "path: socket".
	Skipped     int64
	SkippedList []string
	// Sparse counts the files archived as sparse files (GNU sparse 1.0).
	Sparse int64
}

// maxWarningsListed bounds WarningList.
const maxWarningsListed = 20

func (s *Stats) warn(path string, err error) {
	s.Warnings++
	if len(s.WarningList) < maxWarningsListed {
		s.WarningList = append(s.WarningList, fmt.Sprintf("%s: %v", path, shortErr(err)))
	}
}

func (s *Stats) skip(path, kind string) {
	s.Skipped++
	if len(s.SkippedList) < maxWarningsListed {
		s.SkippedList = append(s.SkippedList, path+": "+kind)
	}
}

// shortErr drops the path os errors repeat.
func shortErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// ErrSource is wrapped by errors about a source root (missing, unreadable):
// those fail the run, while trouble below a root is a warning.
var ErrSource = errors.New("source")

// ErrNoTime is returned by Write when Options.Now is the zero time.
var ErrNoTime = errors.New("archive: Options.Now is not set (the manifest needs the backup's time)")

// copyBufSize is the read size for file content: large reads keep syscalls
// off the profile.
const copyBufSize = 1 << 20

type writer struct {
	ctx   context.Context
	out   io.Writer // under tw: sparse members are written here directly
	tw    *tar.Writer
	opt   Options
	stats Stats
	man   Manifest
	buf   []byte
	h     hash.Hash
	sum   []byte
	// links maps (dev, inode) of multiply-linked files to the first path
	// archived, so later names become tar hard links.
	links map[[2]uint64]string
	users map[int]string
	grps  map[int]string
	// The manifest's entries, packed (see addEntry).
	blocks   [][]byte
	pack     []byte // scratch for one packed entry
	prevPath []byte
	nEntries int
	manSize  int64  // bytes of the entries' JSON, commas included
	ebuf     []byte // scratch for one entry's JSON
	encErr   error
	// Extended attributes: scratch for the name list and a value.
	xnames, xval []byte
	// Reused for every path: its header, its stat, the directory walk's
	// per-depth entry lists and getdents buffer (walk.go).
	hdr    tar.Header
	st     unix.Stat_t
	levels []*dirLevel
	dbuf   []byte
	// ahead reads small files ahead of the walk (prefetch.go).
	ahead *readAhead
	// twDirty: tw wrote the last member, and may hold its padding.
	twDirty bool
	// blk holds the ustar block of a plain member while it is written.
	blk [512]byte
}

// Write archives the sources as a tar stream to w, ending with the manifest.
// It does not close w. Files that vanish or cannot be read during the walk
// are skipped and counted as warnings; a missing source root is an error.
func Write(ctx context.Context, w io.Writer, opt Options) (Stats, error) {
	if opt.Now.IsZero() {
		return Stats{}, ErrNoTime
	}
	a := &writer{
		ctx: ctx, out: w, tw: tar.NewWriter(w), opt: opt,
		buf: make([]byte, copyBufSize), h: sha256.New(), sum: make([]byte, 0, sha256.Size),
		links: map[[2]uint64]string{}, users: map[int]string{}, grps: map[int]string{},
	}
	a.man = Manifest{Version: ManifestVersion, Host: opt.Host, Created: opt.Now.UTC().Truncate(time.Second), Sources: opt.Sources, Entries: []Entry{}}
	if !opt.serial {
		a.ahead = newReadAhead()
		defer a.ahead.stop()
	}
	for _, src := range opt.Sources {
		fi, err := os.Lstat(src)
		if err != nil {
			return a.stats, fmt.Errorf("%w %s: %v", ErrSource, src, shortErr(err))
		}
		root := src
		if fi.Mode()&fs.ModeSymlink != 0 {
			// A source that is a symlink (/etc/ssl/certs → …) means the
			// tree it points to; below the root, symlinks stay links.
			resolved, err := filepath.EvalSymlinks(src)
			if err != nil {
				return a.stats, fmt.Errorf("%w %s: %v", ErrSource, src, shortErr(err))
			}
			root = resolved
		}
		if err := a.walk(src, root); err != nil {
			return a.stats, err
		}
	}
	if err := a.writeManifest(); err != nil {
		return a.stats, err
	}
	if err := a.tw.Close(); err != nil {
		return a.stats, err
	}
	return a.stats, nil
}

func (a *writer) excluded(path string) bool {
	base := filepath.Base(path)
	for _, g := range a.opt.Exclude {
		if m, _ := filepath.Match(g, path); m {
			return true
		}
		if m, _ := filepath.Match(g, base); m {
			return true
		}
	}
	return false
}

var errSkip = errors.New("skip")

// add archives one path by its name: the roots, and what the directory
// walk (walk.go) does not take through a directory descriptor (symlinks,
// special files, entries of unknown type, directories it cannot open).
// Errors that concern only this path are warnings (errSkip); errors writing
// the stream end the run.
func (a *writer) add(path, name string) error {
	st := &a.st
	if err := unix.Lstat(path, st); err != nil {
		a.stats.warn(name, &fs.PathError{Op: "lstat", Path: path, Err: err})
		return errSkip
	}
	member := memberName(name)
	hdr, entry := a.newHeader(st, member)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if member == "." {
			return nil // "/" itself carries nothing to restore
		}
		return a.addDir(-1, path, name, hdr, entry)
	case unix.S_IFLNK:
		target, err := os.Readlink(path)
		if err != nil {
			a.stats.warn(name, err)
			return errSkip
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
		entry.Type, entry.Link = TypeSymlink, target
		a.attrs(-1, path, name, hdr, &entry)
		if _, err := a.header(hdr); err != nil {
			return err
		}
		a.stats.Symlinks++
		a.addEntry(&entry)
		return nil
	case unix.S_IFREG:
		fd, err := openNoATime(unix.AT_FDCWD, path)
		if err != nil {
			a.stats.warn(name, &fs.PathError{Op: "open", Path: path, Err: err})
			return errSkip
		}
		defer unix.Close(fd)
		return a.addOpen(fd, path, name, member)
	default:
		// Sockets, FIFOs and device nodes are not data: a file-level
		// restore cannot bring them back, so they are not archived, but
		// counted and listed, so that nobody is surprised by their
		// absence.
		a.stats.skip(name, nodeKind(st.Mode))
		return nil
	}
}

// memberName is the tar member name of an absolute name: without the
// leading slash, "." for "/" itself. A substring, not a copy.
func memberName(name string) string {
	member := strings.TrimPrefix(name, "/")
	if member == "" {
		member = "." // backing up "/" itself: its entry is the root dir
	}
	return member
}

// newHeader fills the writer's one reusable tar header (and returns it
// with a fresh entry) from st: no allocation per path but the entry's.
func (a *writer) newHeader(st *unix.Stat_t, member string) (*tar.Header, Entry) {
	mode := int64(st.Mode & 0o7777) // permissions, setuid, setgid, sticky
	a.hdr = tar.Header{
		Name: member,
		Mode: mode,
		// Whole seconds, rounded down (also before 1970): tar's ustar
		// fields hold seconds, and a PAX mtime record any int64.
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Uid:     int(st.Uid), Gid: int(st.Gid),
		Uname: a.userName(int(st.Uid)), Gname: a.groupName(int(st.Gid)),
	}
	return &a.hdr, Entry{Path: member, Mode: modeString(mode), MTime: st.Mtim.Sec}
}

// modeStrings caches the manifest's octal modes ("0644"): one Sprintf
// per distinct mode, not per path.
var modeStrings [0o10000]atomicString

type atomicString struct{ p atomic.Pointer[string] }

func modeString(mode int64) string {
	m := &modeStrings[mode&0o7777]
	if s := m.p.Load(); s != nil {
		return *s
	}
	s := fmt.Sprintf("%04o", mode&0o7777)
	m.p.Store(&s)
	return s
}

// addDir writes a directory's header and entry; fd is the directory when
// open (its attributes are read through it), else -1.
func (a *writer) addDir(fd int, path, name string, hdr *tar.Header, entry Entry) error {
	hdr.Typeflag = tar.TypeDir
	hdr.Name += "/"
	entry.Type = TypeDir
	a.attrs(fd, path, name, hdr, &entry)
	if _, err := a.header(hdr); err != nil {
		return err
	}
	a.stats.Dirs++
	a.addEntry(&entry)
	return nil
}

func nodeKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "special file"
}

// header writes a member's header. A plain member (what nearly every
// file is: short ASCII name, no PAX records) gets its ustar block written
// here, byte for byte what tar.Writer writes for it (see
// TestPlainHeaderAsTarWriter), without tar.Writer's per-header checks and
// allocations; raw is then true and the caller writes the content and its
// padding to a.out. tar.Writer also takes a zero ModTime — exactly
// 0001-01-01T00:00:00Z, a time a file can have — for "no time" and writes
// 1970 instead: that one second goes through writeRaw.
func (a *writer) header(hdr *tar.Header) (raw bool, err error) {
	if hdr.ModTime.IsZero() {
		return true, a.writeRaw(hdr, hdr.Name, hdr.Size, nil)
	}
	if u, ok := plainUSTAR(hdr); ok {
		if a.twDirty {
			// The previous member's padding, held by tar.Writer.
			if err := a.tw.Flush(); err != nil {
				return false, err
			}
			a.twDirty = false
		}
		// Into a.blk: a block local to this call escapes through the
		// io.Writer, 512 bytes of garbage a member.
		a.blk = u.block()
		_, err := a.out.Write(a.blk[:])
		return true, err
	}
	a.twDirty = true
	return false, a.tw.WriteHeader(hdr)
}

// plainUSTAR returns hdr as one ustar block when tar.Writer would write
// it as exactly that: no PAX records, an ASCII name and link of at most
// 100 bytes (longer ones tar.Writer splits or moves to PAX), user and group
// names of at most 32, numbers in their octal fields.
func plainUSTAR(hdr *tar.Header) (ustar, bool) {
	mtime := hdr.ModTime.Unix()
	ok := len(hdr.PAXRecords) == 0 &&
		asciiFits(hdr.Name, 100) && asciiFits(hdr.Linkname, 100) &&
		asciiFits(hdr.Uname, 32) && asciiFits(hdr.Gname, 32) &&
		hdr.Uid >= 0 && hdr.Uid <= max7 && hdr.Gid >= 0 && hdr.Gid <= max7 &&
		hdr.Size >= 0 && hdr.Size <= max11 && mtime >= 0 && mtime <= max11 &&
		hdr.ModTime.Nanosecond() == 0 && hdr.Mode >= 0 && hdr.Mode <= 0o7777 &&
		(hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeDir || hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink)
	if !ok {
		return ustar{}, false
	}
	return ustar{
		name: hdr.Name, mode: hdr.Mode, uid: int64(hdr.Uid), gid: int64(hdr.Gid), size: hdr.Size,
		mtime: mtime, typeflag: hdr.Typeflag, uname: hdr.Uname, gname: hdr.Gname, link: hdr.Linkname,
	}, true
}

// addOpen archives the regular file open as fd (or its hard link, when
// its inode was archived under another name). It stats the open file, not
// the name: the file may have been replaced since its directory was read.
func (a *writer) addOpen(fd int, path, name, member string) error {
	st := &a.st
	if err := unix.Fstat(fd, st); err != nil {
		a.stats.warn(name, &fs.PathError{Op: "fstat", Path: path, Err: err})
		return errSkip
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		a.stats.warn(name, errors.New("replaced by a non-regular file during the backup"))
		return errSkip
	}
	hdr, entry := a.newHeader(st, member)
	if st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := a.links[key]; ok {
			// A hard link carries no attributes of its own: they
			// are the inode's, archived with its first name.
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			entry.Type, entry.Link = TypeHardlink, first
			if _, err := a.header(hdr); err != nil {
				return err
			}
			a.stats.Hardlinks++
			a.addEntry(&entry)
			return nil
		}
		err := a.addFile(fd, st, path, name, hdr, entry)
		if err == nil {
			a.links[key] = strings.Clone(member)
		}
		return err
	}
	return a.addFile(fd, st, path, name, hdr, entry)
}

// addFile streams one regular file, open as fd and described by st, into
// the tar and its hash. It is long because it is the per-file hot path:
// sparse detection, the header and the read loop (which pads a file that
// shrank and cuts one that grew while read) share one stat and one buffer,
// and helpers would cost a call and an escape per file on small files.
func (a *writer) addFile(fd int, st *unix.Stat_t, path, name string, hdr *tar.Header, entry Entry) (err error) {
	size := st.Size
	sparse := st.Blocks*512 < size
	a.attrs(fd, path, name, hdr, &entry)
	a.h.Reset()
	if sparse {
		// Fewer blocks than bytes: maybe holes (or compression, or
		// inline data). Only the file system's data map can tell.
		if regions, ok := dataMap(fd, size); ok {
			if err := a.addSparse(fd, name, hdr, &entry, size, regions); err != nil {
				return err
			}
			return a.fileDone(&entry, size)
		}
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = size
	raw, err := a.header(hdr)
	if err != nil {
		return err
	}
	var body io.Writer = a.tw
	if raw {
		body = a.out
	}
	// The tar header promises size bytes: a file that shrinks while read
	// is padded with zeros (and hashed as padded, so the manifest matches
	// the archive), one that grows is cut at size. Both are warnings.
	// Each read asks for one byte more than is left: a file that grew
	// shows it in the read that ends it, so a small file costs one read.
	var n int64
	var rerr error
	grown := false
	for {
		left := size - n
		want := min(int64(len(a.buf)), left+1)
		m, err := unix.Read(fd, a.buf[:want])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			rerr = &fs.PathError{Op: "read", Path: path, Err: err}
			break
		}
		if m == 0 {
			if n < size {
				rerr = errShrank
			}
			break
		}
		if int64(m) > left {
			m, grown = int(left), true
		}
		a.h.Write(a.buf[:m])
		if _, werr := body.Write(a.buf[:m]); werr != nil {
			return werr
		}
		n += int64(m)
		// A read shorter than asked that completes the file is its end
		// (a short read before that is only a piece: read on).
		if grown || (n == size && int64(m) < want) {
			break
		}
	}
	if n < size {
		clear(a.buf)
		for n < size {
			m := min(int64(len(a.buf)), size-n)
			a.h.Write(a.buf[:m])
			if _, werr := body.Write(a.buf[:m]); werr != nil {
				return werr
			}
			n += m
		}
		a.stats.warn(name, rerr)
	} else if grown {
		a.stats.warn(name, grew(size))
	}
	if err := a.padRaw(raw, size); err != nil {
		return err
	}
	return a.fileDone(&entry, size)
}

// padRaw pads a member of size bytes written raw (not through tw, which
// pads its own) to the tar block size.
func (a *writer) padRaw(raw bool, size int64) error {
	if pad := blockPad(size); raw && pad > 0 {
		_, err := a.out.Write(zeroBlock[:pad])
		return err
	}
	return nil
}

// zeroBlock pads raw members to the tar block size.
var zeroBlock [512]byte

var errShrank = errors.New("file shrank while it was read (archived zero-padded)")

func grew(size int64) error {
	return errors.New("file grew while it was read (archived its first " + strconv.FormatInt(size, 10) + " bytes)")
}

// fileDone records a regular file whose content went through a.h.
func (a *writer) fileDone(entry *Entry, size int64) error {
	a.sum = a.h.Sum(a.sum[:0])
	return a.fileEntry(entry, size)
}

// fileEntry records a regular file whose SHA-256 is a.sum.
func (a *writer) fileEntry(entry *Entry, size int64) error {
	entry.Type = TypeFile
	entry.Size = size
	a.addEntry(entry)
	a.stats.Files++
	a.stats.BytesIn += size
	if a.opt.OnFile != nil {
		a.opt.OnFile(size)
	}
	return nil
}

// openNoATime opens a regular file (name relative to the directory dirfd)
// without updating its access time where allowed (O_NOATIME needs
// ownership or CAP_FOWNER): a backup should not make every file look
// recently used. O_NOFOLLOW: a file replaced by a symlink since its
// directory was read is not followed (ELOOP); O_NONBLOCK: one replaced by
// a FIFO does not hang the backup. The descriptor is a plain one, not an
// *os.File: that would register it with the netpoller (two more syscalls
// and a finalizer a file).
func openNoATime(dirfd int, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// manifestBlock is the size of the blocks the manifest entries are kept in.
const manifestBlock = 256 << 10

// Entry types in the packed form.
var packedTypes = [...]string{TypeFile, TypeDir, TypeSymlink, TypeHardlink}

// addEntry records one manifest entry, packed: the path front-coded against
// the previous one, the SHA-256 as 32 raw bytes (a.sum, for a file: the
// entry carries no hex), numbers as varints — about
// 70 bytes a file instead of ≈ 300 for an Entry and its strings — in
// 256 KiB blocks (no slice doubling). The manifest is a backup's only
// memory that grows with the tree; packing it keeps peak RSS nearly flat
// from 1 to 4 GiB (and ~40 k files). The entry's JSON is encoded here once
// for its length (the tar header needs the total before the content) and
// again when the manifest is written.
func (a *writer) addEntry(e *Entry) {
	a.ebuf = appendEntry(a.ebuf[:0], e)
	a.manSize += int64(len(a.ebuf))
	if e.Type == TypeFile {
		// Its SHA-256 is a.sum, written as hex only in the manifest.
		a.manSize += int64(len(`,"sha256":""`) + 2*sha256.Size)
	}
	if a.nEntries > 0 {
		a.manSize++ // the comma
	}
	a.nEntries++

	p := a.pack[:0]
	common := 0
	for common < len(e.Path) && common < len(a.prevPath) && e.Path[common] == a.prevPath[common] {
		common++
	}
	p = binary.AppendUvarint(p, uint64(common))
	p = appendPacked(p, e.Path[common:])
	a.prevPath = append(a.prevPath[:0], e.Path...)
	t := 0
	for i, pt := range packedTypes {
		if pt == e.Type {
			t = i
		}
	}
	flags := byte(t)
	if !e.Attrs.Empty() {
		flags |= packedAttrs
	}
	p = append(p, flags)
	p = appendPacked(p, e.Mode)
	p = binary.AppendVarint(p, e.MTime)
	switch e.Type {
	case TypeFile:
		p = binary.AppendUvarint(p, uint64(e.Size))
		p = append(p, a.sum...) // raw: half the bytes of hex, no encoding

	case TypeSymlink, TypeHardlink:
		p = appendPacked(p, e.Link)
	}
	if flags&packedAttrs != 0 {
		p = binary.AppendUvarint(p, uint64(len(e.Attrs.Xattrs)))
		for _, x := range e.Attrs.Xattrs {
			p = appendPacked(p, x.Name)
			p = appendPacked(p, x.Value)
		}
		p = appendPacked(p, e.Attrs.ACL)
		p = appendPacked(p, e.Attrs.DefaultACL)
	}
	a.pack = p
	if len(a.blocks) == 0 || cap(a.blocks[len(a.blocks)-1])-len(a.blocks[len(a.blocks)-1]) < len(p) {
		a.blocks = append(a.blocks, make([]byte, 0, max(manifestBlock, len(p))))
	}
	last := &a.blocks[len(a.blocks)-1]
	*last = append(*last, p...)
}

// packedAttrs flags a packed entry that has attributes (the low bits are
// its type).
const packedAttrs = 0x80

func appendPacked(p []byte, s string) []byte {
	p = binary.AppendUvarint(p, uint64(len(s)))
	return append(p, s...)
}

// unpack decodes the packed entries in order, calling fn for each. The
// entry's path, mode and SHA-256 are views of unpack's buffers and of the
// blocks, valid only until fn returns: fn encodes the entry and keeps
// nothing, and copying them cost three allocations an entry (a tenth of a
// backup's garbage on small files).
func (a *writer) unpack(fn func(e *Entry) error) error {
	var path []byte
	var sum [2 * sha256.Size]byte
	var e Entry
	bad := errors.New("manifest: corrupt packed entry")
	for _, blk := range a.blocks {
		for len(blk) > 0 {
			uv := func() uint64 {
				v, n := binary.Uvarint(blk)
				if n <= 0 {
					blk = nil
					return 0
				}
				blk = blk[n:]
				return v
			}
			take := func(n uint64) []byte {
				if n > uint64(len(blk)) {
					blk = nil
					return nil
				}
				b := blk[:n]
				blk = blk[n:]
				return b
			}
			str := func() string { return string(take(uv())) }
			view := func() string {
				b := take(uv())
				return unsafe.String(unsafe.SliceData(b), len(b))
			}
			common := uv()
			if common > uint64(len(path)) {
				return bad
			}
			suffix := take(uv())
			path = append(path[:common], suffix...)
			tb := take(1)
			if len(tb) != 1 || int(tb[0]&^packedAttrs) >= len(packedTypes) {
				return bad
			}
			e = Entry{Path: unsafe.String(unsafe.SliceData(path), len(path)), Type: packedTypes[tb[0]&^packedAttrs]}
			e.Mode = view()
			mt, n := binary.Varint(blk)
			if n <= 0 {
				return bad
			}
			blk = blk[n:]
			e.MTime = mt
			switch e.Type {
			case TypeFile:
				e.Size = int64(uv())
				raw := take(sha256.Size)
				if len(raw) != sha256.Size {
					return bad
				}
				hex.Encode(sum[:], raw)
				e.SHA256 = unsafe.String(&sum[0], len(sum))
			case TypeSymlink, TypeHardlink:
				e.Link = str()
			}
			if tb[0]&packedAttrs != 0 {
				nx := uv()
				for range nx {
					name := str()
					e.Attrs.Xattrs = append(e.Attrs.Xattrs, Xattr{name, str()})
				}
				e.Attrs.ACL = str()
				e.Attrs.DefaultACL = str()
			}
			if err := fn(&e); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeManifest writes exactly what json.Marshal(&Manifest{…, Entries: all})
// would, streaming the packed entries.
func (a *writer) writeManifest() error {
	if a.encErr != nil {
		return a.encErr
	}
	head, err := a.man.head()
	if err != nil {
		return err
	}
	tail := []byte("]}")
	size := int64(len(head)) + a.manSize + int64(len(tail))
	hdr := &tar.Header{
		Name: ManifestName, Typeflag: tar.TypeReg, Mode: 0o600, Size: size,
		ModTime: a.man.Created, Uname: "root", Gname: "root",
	}
	raw, err := a.header(hdr)
	if err != nil {
		return err
	}
	// A raw header (plain, or the zero time) is followed by the content
	// and padding written past tar.Writer, which then cannot check the
	// size: the count here does.
	var body io.Writer = a.tw
	if raw {
		body = a.out
	}
	var written int64
	write := func(b []byte) error {
		n, err := body.Write(b)
		written += int64(n)
		return err
	}
	if err := write(head); err != nil {
		return err
	}
	first := true
	if err := a.unpack(func(e *Entry) error {
		a.ebuf = a.ebuf[:0]
		if !first {
			a.ebuf = append(a.ebuf, ',')
		}
		first = false
		a.ebuf = appendEntry(a.ebuf, e)
		return write(a.ebuf)
	}); err != nil {
		return err
	}
	a.blocks = nil
	if err := write(tail); err != nil {
		return err
	}
	if written != size {
		return fmt.Errorf("manifest: %d bytes written, %d announced", written, size)
	}
	return a.padRaw(raw, size)
}

func (a *writer) userName(uid int) string {
	if n, ok := a.users[uid]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		n = u.Username
	}
	a.users[uid] = n
	return n
}

func (a *writer) groupName(gid int) string {
	if n, ok := a.grps[gid]; ok {
		return n
	}
	n := ""
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		n = g.Name
	}
	a.grps[gid] = n
	return n
}
