package restore

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/archive"
)

// A restore writes nothing where it belongs until the backup is proven.
// Extract unpacks the archive into a private staging directory inside the
// target (mode 0700, on the target's file system, so that moving an entry
// is a rename), verifying every member against the manifest on the way;
// setuid/setgid bits, file capabilities and ownership are held back there.
// Only when the caller has seen the object's integrity check (MDC), its
// SHA-256 and the manifest all pass does Commit give each staged entry its
// held-back attributes and rename it into place; otherwise Discard removes
// the staging directory (or Keep leaves it under a name that says
// UNVERIFIED). A bit flipped in the object, which CFB lets through until
// the MDC at the very end, therefore never reaches the target, and
// --overwrite never replaces a good file with an unverified one.

// Options says what Extract restores and how.
type Options struct {
	// Paths restricts the restore to these archive paths and what lies
	// below them; empty restores everything. See CleanPaths.
	Paths []string
	// Overwrite replaces existing files (never directories, which are
	// merged) and gives existing directories the archived attributes;
	// without it an existing file is refused and an existing directory
	// keeps its own.
	Overwrite bool
	// Owners restores owners and groups and the privileged attributes
	// (file capabilities, trusted.* and security.*): root only. Owners
	// are matched by name when the name exists on this host, else by
	// number, as GNU tar does.
	Owners bool
	// OnFile, when set, gets each staged file's size (progress).
	OnFile func(size int64)
}

// ExtractReport is what Extract found.
type ExtractReport struct {
	// Staged counts what the archive held for the paths asked and was
	// unpacked into the staging directory.
	Files, Dirs, Symlinks, Hardlinks int64
	Bytes                            int64
	// Refused lists members not staged: unsafe names, writes through
	// symlinks, links leaving the tree, devices, write errors.
	Refused Problems
	// Verified is true when the archive had a manifest; Mismatches are the
	// differences between it and what the archive held.
	Verified   bool
	Mismatches Problems
	// NotFound lists paths asked for that the archive did not hold.
	NotFound []string
	// Sparse counts files written sparse (holes left unallocated).
	Sparse int64
}

// entry kinds in the staging directory.
const (
	kindFile = iota + 1
	kindDir
	kindSymlink
	kindHardlink
	kindImplicitDir // a parent the archive did not list
)

// staged is one entry of the staging directory.
type staged struct {
	kind byte
	size int64
	held *held
}

// held is what a staged entry gets only once the backup is proven.
type held struct {
	uid, gid int    // -1: leave
	mode     uint32 // the full mode (setuid, setgid), for files
	setMode  bool
	caps     string // security.capability value
}

// dirMeta is an archived directory's attributes, applied when it is in
// place (its content moved in first, deepest first).
type dirMeta struct {
	mode     int64
	mtime    int64
	uid, gid int
	attrs    archive.Attrs
}

// Staged is an archive unpacked into a staging directory, waiting for the
// verdict on the backup. Exactly one of Commit, Discard or Keep must be
// called.
type Staged struct {
	Report ExtractReport

	dir     string // the target, as given
	name    string // the staging directory's name in it
	tfd     int    // the target directory
	sfd     int    // the staging directory
	opt     Options
	ids     *ids
	entries map[string]staged
	dirs    map[string]*dirMeta
	// attrs: attributes that could not be set while staging.
	attrs  Problems
	unpriv int64
	done   bool
	// created: the target did not exist before; a failed restore removes
	// it again (when empty), leaving nothing behind.
	created bool
}

// StagingPrefix starts the name of a staging directory inside the target.
const StagingPrefix = ".drym-restore-"

// Extract unpacks the tar stream r into a new staging directory inside dir
// (created if missing), verifying it against its manifest as it goes. It
// returns an error when dir cannot be used (then nothing was created) or
// the stream fails (then the Staged is returned too, for Discard or Keep);
// per-member trouble is in the report.
func Extract(ctx context.Context, r io.Reader, dir string, opt Options) (*Staged, error) {
	defer tightGC()()
	keep, err := matchPaths(opt.Paths)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Lstat(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", dir, err)
	}
	tfd, err := unix.Open(dir, dirFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", dir, err)
	}
	st := &Staged{
		dir: dir, tfd: tfd, sfd: -1, opt: opt, ids: newIDs(),
		entries: map[string]staged{}, dirs: map[string]*dirMeta{},
		created: errors.Is(statErr, fs.ErrNotExist),
	}
	if err := st.makeStaging(); err != nil {
		unix.Close(tfd)
		return nil, err
	}
	x := &extractor{
		st: st, keep: keep, c: newChecker(keep), buf: make([]byte, copyBufSize),
		asked: map[string]bool{}, pfd: -1, euid: os.Geteuid(), egid: os.Getegid(),
	}
	err = x.run(ctx, r)
	x.closeParent()
	st.Report.Verified = x.c.finish()
	st.Report.Mismatches = x.c.problems
	if keep != nil {
		for _, p := range opt.Paths {
			if c := ArchivedPath(p); !x.asked[c] {
				st.Report.NotFound = append(st.Report.NotFound, p)
			}
		}
	}
	return st, err
}

// makeStaging creates the staging directory: 0700, owned by us, and
// without the ACLs a default ACL of the target would hand down (they would
// open it to others, and be inherited by every staged file).
func (st *Staged) makeStaging() error {
	var b [8]byte
	rand.Read(b[:])
	st.name = StagingPrefix + hex.EncodeToString(b[:])
	if err := unix.Mkdirat(st.tfd, st.name, 0o700); err != nil {
		return fmt.Errorf("cannot create a staging directory in %s: %w", st.dir, err)
	}
	fd, err := unix.Openat(st.tfd, st.name, dirFlags, 0)
	if err != nil {
		return fmt.Errorf("cannot open the staging directory %s: %w", st.StagingPath(), err)
	}
	st.sfd = fd
	for _, a := range []string{archive.XattrACLAccess, archive.XattrACLDefault} {
		if err := unix.Fremovexattr(fd, a); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("cannot make the staging directory %s private: %w", st.StagingPath(), err)
		}
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("cannot make the staging directory %s private: %w", st.StagingPath(), err)
	}
	return nil
}

// StagingPath is where the staging directory is.
func (st *Staged) StagingPath() string { return path.Join(st.dir, st.name) }

type extractor struct {
	st    *Staged
	keep  func(string) bool
	c     *checker
	buf   []byte
	asked map[string]bool // paths asked for that matched a member
	// pfd is the staging directory pdir, open: members come in tree
	// order, so most share their parent with the one before.
	pfd        int
	pdir       string
	euid, egid int
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
			x.st.Report.Refused.add("%v", err)
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
		s := seenOf(hdr)
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
			x.st.Report.Refused.add("%s: %s not restored (only files, directories and links are)", trunc(name), kind(hdr.Typeflag))
			continue
		}
		if err != nil {
			var se streamError
			if errors.As(err, &se) {
				return se.err
			}
			x.st.Report.Refused.add("%s: %v", trunc(name), err)
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
	for _, p := range x.st.opt.Paths {
		c := ArchivedPath(p)
		if c == "" || c == name || strings.HasPrefix(name, c+"/") {
			x.asked[c] = true
		}
	}
}

// parent opens the staging directory that holds name (creating missing
// parents) and returns it with name's last component.
func (x *extractor) parent(name string) (int, string, error) {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if x.pfd >= 0 && x.pdir == dir {
		return x.pfd, base, nil
	}
	x.closeParent()
	fd, err := openDir(x.st.sfd, dir, true, func(p string) {
		if _, ok := x.st.entries[p]; !ok {
			x.st.entries[p] = staged{kind: kindImplicitDir}
		}
	})
	if err != nil {
		return -1, "", err
	}
	x.pfd, x.pdir = fd, dir
	return fd, base, nil
}

func (x *extractor) closeParent() {
	if x.pfd >= 0 {
		unix.Close(x.pfd)
		x.pfd = -1
	}
}

// clear makes room for a non-directory at base: the archive may list a
// path twice (the later member wins, as with tar), but a directory is
// never replaced.
func (x *extractor) clear(pfd int, name, base string) error {
	e, ok := x.st.entries[name]
	if !ok {
		return nil
	}
	if e.kind == kindDir || e.kind == kindImplicitDir {
		return errors.New("refused: the archive has a directory there")
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	delete(x.st.entries, name)
	return nil
}

// sparseMember reports a member in one of GNU tar's sparse formats.
func sparseMember(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	r := hdr.PAXRecords
	return r["GNU.sparse.major"] != "" || r["GNU.sparse.map"] != "" || r["GNU.sparse.numblocks"] != ""
}

func (x *extractor) file(name string, hdr *tar.Header, r io.Reader, h hash.Hash) (int64, string, error) {
	h.Reset()
	pfd, base, werr := x.parent(name)
	fd := -1
	if werr == nil {
		werr = x.clear(pfd, name, base)
	}
	if werr == nil {
		// 0600 until the content and attributes are in.
		fd, werr = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	}
	sparse := fd >= 0 && sparseMember(hdr)
	var n int64
	holes := false
	for {
		m, err := r.Read(x.buf)
		if m > 0 {
			h.Write(x.buf[:m])
			if fd >= 0 && werr == nil {
				var skipped bool
				skipped, werr = writeAt(fd, x.buf[:m], n, sparse)
				holes = holes || skipped
			}
			n += int64(m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			return n, "", streamError{fmt.Errorf("reading %s from the tar stream: %w", trunc(name), err)}
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if fd < 0 {
		return n, sum, werr
	}
	if werr == nil && holes {
		// Holes at the end are not written: the size is set here.
		werr = unix.Ftruncate(fd, n)
	}
	var hd *held
	if werr == nil {
		hd, werr = x.fileAttrs(fd, name, hdr)
	}
	if cerr := unix.Close(fd); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = unix.Unlinkat(pfd, base, 0)
		return n, sum, werr
	}
	x.st.entries[name] = staged{kind: kindFile, size: n, held: hd}
	x.st.Report.Files++
	x.st.Report.Bytes += n
	if holes {
		x.st.Report.Sparse++
	}
	if x.st.opt.OnFile != nil {
		x.st.opt.OnFile(n)
	}
	return n, sum, nil
}

// holeBlock: in a sparse member, runs of zeros this long and aligned are
// left as holes (the file system's usual block size).
const holeBlock = 4096

// writeAt writes b at off; for a sparse member, aligned all-zero blocks
// are skipped, leaving holes. It reports whether it skipped any.
func writeAt(fd int, b []byte, off int64, sparse bool) (bool, error) {
	if !sparse {
		return false, pwriteAll(fd, b, off)
	}
	skipped := false
	start := 0 // of the pending data run
	for i := 0; i < len(b); {
		// Blocks align to the file, not to the buffer.
		end := min(len(b), i+holeBlock-int((off+int64(i))%holeBlock))
		if end-i == holeBlock && allZero(b[i:end]) {
			if start < i {
				if err := pwriteAll(fd, b[start:i], off+int64(start)); err != nil {
					return skipped, err
				}
			}
			skipped = true
			start = end
		}
		i = end
	}
	if start < len(b) {
		return skipped, pwriteAll(fd, b[start:], off+int64(start))
	}
	return skipped, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
		off += int64(n)
	}
	return nil
}

// fileAttrs sets, on a staged file, what is safe before the backup is
// proven: extended attributes, the ACL, the permission bits without
// setuid/setgid, the mtime. Owner, setuid/setgid and capabilities are
// returned, held back.
func (x *extractor) fileAttrs(fd int, name string, hdr *tar.Header) (*held, error) {
	job := attrJob{
		name: name, attrs: archive.FromPAX(hdr.PAXRecords), root: x.st.opt.Owners, heldCaps: true,
		set: func(a string, v []byte) error { return unix.Fsetxattr(fd, a, v, 0) },
	}
	res := job.apply(x.st.ids)
	x.noteAttrs(name, &res)
	mode := modeFor(hdr.Mode, &res)
	if err := unix.Fchmod(fd, mode&^0o6000); err != nil {
		return nil, err
	}
	if err := futimens(fd, hdr.ModTime.Unix()); err != nil {
		return nil, err
	}
	if err := checkTime(fd, hdr.ModTime.Unix()); err != nil {
		x.st.attrs.add("%s: %v", trunc(name), err)
	}
	hd := &held{uid: -1, gid: -1, caps: res.caps}
	if x.st.opt.Owners {
		uid, gid := x.st.ids.owner(hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid)
		if uid != x.euid || gid != x.egid {
			hd.uid, hd.gid = uid, gid
		}
	}
	if mode&0o6000 != 0 || hd.uid >= 0 || hd.caps != "" {
		// chown clears setuid/setgid, so the mode is set again after it.
		hd.mode, hd.setMode = mode, true
		return hd, nil
	}
	return nil, nil
}

func (x *extractor) noteAttrs(name string, r *attrResult) {
	for _, p := range r.problems {
		x.st.attrs.add("%s: %s", trunc(name), p)
	}
	x.st.unpriv += r.unpriv
}

func (x *extractor) dir(name string, hdr *tar.Header) error {
	pfd, base, err := x.parent(name)
	if err != nil {
		return err
	}
	if e, ok := x.st.entries[name]; ok && e.kind != kindDir && e.kind != kindImplicitDir {
		// A directory after a file of the same name: the later wins.
		if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		delete(x.st.entries, name)
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	uid, gid := x.st.ids.owner(hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid)
	x.st.entries[name] = staged{kind: kindDir}
	x.st.dirs[name] = &dirMeta{mode: hdr.Mode & 0o7777, mtime: hdr.ModTime.Unix(), uid: uid, gid: gid, attrs: archive.FromPAX(hdr.PAXRecords)}
	x.st.Report.Dirs++
	return nil
}

func (x *extractor) symlink(name string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return fmt.Errorf("refused: symlink without a target")
	}
	pfd, base, err := x.parent(name)
	if err != nil {
		return err
	}
	if err := x.clear(pfd, name, base); err != nil {
		return err
	}
	// The target is stored as it was, absolute or not: a symlink is only a
	// name, and nothing this restore writes ever follows one.
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return err
	}
	// Only trusted.* and security.* can be on a symlink; no capabilities.
	job := attrJob{
		name: name, attrs: archive.FromPAX(hdr.PAXRecords), root: x.st.opt.Owners,
		set: func(a string, v []byte) error { return unix.Lsetxattr(procPath(pfd, base), a, v, 0) },
	}
	res := job.apply(x.st.ids)
	x.noteAttrs(name, &res)
	if err := lutimesAt(pfd, base, hdr.ModTime.Unix()); err != nil {
		return err
	}
	if err := checkTimeAt(pfd, base, hdr.ModTime.Unix()); err != nil {
		x.st.attrs.add("%s: %v", trunc(name), err)
	}
	e := staged{kind: kindSymlink}
	if x.st.opt.Owners {
		uid, gid := x.st.ids.owner(hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid)
		if uid != x.euid || gid != x.egid {
			e.held = &held{uid: uid, gid: gid}
		}
	}
	x.st.entries[name] = e
	x.st.Report.Symlinks++
	return nil
}

// hardlink links name to a regular file this restore staged. Anything else
// (a path outside the tree, a symlink, a directory, a file of the target)
// is refused: a hard link is a second name for an inode, and only inodes
// this restore created are ours to name.
func (x *extractor) hardlink(name string, hdr *tar.Header) (string, error) {
	target, err := CleanName(hdr.Linkname)
	if err != nil || target == "" {
		return hdr.Linkname, fmt.Errorf("refused: hard link to %q leaves the restore directory", trunc(hdr.Linkname))
	}
	if e, ok := x.st.entries[target]; !ok || (e.kind != kindFile && e.kind != kindHardlink) {
		if x.keep != nil && !x.keep(target) {
			return target, fmt.Errorf("not restored: hard link to %s, which is outside the paths restored (restore it too)", trunc(target))
		}
		return target, fmt.Errorf("refused: hard link to %s, which is not a file restored by this run", trunc(target))
	}
	tdir, tbase := path.Split(target)
	tfd, err := openDir(x.st.sfd, strings.TrimSuffix(tdir, "/"), false, nil)
	if err != nil {
		return target, err
	}
	defer unix.Close(tfd)
	pfd, base, err := x.parent(name)
	if err != nil {
		return target, err
	}
	if err := x.clear(pfd, name, base); err != nil {
		return target, err
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return target, err
	}
	x.st.entries[name] = staged{kind: kindHardlink, size: x.st.entries[target].size}
	x.st.Report.Hardlinks++
	return target, nil
}
