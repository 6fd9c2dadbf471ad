//go:build !cgo

package backup

import "github.com/klauspost/compress/zstd"

// Without cgo (CGO_ENABLED=0) there is no libzstd (segment_cgo.go), and
// segments are compressed by klauspost's pure-Go encoder: level 1
// ("fastest", like `zstd -1`), with a frame checksum and a 1 MiB window.
// The window bounds memory on both sides (the encoder keeps two windows of
// history, a restore needs one), and it must not be paired with
// WithLowerEncoderMem: that keeps history at window + one block, so every
// 128 KiB block moves the whole window down (with the default 8 MiB window
// that memmove was 28 % of the stage's CPU). The output is the same kind
// of zstd stream; it costs more CPU and stores more than libzstd's.
type segmentEncoder struct {
	enc *zstd.Encoder
}

func newSegmentEncoder(workers int) (*segmentEncoder, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(1<<20),
		zstd.WithEncoderConcurrency(workers))
	if err != nil {
		return nil, err
	}
	return &segmentEncoder{enc: enc}, nil
}

// encode appends the zstd frame of src to dst[:0], at one level whatever
// the segment holds.
func (e *segmentEncoder) encode(dst, src []byte, _ bool) ([]byte, error) {
	return e.enc.EncodeAll(src, dst[:0]), nil
}

func (e *segmentEncoder) close() { e.enc.Close() }
