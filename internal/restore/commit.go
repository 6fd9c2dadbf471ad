package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/archive"
)

// CommitReport is what Commit put in place.
type CommitReport struct {
	Files, Dirs, Symlinks, Hardlinks int64
	Bytes                            int64
	// Refused lists staged entries not moved into place: existing files
	// (without Overwrite), directories in the way, errors.
	Refused Problems
	// Attrs lists attributes that could not be restored (an ACL or
	// extended attribute the target's file system refuses, an owner, a
	// time it cannot store): the data is in place, but not exactly.
	Attrs Problems
	// Unprivileged counts privileged attributes (file capabilities,
	// trusted.*, security.*) not restored because the restore did not run
	// as root; owners are then not restored either.
	Unprivileged int64
	// Copied counts entries copied rather than renamed, because their
	// place is on another file system than the target (a mount point
	// inside it).
	Copied int64
	// Interrupted is set when ctx ended the move: what was moved is in
	// place, complete; the rest was not restored.
	Interrupted bool
}

// Commit moves every staged entry into place, giving it the attributes
// held back until now, then removes the staging directory. Call it only
// once the backup is proven (integrity check, SHA-256, manifest). The move
// stops at the next entry when ctx ends (SIGTERM): each path is then either
// what it was or the restored entry, whole, never half of one, and
// directories moved so far still get their attributes.
func (st *Staged) Commit(ctx context.Context) CommitReport {
	c := &committer{st: st, ctx: ctx, copies: map[[2]uint64]string{}}
	c.rep.Attrs = st.attrs
	c.rep.Unprivileged = st.unpriv
	c.dir(st.sfd, st.tfd, "")
	st.created = false // it holds the restore now
	if err := st.Discard(); err != nil {
		c.rep.Refused.add("the staging directory %s could not be removed: %v", st.StagingPath(), err)
	}
	return c.rep
}

// Discard removes the staging directory and everything in it.
func (st *Staged) Discard() error {
	if st.done {
		return nil
	}
	st.done = true
	unix.Close(st.sfd)
	err := removeAllAt(st.tfd, st.name)
	unix.Close(st.tfd)
	if st.created && err == nil {
		_ = unix.Rmdir(st.dir) // only if still empty
	}
	return err
}

// Keep leaves the staged, unverified files for inspection in the target
// under the name UNVERIFIED-<label>-<random>, private (mode 0700), and
// returns its path.
func (st *Staged) Keep(label string) (string, error) {
	if st.done {
		return "", errors.New("already committed or discarded")
	}
	st.done = true
	unix.Close(st.sfd)
	defer unix.Close(st.tfd)
	var b [4]byte
	rand.Read(b[:])
	name := "UNVERIFIED-" + label + "-" + hex.EncodeToString(b[:])
	if err := unix.Renameat2(st.tfd, st.name, st.tfd, name, unix.RENAME_NOREPLACE); err != nil {
		return st.StagingPath(), err
	}
	return path.Join(st.dir, name), nil
}

type committer struct {
	st  *Staged
	ctx context.Context
	rep CommitReport
	// copies maps a staged inode copied across file systems to the final
	// path of its first name, so that its other names link to the copy.
	copies map[[2]uint64]string
}

func (c *committer) cancelled() bool {
	if !c.rep.Interrupted && c.ctx.Err() != nil {
		c.rep.Interrupted = true
	}
	return c.rep.Interrupted
}

// dir moves the entries of the staging directory rel (open as sfd) into
// the target directory rel (open as ffd).
func (c *committer) dir(sfd, ffd int, rel string) {
	names, err := readNames(sfd)
	if err != nil {
		c.rep.Refused.add("%s: cannot list the staged directory: %v", trunc(rel), err)
	}
	sort.Strings(names) // a stable order for messages
	for _, name := range names {
		if c.cancelled() {
			return
		}
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		e, ok := c.st.entries[crel]
		if !ok {
			continue
		}
		if e.kind == kindDir || e.kind == kindImplicitDir {
			c.moveDir(sfd, ffd, name, crel, e)
		} else {
			c.moveLeaf(sfd, ffd, name, crel, e)
		}
	}
}

// moveDir places one directory: made anew when the target has none (and
// given the archived attributes once its content is in), merged into an
// existing one (whose attributes are replaced only with Overwrite).
func (c *committer) moveDir(sfd, ffd int, name, crel string, e staged) {
	meta := c.st.dirs[crel]
	var st unix.Stat_t
	err := unix.Fstatat(ffd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	ours := false
	switch {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		c.rep.Refused.add("%s: %v", trunc(crel), err)
		return
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
	case !c.st.opt.Overwrite:
		c.rep.Refused.add("%s: refused: exists and is not a directory (use --overwrite to replace it)", trunc(crel))
		return
	default:
		if err := unix.Unlinkat(ffd, name, 0); err != nil {
			c.rep.Refused.add("%s: %v", trunc(crel), err)
			return
		}
		err = unix.ENOENT
	}
	if errors.Is(err, unix.ENOENT) {
		mode := uint32(0o700) // until its content is in
		if meta == nil {
			mode = 0o755 // a parent the archive did not list, as mkdir -p makes it
		}
		if err := unix.Mkdirat(ffd, name, mode); err != nil {
			c.rep.Refused.add("%s: %v", trunc(crel), err)
			return
		}
		ours = true
	}
	cfd, err := unix.Openat(ffd, name, dirFlags, 0)
	if err != nil {
		c.rep.Refused.add("%s: %v", trunc(crel), (&parentError{crel, err}).Error())
		return
	}
	defer unix.Close(cfd)
	csfd, err := unix.Openat(sfd, name, dirFlags, 0)
	if err != nil {
		c.rep.Refused.add("%s: %v", trunc(crel), err)
		return
	}
	c.dir(csfd, cfd, crel)
	unix.Close(csfd)
	if meta != nil {
		c.rep.Dirs++
		if ours || c.st.opt.Overwrite {
			c.dirAttrs(cfd, crel, meta)
		}
	}
}

// dirAttrs gives a directory in place its archived owner, extended
// attributes, ACLs, mode and mtime, in that order (chown clears setgid; an
// ACL sets the mode's group bits, the mode then the ACL's mask). A directory
// made by this restore may have inherited ACLs from a default ACL above it;
// they are replaced by the archived ones, or removed.
func (c *committer) dirAttrs(fd int, crel string, m *dirMeta) {
	fail := func(what string, err error) { c.rep.Attrs.add("%s: %s: %v", trunc(crel), what, err) }
	if c.st.opt.Owners {
		if err := unix.Fchown(fd, m.uid, m.gid); err != nil {
			fail("owner not restored", err)
		}
	}
	job := attrJob{
		name: crel, attrs: m.attrs, root: c.st.opt.Owners,
		set:    func(a string, v []byte) error { return unix.Fsetxattr(fd, a, v, 0) },
		remove: func(a string) error { return unix.Fremovexattr(fd, a) },
	}
	res := job.apply(c.st.ids)
	for _, p := range res.problems {
		c.rep.Attrs.add("%s: %s", trunc(crel), p)
	}
	c.rep.Unprivileged += res.unpriv
	if err := unix.Fchmod(fd, modeFor(m.mode, &res)); err != nil {
		fail("mode not restored", err)
	}
	if err := futimens(fd, m.mtime); err != nil {
		fail("mtime not restored", err)
	} else if err := checkTime(fd, m.mtime); err != nil {
		c.rep.Attrs.add("%s: %v", trunc(crel), err)
	}
}

// moveLeaf gives a staged file or symlink its held-back attributes and
// renames it into place: without Overwrite only where nothing is
// (RENAME_NOREPLACE, so a file appearing meanwhile is not replaced
// either); with it over an existing file or symlink (atomically: the path
// always holds the old entry or the new one), never over a directory.
func (c *committer) moveLeaf(sfd, ffd int, name, crel string, e staged) {
	if e.held != nil {
		c.applyHeld(sfd, name, crel, e)
	}
	var st unix.Stat_t
	err := unix.Fstatat(ffd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		c.rep.Refused.add("%s: refused: exists as a directory", trunc(crel))
		return
	case err == nil && !c.st.opt.Overwrite:
		c.rep.Refused.add("%s: refused: exists (use --overwrite to replace it)", trunc(crel))
		return
	case err != nil && !errors.Is(err, unix.ENOENT):
		c.rep.Refused.add("%s: %v", trunc(crel), err)
		return
	}
	if c.st.opt.Overwrite {
		err = unix.Renameat(sfd, name, ffd, name)
	} else {
		err = renameNoReplace(sfd, name, ffd, name)
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.EXDEV):
		if err := c.copyLeaf(sfd, ffd, name, crel, e); err != nil {
			c.rep.Refused.add("%s: %v", trunc(crel), err)
			return
		}
		c.rep.Copied++
	case errors.Is(err, unix.EEXIST):
		c.rep.Refused.add("%s: refused: exists (use --overwrite to replace it)", trunc(crel))
		return
	case errors.Is(err, unix.EISDIR):
		c.rep.Refused.add("%s: refused: exists as a directory", trunc(crel))
		return
	default:
		c.rep.Refused.add("%s: %v", trunc(crel), err)
		return
	}
	switch e.kind {
	case kindFile:
		c.rep.Files++
		c.rep.Bytes += e.size
	case kindHardlink:
		c.rep.Hardlinks++
	case kindSymlink:
		c.rep.Symlinks++
	}
}

// renameNoReplace renames without replacing; where the file system has no
// RENAME_NOREPLACE, a hard link to the new name (which fails on an
// existing one) and an unlink of the old do the same.
func renameNoReplace(olddir int, oldname string, newdir int, newname string) error {
	err := unix.Renameat2(olddir, oldname, newdir, newname, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	if err := unix.Linkat(olddir, oldname, newdir, newname, 0); err != nil {
		return err
	}
	return unix.Unlinkat(olddir, oldname, 0)
}

// applyHeld gives a staged entry (in the private staging directory) its
// owner, then the full mode with setuid/setgid, then its file capability:
// chown clears both of the others.
func (c *committer) applyHeld(sfd int, name, crel string, e staged) {
	h := e.held
	fail := func(what string, err error) { c.rep.Attrs.add("%s: %s: %v", trunc(crel), what, err) }
	if h.uid >= 0 || h.gid >= 0 {
		if err := unix.Fchownat(sfd, name, h.uid, h.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			fail("owner not restored", err)
		}
	}
	if e.kind != kindFile {
		return
	}
	if h.setMode {
		if err := unix.Fchmodat(sfd, name, h.mode, 0); err != nil {
			fail("mode not restored", err)
		}
	}
	if h.caps != "" {
		fd, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Fsetxattr(fd, xattrCaps, []byte(h.caps), 0)
			unix.Close(fd)
		}
		if err != nil {
			fail("file capability not restored", xattrErr(err))
		}
	}
}

// copyLeaf puts a staged file or symlink in place on another file system:
// a copy under a temporary name in the target directory, with the staged
// entry's owner, extended attributes, ACLs, mode and times, then renamed
// over name (or beside nothing, without Overwrite). Names of one staged
// inode become hard links to the first copy.
func (c *committer) copyLeaf(sfd, ffd int, name, crel string, e staged) error {
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	var b [6]byte
	rand.Read(b[:])
	tmp := ".drym-copy-" + hex.EncodeToString(b[:])
	key := [2]uint64{st.Dev, st.Ino}
	if first, ok := c.copies[key]; ok && st.Mode&unix.S_IFMT == unix.S_IFREG {
		dir, base := path.Split(first)
		dfd, err := openDir(c.st.tfd, path.Clean("./"+dir), false, nil)
		if err != nil {
			return err
		}
		err = unix.Linkat(dfd, base, ffd, tmp, 0)
		unix.Close(dfd)
		if err != nil {
			return err
		}
	} else if err := copyEntry(sfd, name, ffd, tmp, &st); err != nil {
		_ = unix.Unlinkat(ffd, tmp, 0)
		return err
	}
	var err error
	if c.st.opt.Overwrite {
		err = unix.Renameat(ffd, tmp, ffd, name)
	} else {
		err = renameNoReplace(ffd, tmp, ffd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(ffd, tmp, 0)
		if errors.Is(err, unix.EEXIST) {
			return errors.New("refused: exists (use --overwrite to replace it)")
		}
		return err
	}
	if st.Nlink > 1 {
		c.copies[key] = crel
	}
	return nil
}

// copyEntry copies the regular file or symlink name in sfd to tmp in ffd,
// with its attributes (data first, holes kept; then owner, extended
// attributes and ACLs, mode, capability, times).
func copyEntry(sfd int, name string, ffd int, tmp string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target := make([]byte, st.Size+1)
		n, err := unix.Readlinkat(sfd, name, target)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(target[:n]), ffd, tmp); err != nil {
			return err
		}
		if err := unix.Fchownat(ffd, tmp, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.EPERM) {
			return err
		}
		if err := copyXattrs(procPath(sfd, name), procPath(ffd, tmp), -1, -1); err != nil {
			return err
		}
		return lutimesAt(ffd, tmp, st.Mtim.Sec)
	}
	in, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(in)
	out, err := unix.Openat(ffd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(out)
	// A file created here inherits the directory's default ACL, which the
	// staged file may not have: it would open the copy to others.
	if err := unix.Fremovexattr(out, archive.XattrACLAccess); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
		return err
	}
	if err := copyData(in, out, st.Size); err != nil {
		return err
	}
	if err := unix.Fchown(out, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, unix.EPERM) {
		return err
	}
	var caps []byte
	if err := copyXattrs("", "", in, out, func(n string, v []byte) bool {
		if n == xattrCaps {
			caps = append([]byte(nil), v...)
			return false
		}
		return true
	}); err != nil {
		return err
	}
	if err := unix.Fchmod(out, st.Mode&0o7777); err != nil {
		return err
	}
	if caps != nil {
		if err := unix.Fsetxattr(out, xattrCaps, caps, 0); err != nil {
			return err
		}
	}
	return futimens(out, st.Mtim.Sec)
}

// copyData copies size bytes, leaving the source's holes as holes.
func copyData(in, out int, size int64) error {
	buf := make([]byte, copyBufSize)
	for off := int64(0); off < size; {
		d, err := unix.Seek(in, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			d = off // no data map: copy everything
		}
		h, err := unix.Seek(in, d, unix.SEEK_HOLE)
		if err != nil {
			h = size
		}
		h = min(h, size)
		for d < h {
			n, err := unix.Pread(in, buf[:min(int64(len(buf)), h-d)], d)
			if err != nil {
				return err
			}
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
			if err := pwriteAll(out, buf[:n], d); err != nil {
				return err
			}
			d += int64(n)
		}
		off = h
	}
	return unix.Ftruncate(out, size)
}

// copyXattrs copies every extended attribute (ACLs included) from one
// entry to another: by descriptor when given (inFd ≥ 0), else by path
// without following symlinks. keep, when set, filters them.
func copyXattrs(inPath, outPath string, inFd, outFd int, keep ...func(string, []byte) bool) error {
	list := func(b []byte) (int, error) {
		if inFd >= 0 {
			return unix.Flistxattr(inFd, b)
		}
		return unix.Llistxattr(inPath, b)
	}
	buf := make([]byte, 64<<10)
	n, err := list(buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return err
	}
	val := make([]byte, 64<<10)
	start := 0
	for i := 0; i < n; i++ {
		if buf[i] != 0 {
			continue
		}
		attr := string(buf[start:i])
		start = i + 1
		var m int
		if inFd >= 0 {
			m, err = unix.Fgetxattr(inFd, attr, val)
		} else {
			m, err = unix.Lgetxattr(inPath, attr, val)
		}
		if err != nil {
			return fmt.Errorf("extended attribute %s: %w", attr, err)
		}
		if len(keep) > 0 && !keep[0](attr, val[:m]) {
			continue
		}
		if outFd >= 0 {
			err = unix.Fsetxattr(outFd, attr, val[:m], 0)
		} else {
			err = unix.Lsetxattr(outPath, attr, val[:m], 0)
		}
		if err != nil {
			return fmt.Errorf("extended attribute %s: %w", attr, xattrErr(err))
		}
	}
	return nil
}
