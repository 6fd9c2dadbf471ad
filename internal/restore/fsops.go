package restore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Everything restore writes goes through directory descriptors opened one
// component at a time with O_NOFOLLOW: no path is ever resolved through a
// symlink, in the staging directory or in the target, whatever the archive
// holds or whoever else writes in the target meanwhile.

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// errSymlinkParent and errNotDirParent say why a path could not be reached.
type parentError struct {
	part string
	err  error
}

func (e *parentError) Error() string {
	switch {
	case errors.Is(e.err, unix.ELOOP):
		return fmt.Sprintf("refused: %s is a symlink, and nothing is written through symlinks", trunc(e.part))
	case errors.Is(e.err, unix.ENOTDIR):
		return fmt.Sprintf("refused: %s is not a directory", trunc(e.part))
	}
	return fmt.Sprintf("%s: %v", trunc(e.part), e.err)
}

// openDir opens the directory rel below the directory fd base, one
// component at a time without following symlinks. With create, missing
// components are made (mode 0700) and reported to made.
func openDir(base int, rel string, create bool, made func(string)) (int, error) {
	fd, err := unix.Dup(base)
	if err != nil {
		return -1, err
	}
	if rel == "" || rel == "." {
		return fd, nil
	}
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		next, err := unix.Openat(fd, part, dirFlags, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, part, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				if err == nil && made != nil {
					made(strings.Join(parts[:i+1], "/"))
				}
				next, err = unix.Openat(fd, part, dirFlags, 0)
			}
		}
		if errors.Is(err, unix.ENOTDIR) {
			// O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR: tell a
			// symlink from a file, for the message.
			var st unix.Stat_t
			if unix.Fstatat(fd, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, &parentError{strings.Join(parts[:i+1], "/"), err}
		}
		fd = next
	}
	return fd, nil
}

// procPath names the entry name in the directory open as dirfd, for the
// calls that have no *at form (lsetxattr): /proc/self/fd/N is the directory
// itself, not a path anybody can redirect.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// futimens sets the access and modification times of an open file to mtime
// seconds: any int64, where time.Time's nanoseconds would overflow outside
// 1678–2262.
func futimens(fd int, mtime int64) error {
	ts := [2]unix.Timespec{{Sec: mtime}, {Sec: mtime}}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// lutimesAt sets the times of name in dirfd itself (a symlink is not
// followed).
func lutimesAt(dirfd int, name string, mtime int64) error {
	ts := []unix.Timespec{{Sec: mtime}, {Sec: mtime}}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// checkTime reports a file system that could not store mtime (ext4 holds
// 1901–2446, older file systems 1901–2038): the time is then clamped, and
// a restore must not change data silently. Times from 1970 to 2038 fit
// everywhere, so only the others cost an fstat.
func checkTime(fd int, mtime int64) error {
	if mtime >= 0 && mtime < 1<<31 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mtim.Sec != mtime {
		return fmt.Errorf("mtime %d (%s) cannot be stored on this file system, which keeps %d", mtime, timeText(mtime), st.Mtim.Sec)
	}
	return nil
}

func checkTimeAt(dirfd int, name string, mtime int64) error {
	if mtime >= 0 && mtime < 1<<31 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mtim.Sec != mtime {
		return fmt.Errorf("mtime %d (%s) cannot be stored on this file system, which keeps %d", mtime, timeText(mtime), st.Mtim.Sec)
	}
	return nil
}

// removeAllAt removes name in dirfd and everything below it, without
// following symlinks.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, dirFlags, 0)
	if err != nil {
		return err
	}
	names, err := readNames(fd)
	var first error
	if err != nil {
		first = err
	}
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil && first == nil {
			first = err
		}
	}
	unix.Close(fd)
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && first == nil && !errors.Is(err, unix.ENOENT) {
		first = err
	}
	return first
}

// readNames lists a directory open as fd (without . and ..), leaving fd's
// offset at the end.
func readNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
