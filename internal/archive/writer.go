package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	Now     time.Time
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
}

// maxWarningsListed bounds WarningList.
const maxWarningsListed = 20

func (s *Stats) warn(path string, err error) {
	s.Warnings++
	if len(s.WarningList) < maxWarningsListed {
		s.WarningList = append(s.WarningList, fmt.Sprintf("%s: %v", path, shortErr(err)))
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

// copyBufSize is the read size for file content: large reads keep syscalls
// off the profile.
const copyBufSize = 1 << 20

type writer struct {
	ctx   context.Context
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
}

// Write archives the sources as a tar stream to w, ending with the manifest.
// It does not close w. Files that vanish or cannot be read during the walk
// are skipped and counted as warnings; a missing source root is an error.
func Write(ctx context.Context, w io.Writer, opt Options) (Stats, error) {
	a := &writer{
		ctx: ctx, tw: tar.NewWriter(w), opt: opt,
		buf: make([]byte, copyBufSize), h: sha256.New(), sum: make([]byte, 0, sha256.Size),
		links: map[[2]uint64]string{}, users: map[int]string{}, grps: map[int]string{},
	}
	a.man = Manifest{Version: ManifestVersion, Host: opt.Host, Created: opt.Now.UTC().Truncate(time.Second), Sources: opt.Sources}
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
		Name:    member,
		Mode:    int64(fi.Mode().Perm()),
		ModTime: fi.ModTime().Truncate(time.Second),
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
	entry := Entry{Path: member, Mode: fmt.Sprintf("%04o", hdr.Mode), MTime: hdr.ModTime.UTC()}

	switch {
	case fi.Mode().IsDir():
		if member == "." {
			return nil // "/" itself carries nothing to restore
		}
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		entry.Type = TypeDir
		if err := a.tw.WriteHeader(hdr); err != nil {
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
		if err := a.tw.WriteHeader(hdr); err != nil {
			return err
		}
		a.stats.Symlinks++
	case fi.Mode().IsRegular():
		if st != nil && st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := a.links[key]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				entry.Type, entry.Link = TypeHardlink, first
				if err := a.tw.WriteHeader(hdr); err != nil {
					return err
				}
				a.stats.Hardlinks++
				a.man.Entries = append(a.man.Entries, entry)
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
		// Sockets, FIFOs and device nodes are not data; skipping them is
		// what a file-level backup should do, and quietly.
		return nil
	}
	a.man.Entries = append(a.man.Entries, entry)
	return nil
}

// addFile streams one regular file into the tar and its hash.
func (a *writer) addFile(path, name string, hdr *tar.Header, entry Entry) error {
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
	hdr.Typeflag = tar.TypeReg
	hdr.Size = size
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	a.h.Reset()
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
			if _, werr := a.tw.Write(a.buf[:m]); werr != nil {
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
			if _, werr := a.tw.Write(a.buf[:m]); werr != nil {
				return werr
			}
			n += m
		}
		if rerr == io.ErrUnexpectedEOF || rerr == io.EOF {
			rerr = errors.New("file shrank while it was read (archived zero-padded)")
		}
		a.stats.warn(name, rerr)
	} else if m, _ := f.Read(a.buf[:1]); m > 0 {
		a.stats.warn(name, errors.New("file grew while it was read (archived its first "+strconv.FormatInt(size, 10)+" bytes)"))
	}
	a.sum = a.h.Sum(a.sum[:0])
	entry.Type = TypeFile
	entry.Size = size
	entry.SHA256 = hex.EncodeToString(a.sum)
	a.man.Entries = append(a.man.Entries, entry)
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

func (a *writer) writeManifest() error {
	data, err := json.Marshal(&a.man)
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Name: ManifestName, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(data)),
		ModTime: a.man.Created, Uname: "root", Gname: "root",
	}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = a.tw.Write(data)
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
