package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback starts writeback of the dirty pages of [off, off+n) and
// returns without waiting for it.
func startWriteback(f *os.File, off, n int64) error {
	return unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// waitWriteback writes back [off, off+n) and waits until it is written.
// It makes no promise about metadata or the disk's cache: that is the final
// fsync's job.
func waitWriteback(f *os.File, off, n int64) error {
	return unix.SyncFileRange(int(f.Fd()), off, n,
		unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
}
