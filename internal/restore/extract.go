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
	"io/fs"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/archive"
)

// Options says what Extract restores and how.
type Options struct {
	// Paths restricts the restore to these archive paths and what lies
	// below them; empty restores everything.
	Paths []string
	// Overwrite replaces existing files (never directories); without it an
	// existing file is refused.
	Overwrite bool
	// Owners restores owners and groups (needs root). By name when the name
	// exists on this host, else by number, as GNU tar does.
	Owners bool
	// OnFile, when set, gets each restored file's size (progress).
	OnFile func(size int64)
}

// ExtractReport is what Extract did.
type ExtractReport struct {
	Files, Dirs, Symlinks, Hardlinks int64
	Bytes                            int64
	// Refused lists members not restored: unsafe names, writes through
	// symlinks, links leaving the tree, devices, existing files, errors.
	Refused Problems
	// Verified is true when the archive had a manifest; Mismatches are the
	// differences between it and what the archive held.
	Verified   bool
	Mismatches Problems
	// NotFound lists paths asked for that the archive did not hold.
	NotFound []string
}

type dirTimes struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
	uid   int
	gid   int
}

type extractor struct {
	root  *os.Root
	opt   Options
	keep  func(string) bool
	rep   ExtractReport
	c     *checker
	buf   []byte
	dirs  map[string]bool // verified real directories (never symlinks)
	files map[string]bool // regular files written by this run
	later []dirTimes      // directory modes and times, applied at the end
	uids  map[string]int
	gids  map[string]int
	asked map[string]bool // paths asked for that matched a member
}

// Extract restores the tar stream r into dir (created if missing). Every
// write goes through an os.Root opened on dir, and on top of that no write
// goes through a symlink at all, even one pointing inside dir: a member
// under a path that is a symlink is refused. Members are verified against
// the manifest as they are written (the manifest is the last member, so
// verdicts come at the end). It returns an error only when the stream
// fails or dir cannot be used; per-member trouble is in the report.
func Extract(ctx context.Context, r io.Reader, dir string, opt Options) (ExtractReport, error) {
	defer tightGC()()
	keep, err := matchPaths(opt.Paths)
	if err != nil {
		return ExtractReport{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ExtractReport{}, fmt.Errorf("cannot create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return ExtractReport{}, fmt.Errorf("cannot open %s: %w", dir, err)
	}
	defer root.Close()
	x := &extractor{
		root: root, opt: opt, keep: keep, c: newChecker(keep), buf: make([]byte, copyBufSize),
		dirs: map[string]bool{".": true}, files: map[string]bool{},
		uids: map[string]int{}, gids: map[string]int{}, asked: map[string]bool{},
	}
	err = x.run(ctx, r)
	// Directory modes and times last, deepest first, so writing their
	// content does not bump the times or trip over a read-only mode.
	x.finishDirs()
	x.rep.Verified = x.c.finish()
	x.rep.Mismatches = x.c.problems
	if keep != nil {
		for _, p := range opt.Paths {
			c := path.Clean(strings.TrimLeft(p, "/"))
			if !x.asked[c] {
				x.rep.NotFound = append(x.rep.NotFound, p)
			}
		}
	}
	return x.rep, err
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	h := sha256.New()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the tar stream: %w", err)
		}
		name, err := CleanName(hdr.Name)
		if err != nil {
			x.rep.Refused.add("%v", err)
			continue
		}
		if name == "" || name == ".drym" && hdr.Typeflag == tar.TypeDir {
			continue
		}
		if name == archive.ManifestName {
			if err := x.c.manifest(tr); err != nil {
				return err
			}
			continue
		}
		if x.keep != nil && !x.keep(name) {
			continue
		}
		x.markAsked(name)
		s := seen{typ: typeOf(hdr), mode: hdr.Mode & 0o7777, mtime: hdr.ModTime.Unix(), link: hdr.Linkname}
		switch s.typ {
		case archive.TypeFile:
			s.size, s.sha256, err = x.file(name, hdr, tr, h)
		case archive.TypeDir:
			err = x.dir(name, hdr)
		case archive.TypeSymlink:
			err = x.symlink(name, hdr)
		case archive.TypeHardlink:
			s.link, err = x.hardlink(name, hdr)
		default:
			x.rep.Refused.add("%s: %s not restored (only files, directories and links are)", trunc(name), kind(hdr.Typeflag))
			continue
		}
		if err != nil {
			var se streamError
			if errors.As(err, &se) {
				return se.err
			}
			x.rep.Refused.add("%s: %v", trunc(name), err)
		}
		x.c.add(name, s)
	}
}

// streamError is a failure reading the archive itself (not a refusal of one
// member): it ends the restore.
type streamError struct{ err error }

func (e streamError) Error() string { return e.err.Error() }

func kind(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("member of type %q", string(t))
}

func (x *extractor) markAsked(name string) {
	for _, p := range x.opt.Paths {
		c := path.Clean(strings.TrimLeft(p, "/"))
		if c == name || strings.HasPrefix(name, c+"/") {
			x.asked[c] = true
		}
	}
}

// parents makes sure every parent of name is a real directory inside the
// root, creating missing ones, and refuses a path that passes through a
// symlink or a non-directory.
func (x *extractor) parents(name string) error {
	dir := path.Dir(name)
	if x.dirs[dir] {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if x.dirs[p] {
			continue
		}
		fi, err := x.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A parent the archive did not list (a path-limited
			// restore, or a stock tar without directory members).
			if err := x.root.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("refused: %s is a symlink, and nothing is written through symlinks", trunc(p))
		case !fi.IsDir():
			return fmt.Errorf("refused: %s is not a directory", trunc(p))
		}
		x.dirs[p] = true
	}
	return nil
}

// clear prepares name for a new non-directory member: refused when it
// exists, unless Overwrite, which removes the old file (never a directory)
// so that a symlink or another hard link in its place is replaced, not
// written through.
func (x *extractor) clear(name string) error {
	if err := x.parents(name); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("refused: exists as a directory")
	}
	if !x.opt.Overwrite {
		return fmt.Errorf("refused: exists (use --overwrite to replace it)")
	}
	if err := x.root.Remove(name); err != nil {
		return err
	}
	delete(x.files, name)
	return nil
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader, h hash.Hash) (int64, string, error) {
	h.Reset()
	werr := x.clear(name)
	var f *os.File
	if werr == nil {
		// 0600 until the content is in: nobody reads a half-written
		// file, and a setuid bit is never set on partial content.
		f, werr = x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	}
	var n int64
	for {
		m, err := r.Read(x.buf)
		if m > 0 {
			h.Write(x.buf[:m])
			if f != nil && werr == nil {
				if _, err := f.Write(x.buf[:m]); err != nil {
					werr = err
				}
			}
			n += int64(m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if f != nil {
				f.Close()
				_ = x.root.Remove(name)
			}
			return n, "", streamError{fmt.Errorf("reading %s from the tar stream: %w", trunc(name), err)}
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if f == nil {
		return n, sum, werr
	}
	if werr == nil {
		werr = x.attrs(f, hdr)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return n, sum, werr
	}
	x.files[name] = true
	x.rep.Files++
	x.rep.Bytes += n
	if x.opt.OnFile != nil {
		x.opt.OnFile(n)
	}
	return n, sum, nil
}

// attrs sets owner, mode and times on an open file, through its descriptor.
func (x *extractor) attrs(f *os.File, hdr *tar.Header) error {
	if x.opt.Owners {
		// Before chmod: chown clears setuid and setgid.
		if err := f.Chown(x.owner(hdr)); err != nil {
			return err
		}
	}
	if err := f.Chmod(fileMode(hdr.Mode)); err != nil {
		return err
	}
	t := unix.NsecToTimeval(hdr.ModTime.UnixNano())
	return unix.Futimes(int(f.Fd()), []unix.Timeval{t, t})
}

// fileMode converts tar mode bits to an os.FileMode.
func fileMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	if err := x.parents(name); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Owner-only while it fills; the archived mode comes at the end.
		if err := x.root.Mkdir(name, 0o700); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.IsDir():
		// Restoring into an existing tree merges directories.
	case !x.opt.Overwrite:
		return fmt.Errorf("refused: exists and is not a directory (use --overwrite to replace it)")
	default:
		if err := x.root.Remove(name); err != nil {
			return err
		}
		delete(x.files, name)
		if err := x.root.Mkdir(name, 0o700); err != nil {
			return err
		}
	}
	x.dirs[name] = true
	uid, gid := x.owner(hdr)
	x.later = append(x.later, dirTimes{name: name, mode: fileMode(hdr.Mode), mtime: hdr.ModTime, uid: uid, gid: gid})
	x.rep.Dirs++
	return nil
}

func (x *extractor) symlink(name string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return fmt.Errorf("refused: symlink without a target")
	}
	if err := x.clear(name); err != nil {
		return err
	}
	// The target is stored as it was, absolute or not: a symlink is only a
	// name, and nothing this restore writes ever follows one.
	if err := x.root.Symlink(hdr.Linkname, name); err != nil {
		return err
	}
	x.forget(name)
	if x.opt.Owners {
		uid, gid := x.owner(hdr)
		if err := x.root.Lchown(name, uid, gid); err != nil {
			return err
		}
	}
	if err := x.lutimes(name, hdr.ModTime); err != nil {
		return err
	}
	x.rep.Symlinks++
	return nil
}

// forget drops cached directory verdicts at or below name: what was a
// directory there is gone.
func (x *extractor) forget(name string) {
	for d := range x.dirs {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(x.dirs, d)
		}
	}
}

// hardlink links name to a regular file this restore wrote. Anything else
// (a path outside the tree, a symlink, a directory, a file that was already
// there) is refused: a hard link is a second name for an inode, and only
// inodes this restore created are ours to name.
func (x *extractor) hardlink(name string, hdr *tar.Header) (string, error) {
	target, err := CleanName(hdr.Linkname)
	if err != nil || target == "" {
		return hdr.Linkname, fmt.Errorf("refused: hard link to %q leaves the restore directory", trunc(hdr.Linkname))
	}
	if !x.files[target] {
		if x.keep != nil && !x.keep(target) {
			return target, fmt.Errorf("not restored: hard link to %s, which is outside the paths restored (restore it too)", trunc(target))
		}
		return target, fmt.Errorf("refused: hard link to %s, which is not a file restored by this run", trunc(target))
	}
	if err := x.clear(name); err != nil {
		return target, err
	}
	if err := x.root.Link(target, name); err != nil {
		return target, err
	}
	x.files[name] = true
	x.rep.Hardlinks++
	return target, nil
}

// lutimes sets the times of name itself, never of what a symlink points to.
func (x *extractor) lutimes(name string, mtime time.Time) error {
	parent, err := x.root.OpenFile(path.Dir(name), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer parent.Close()
	ts := unix.NsecToTimespec(mtime.UnixNano())
	return unix.UtimesNanoAt(int(parent.Fd()), path.Base(name), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

func (x *extractor) finishDirs() {
	for _, d := range slices.Backward(x.later) {
		f, err := x.root.OpenFile(d.name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			x.rep.Refused.add("%s: cannot set mode and times: %v", trunc(d.name), err)
			continue
		}
		err = func() error {
			if x.opt.Owners {
				if err := f.Chown(d.uid, d.gid); err != nil {
					return err
				}
			}
			if err := f.Chmod(d.mode); err != nil {
				return err
			}
			t := unix.NsecToTimeval(d.mtime.UnixNano())
			return unix.Futimes(int(f.Fd()), []unix.Timeval{t, t})
		}()
		f.Close()
		if err != nil {
			x.rep.Refused.add("%s: cannot set mode and times: %v", trunc(d.name), err)
		}
	}
}

// owner resolves the member's owner: by name when this host knows it (ids
// differ between hosts; names are what the admin meant), else by number.
func (x *extractor) owner(hdr *tar.Header) (int, int) {
	uid, gid := hdr.Uid, hdr.Gid
	if hdr.Uname != "" {
		id, ok := x.uids[hdr.Uname]
		if !ok {
			id = -1
			if u, err := user.Lookup(hdr.Uname); err == nil {
				id, _ = strconv.Atoi(u.Uid)
			}
			x.uids[hdr.Uname] = id
		}
		if id >= 0 {
			uid = id
		}
	}
	if hdr.Gname != "" {
		id, ok := x.gids[hdr.Gname]
		if !ok {
			id = -1
			if g, err := user.LookupGroup(hdr.Gname); err == nil {
				id, _ = strconv.Atoi(g.Gid)
			}
			x.gids[hdr.Gname] = id
		}
		if id >= 0 {
			gid = id
		}
	}
	return uid, gid
}
