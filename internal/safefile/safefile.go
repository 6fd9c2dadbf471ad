// Package safefile opens the small files drym trusts (settings, keys, status
// files) without ever blocking on something that is not a regular file, and
// makes what drym writes survive a crash (SyncDir).
//
// open(2) of a FIFO for reading blocks until a writer appears, and a process
// blocked there ignores SIGTERM's cancellation (only SIGKILL ends it); a
// device or a directory in place of a settings file is damage too. So the
// file is opened with O_NONBLOCK (which makes open return at once for a FIFO
// and changes nothing for a regular file), then fstat'ed, and anything but a
// regular file is refused by name.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular means the path is a FIFO, socket, device or directory.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading, refusing anything but a regular file
// (symlinks to regular files are followed).
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (it is a %s)", ErrNotRegular, kind(fi.Mode()))}
	}
	return f, nil
}

// ReadFile reads a regular file of at most limit bytes; a larger one is an
// error rather than a truncated read.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

// SyncDir fsyncs a directory so that a file created, renamed or linked in
// it survives a crash: without it a power cut can leave a status file, an
// object or a host key (one the escrow already shipped) missing.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync directory %s: %w", dir, err)
	}
	return nil
}
