//go:build cgo

package backup

import (
	"fmt"

	czstd "github.com/DataDog/zstd"
)

// Segments are compressed by the reference zstd library (libzstd, built
// into the binary by github.com/DataDog/zstd): klauspost's pure-Go encoder
// at its fastest level was the largest stage of a backup of many small
// files, the one shape where drym was slower than `tar | zstd -1 | gpg`.
// Compressing the same 1 MiB segments on both cores (CPU seconds, output
// size):
//
//	                       168k small files     server tree (1 GiB)
//	klauspost fastest      2.90 s  181.3 MB     2.12 s  709.1 MB
//	libzstd level 1        1.96 s  181.3 MB     1.46 s  708.9 MB
//	libzstd level 2        2.20 s  175.2 MB     1.69 s  705.9 MB
//	libzstd level 3        2.81 s  165.4 MB     1.95 s  701.2 MB
//
// A segment of small files (parallelZstd's smallFiles) is compressed at
// level 2: on text it stores 3.4 % less than level 1, which pays for the
// manifest's per-file SHA-256 (it does not compress), so a drym object of
// small files is as small as the stock pipeline's. Any other segment is
// compressed at level 1: on large files level 2 gains a few tenths of a
// percent for 10–15 % more CPU, and a backup is CPU-bound on both cores.
// A one-shot compression of a segment sets the frame's content size, so
// its window is at most the segment: a restore needs no more than 1 MiB
// of history.
//
// The frames carry no content checksum (the one-shot API does not write
// one): every byte is already covered by the OpenPGP MDC over the whole
// stream, the signed SHA-256 of the object and the manifest's SHA-256 of
// every file.
//
// A build without cgo compresses with klauspost instead (segment_purego.go).
const (
	segmentLevel      = 1
	smallSegmentLevel = 2
)

// segmentEncoder compresses whole segments, one per worker at a time: a
// libzstd context is not safe for concurrent use, so each compression
// borrows one.
type segmentEncoder struct {
	ctxs chan czstd.Ctx
}

func newSegmentEncoder(workers int) (*segmentEncoder, error) {
	e := &segmentEncoder{ctxs: make(chan czstd.Ctx, workers)}
	for range workers {
		e.ctxs <- czstd.NewCtx()
	}
	return e, nil
}

// encode appends the zstd frame of src to dst[:0] (reusing dst when it is
// large enough for the worst case); small: src is a segment of small files.
func (e *segmentEncoder) encode(dst, src []byte, small bool) ([]byte, error) {
	c := <-e.ctxs
	defer func() { e.ctxs <- c }()
	level := segmentLevel
	if small {
		level = smallSegmentLevel
	}
	out, err := c.CompressLevel(dst[:cap(dst)], src, level)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return out, nil
}

// close: the contexts are freed with the encoder (their finalizers).
func (e *segmentEncoder) close() {}
