package archive

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The walk goes through directory descriptors: each directory is opened
// once, its entries read with getdents in 64 KiB batches, and every entry
// is opened (openat) or, rarely, stat'ed relative to it. A regular file then
// costs about five system calls (openat, fstat, flistxattr, read, close);
// filepath.WalkDir with os.Lstat and os.Open cost twice that, resolved every
// path from the root, and registered each file with the netpoller. On a
// tree of 100,000 small files the system calls were most of the archiving
// stage. The order is WalkDir's: entries sorted by name, depth first, so
// the archive's member order does not change.

// direntBufSize is the getdents batch: a directory of ~2,000 entries in
// one call.
const direntBufSize = 64 << 10

// dirLevel holds the sorted entries of one directory being walked, kept
// per depth so that its buffers are reused for every directory at that
// depth.
type dirLevel struct {
	names []byte // the entries' names, each NUL-terminated (for openat)
	ents  []dirent
}

type dirent struct {
	off, n int32 // the name is names[off : off+n], names[off+n] is NUL
	typ    uint8 // DT_* from getdents
}

func (l *dirLevel) name(e dirent) []byte { return l.names[e.off : e.off+e.n] }

// read reads and sorts the entries of the directory open as fd.
func (l *dirLevel) read(fd int, buf []byte) error {
	l.names, l.ents = l.names[:0], l.ents[:0]
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8,
		// name NUL-terminated.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				return fmt.Errorf("getdents: bad record length %d", reclen)
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
				l.ents = append(l.ents, dirent{off: int32(len(l.names)), n: int32(len(name)), typ: b[18]})
				l.names = append(l.names, name...)
				l.names = append(l.names, 0)
			}
			b = b[reclen:]
		}
	}
	slices.SortFunc(l.ents, func(x, y dirent) int { return bytes.Compare(l.name(x), l.name(y)) })
	return nil
}

// walk archives the tree at root (a source, its symlink resolved) under
// the name src.
func (a *writer) walk(src, root string) error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return fmt.Errorf("%w %s: %v", ErrSource, src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		// A source that is one file.
		if err := a.add(root, src); err != nil && !errors.Is(err, errSkip) {
			return err
		}
		return nil
	}
	fd, err := openDir(unix.AT_FDCWD, root)
	if err != nil {
		return fmt.Errorf("%w %s: %v", ErrSource, src, err)
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &a.st); err != nil {
		return fmt.Errorf("%w %s: %v", ErrSource, src, err)
	}
	if member := memberName(src); member != "." { // "/" itself carries nothing to restore
		hdr, entry := a.newHeader(&a.st, member)
		if err := a.addDir(fd, root, src, hdr, entry); err != nil {
			return err
		}
	}
	return a.walkDir(fd, root, src, 0)
}

// walkDir archives the entries of the directory open as fd, whose path is
// path and whose name in the archive is name, and the trees below them.
func (a *writer) walkDir(fd int, path, name string, depth int) error {
	for len(a.levels) <= depth {
		a.levels = append(a.levels, &dirLevel{})
	}
	lv := a.levels[depth]
	if a.dbuf == nil {
		a.dbuf = make([]byte, direntBufSize)
	}
	if err := lv.read(fd, a.dbuf); err != nil {
		// As filepath.WalkDir: the directory is archived, a warning
		// says why its entries are not.
		a.stats.warn(name, err)
		return nil
	}
	var q aheadQueue
	defer a.drain(&q)
	for i, e := range lv.ents {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		base := lv.name(e)
		child := joinName(name, unsafe.String(unsafe.SliceData(base), len(base)))
		if len(a.opt.Exclude) > 0 && a.excluded(child) {
			continue
		}
		cname := &lv.names[e.off] // NUL-terminated
		typ := e.typ
		if typ == unix.DT_UNKNOWN {
			// Some file systems do not say: ask.
			var st unix.Stat_t
			if err := unix.Fstatat(fd, string(base), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				a.stats.warn(child, err)
				continue
			}
			typ = dtype(st.Mode)
		}
		var err error
		switch typ {
		case unix.DT_REG:
			a.fill(&q, fd, lv, name, i)
			if f, b := a.take(&q, i); f != nil {
				err = a.addAhead(f, b, fd, cname, path, child)
			} else {
				err = a.addRegAt(fd, cname, path, child)
			}
		case unix.DT_DIR:
			a.release(&q)
			err = a.addDirAt(fd, cname, path, child, depth)
		default:
			err = a.add(joinName(path, string(base)), child)
		}
		if err != nil && !errors.Is(err, errSkip) {
			return err
		}
	}
	return nil
}

// addRegAt archives the regular file named cname in the directory dirfd
// (whose path is dir).
func (a *writer) addRegAt(dirfd int, cname *byte, dir, name string) error {
	fd, err := openat(dirfd, cname, regFlags)
	if err == unix.EPERM {
		fd, err = openat(dirfd, cname, regFlags&^unix.O_NOATIME)
	}
	if err != nil {
		if err == unix.ELOOP || err == unix.ENXIO {
			// Replaced by a symlink (or a socket) since the directory
			// was read: archive what it is now.
			return a.add(joinName(dir, baseOf(name)), name)
		}
		a.stats.warn(name, err)
		return errSkip
	}
	defer unix.Close(fd)
	// The name stands for the path in messages: joining the path would
	// cost an allocation a file, for errors that are rare.
	return a.addOpen(fd, name, name, memberName(name))
}

// addDirAt archives the directory named cname in the directory dirfd
// (whose path is dir), and the tree below it.
func (a *writer) addDirAt(dirfd int, cname *byte, dir, name string, depth int) error {
	path := joinName(dir, baseOf(name))
	fd, err := openat(dirfd, cname, dirFlags)
	if err == unix.EPERM {
		fd, err = openat(dirfd, cname, dirFlags&^unix.O_NOATIME)
	}
	if err != nil {
		if err == unix.ENOTDIR || err == unix.ELOOP {
			// No longer a directory: archive what it is now.
			return a.add(path, name)
		}
		// Archived from its lstat, as filepath.WalkDir did, with a
		// warning that its entries are not (unreadable, or gone: then
		// add warns instead).
		if aerr := a.add(path, name); aerr != nil {
			return aerr
		}
		a.stats.warn(name, err)
		return nil
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &a.st); err != nil {
		a.stats.warn(name, err)
		return errSkip
	}
	hdr, entry := a.newHeader(&a.st, memberName(name))
	if err := a.addDir(fd, path, name, hdr, entry); err != nil {
		return err
	}
	return a.walkDir(fd, path, name, depth+1)
}

const (
	regFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOATIME
	dirFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_DIRECTORY | unix.O_NOATIME
)

// openDir opens a directory (name relative to dirfd) for the walk.
func openDir(dirfd int, name string) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	fd, err := openat(dirfd, p, dirFlags)
	if err == unix.EPERM {
		fd, err = openat(dirfd, p, dirFlags&^unix.O_NOATIME)
	}
	return fd, err
}

// openat is unix.Openat with the name already NUL-terminated, so that
// opening an entry does not copy its name. EINTR is retried.
func openat(dirfd int, name *byte, flags int) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(flags), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// joinName is dir/base; dir is "/" for the root itself.
func joinName(dir, base string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + base
	}
	return dir + "/" + base
}

func baseOf(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

// dtype is the DT_* type of a stat mode.
func dtype(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFLNK:
		return unix.DT_LNK
	}
	return unix.DT_UNKNOWN // anything else goes through add
}
