package store

import "os"

// Write-behind for Dir.Put: as the object file grows, the kernel is asked
// to start writing back what has been written (every wbChunk bytes), and
// ranges older than wbWindow are waited for, so the dirty pages of one
// object stay bounded (≈ wbWindow + wbChunk) and the final fsync has
// little left to do instead of the whole object. Durability is unchanged:
// Put still fsyncs the .partial file before it links it, and fsyncs the
// directory after; write-behind only moves the disk writes earlier.
//
// sync_file_range is Linux-only and some file systems refuse it: the first
// error turns write-behind off for that file, silently (the fsync at the
// end does all the work then, as before).
const (
	wbChunk  = 8 << 20  // start writeback every 8 MiB
	wbWindow = 16 << 20 // wait for what was started more than 16 MiB ago
)

// writeBehind is an io.Writer over the .partial file that starts and
// waits for writeback as the file grows.
type writeBehind struct {
	f             *os.File
	chunk, window int64
	off           int64 // bytes written
	started       int64 // writeback started for [0, started)
	waited        int64 // writeback waited for on [0, waited)
	disabled      bool  // write-behind is off (unsupported here)
	starts, waits int   // calls made (for tests)
}

func newWriteBehind(f *os.File, chunk, window int64) *writeBehind {
	return &writeBehind{f: f, chunk: chunk, window: window, disabled: chunk <= 0}
}

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if err == nil && !w.disabled && w.off-w.started >= w.chunk {
		w.advance()
	}
	return n, err
}

// advance starts writeback of what was written since the last start and
// waits for the ranges more than a window behind.
func (w *writeBehind) advance() {
	if err := startWriteback(w.f, w.started, w.off-w.started); err != nil {
		w.disabled = true
		return
	}
	w.starts++
	w.started = w.off
	if end := w.started - w.window; end > w.waited {
		if err := waitWriteback(w.f, w.waited, end-w.waited); err != nil {
			w.disabled = true
			return
		}
		w.waits++
		w.waited = end
	}
}
