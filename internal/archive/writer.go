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
	"syscall"
	"time"
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

// walk archives the tree at root under the name of src.
func (a *writer) walk(src, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if cerr := a.ctx.Err(); cerr != nil {
			return cerr
		}
		name := src + strings.TrimPrefix(path, root)
		if err != nil {
			if path == root {
				return fmt.Errorf("%w %s: %v", ErrSource, src, shortErr(err))
			}
			a.stats.warn(name, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if path != root && a.excluded(name) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err := a.add(path, name); err != nil {
			if errors.Is(err, errSkip) {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			return err
		}
		return nil
	})
}

var errSkip = errors.New("skip")

// add archives one path. Errors that concern only this path are warnings
// (errSkip); errors writing the stream end the run.
func (a *writer) add(path, name string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		a.stats.warn(name, err)
		return errSkip
	}
	member := strings.TrimPrefix(filepath.ToSlash(name), "/")
	if member == "" {
		member = "." // backing up "/" itself: its entry is the root dir
	}
	hdr := &tar.Header{
		Name: member,
		Mode: int64(fi.Mode().Perm()),
		// Whole seconds, rounded down (also before 1970): tar's ustar
		// fields hold seconds, and a PAX mtime record any int64.
		ModTime: time.Unix(fi.ModTime().Unix(), 0),
	}
	if fi.Mode()&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		hdr.Uname, hdr.Gname = a.userName(hdr.Uid), a.groupName(hdr.Gid)
	}
	entry := Entry{Path: member, Mode: fmt.Sprintf("%04o", hdr.Mode), MTime: hdr.ModTime.Unix()}

	switch {
	case fi.Mode().IsDir():
		if member == "." {
			return nil // "/" itself carries nothing to restore
		}
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		entry.Type = TypeDir
		a.attrs(-1, path, name, hdr, &entry)
		if _, err := a.header(hdr); err != nil {
			return err
		}
		a.stats.Dirs++
	case fi.Mode()&fs.ModeSymlink != 0:
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
	case fi.Mode().IsRegular():
		if st != nil && st.Nlink > 1 {
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
			err := a.addFile(path, name, hdr, entry)
			if err == nil {
				a.links[key] = member
			}
			return err
		}
		return a.addFile(path, name, hdr, entry)
	default:
		// Sockets, FIFOs and device nodes are not data: a file-level
		// restore cannot bring them back, so they are not archived, but
		// counted and listed, so that nobody is surprised by their
		// absence.
		a.stats.skip(name, nodeKind(fi.Mode()))
		return nil
	}
	a.addEntry(&entry)
	return nil
}

func nodeKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}

// header writes a member's header. tar.Writer takes a zero ModTime —
// exactly 0001-01-01T00:00:00Z, a time a file can have — for "no time" and
// writes 1970 instead: that one second goes through writeRaw.
func (a *writer) header(hdr *tar.Header) (raw bool, err error) {
	if hdr.ModTime.IsZero() {
		return true, a.writeRaw(hdr, hdr.Name, hdr.Size, nil)
	}
	return false, a.tw.WriteHeader(hdr)
}

// addFile streams one regular file into the tar and its hash.
func (a *writer) addFile(path, name string, hdr *tar.Header, entry Entry) (err error) {
	f, err := openNoATime(path)
	if err != nil {
		a.stats.warn(name, err)
		return errSkip
	}
	defer f.Close()
	// Size from the open file, not the earlier lstat: the file may have
	// been replaced in between.
	fi, err := f.Stat()
	if err != nil {
		a.stats.warn(name, err)
		return errSkip
	}
	if !fi.Mode().IsRegular() {
		a.stats.warn(name, errors.New("replaced by a non-regular file during the backup"))
		return errSkip
	}
	size := fi.Size()
	a.attrs(int(f.Fd()), path, name, hdr, &entry)
	a.h.Reset()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 < size {
		// Fewer blocks than bytes: maybe holes (or compression, or
		// inline data). Only the file system's data map can tell.
		if regions, ok := dataMap(int(f.Fd()), size); ok {
			if err := a.addSparse(f, name, hdr, &entry, size, regions); err != nil {
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
		defer func() {
			if err == nil {
				_, err = a.out.Write(make([]byte, blockPad(size)))
			}
		}()
	}
	// The tar header promises size bytes: a file that shrinks while read
	// is padded with zeros (and hashed as padded, so the manifest matches
	// the archive), one that grows is cut at size. Both are warnings.
	var n int64
	var rerr error
	for n < size {
		want := min(int64(len(a.buf)), size-n)
		m, err := io.ReadFull(f, a.buf[:want])
		if m > 0 {
			a.h.Write(a.buf[:m])
			if _, werr := body.Write(a.buf[:m]); werr != nil {
				return werr
			}
			n += int64(m)
		}
		if err != nil {
			rerr = err
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
		if rerr == io.ErrUnexpectedEOF || rerr == io.EOF {
			rerr = errShrank
		}
		a.stats.warn(name, rerr)
	} else if m, _ := f.Read(a.buf[:1]); m > 0 {
		a.stats.warn(name, grew(size))
	}
	return a.fileDone(&entry, size)
}

var errShrank = errors.New("file shrank while it was read (archived zero-padded)")

func grew(size int64) error {
	return errors.New("file grew while it was read (archived its first " + strconv.FormatInt(size, 10) + " bytes)")
}

// fileDone records a regular file whose content went through a.h.
func (a *writer) fileDone(entry *Entry, size int64) error {
	a.sum = a.h.Sum(a.sum[:0])
	entry.Type = TypeFile
	entry.Size = size
	entry.SHA256 = hex.EncodeToString(a.sum)
	a.addEntry(entry)
	a.stats.Files++
	a.stats.BytesIn += size
	if a.opt.OnFile != nil {
		a.opt.OnFile(size)
	}
	return nil
}

// openNoATime opens a file without updating its access time where allowed
// (O_NOATIME needs ownership or CAP_FOWNER): a backup should not make every
// file look recently used.
func openNoATime(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOATIME, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = os.Open(path)
	}
	return f, err
}

// manifestBlock is the size of the blocks the manifest entries are kept in.
const manifestBlock = 256 << 10

// Entry types in the packed form.
var packedTypes = [...]string{TypeFile, TypeDir, TypeSymlink, TypeHardlink}

// addEntry records one manifest entry, packed: the path front-coded against
// the previous one, the SHA-256 as 32 raw bytes, numbers as varints — about
// 70 bytes a file instead of ≈ 300 for an Entry and its strings — in
// 256 KiB blocks (no slice doubling). The manifest is a backup's only
// memory that grows with the tree; packing it keeps peak RSS nearly flat
// from 1 to 4 GiB (and ~40 k files). The entry's JSON is encoded here once
// for its length (the tar header needs the total before the content) and
// again when the manifest is written.
func (a *writer) addEntry(e *Entry) {
	a.ebuf = appendEntry(a.ebuf[:0], e)
	a.manSize += int64(len(a.ebuf))
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
		sum, err := hex.DecodeString(e.SHA256)
		if err != nil || len(sum) != sha256.Size {
			a.encErr = fmt.Errorf("manifest: bad sha256 %q", e.SHA256)
			return
		}
		p = append(p, sum...)
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

// unpack decodes the packed entries in order, calling fn for each.
func (a *writer) unpack(fn func(e *Entry) error) error {
	var path []byte
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
			e = Entry{Path: string(path), Type: packedTypes[tb[0]&^packedAttrs]}
			e.Mode = str()
			mt, n := binary.Varint(blk)
			if n <= 0 {
				return bad
			}
			blk = blk[n:]
			e.MTime = mt
			switch e.Type {
			case TypeFile:
				e.Size = int64(uv())
				e.SHA256 = hex.EncodeToString(take(sha256.Size))
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
	if _, err := a.header(hdr); err != nil {
		return err
	}
	if _, err := a.tw.Write(head); err != nil {
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
		_, err := a.tw.Write(a.ebuf)
		return err
	}); err != nil {
		return err
	}
	a.blocks = nil
	_, err = a.tw.Write(tail)
	return err
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
