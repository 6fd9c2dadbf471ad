//go:build cgo

package backup

import (
	"bytes"
	"math/rand/v2"
	"testing"

	czstd "github.com/DataDog/zstd"
	"github.com/klauspost/compress/zstd"
)

// A segment in which many files end is compressed at the small-file
// level, any other at the default one: the stream is, byte for byte, the
// frames libzstd makes of each segment at the level its files call for,
// and it decompresses to the input.
func TestSegmentLevelFollowsFiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3*segmentSize+1000)
	for i := range data {
		data[i] = "etc/hosts server root index 0123456789\n"[r.IntN(39)]
	}
	for _, tc := range []struct {
		fileSize int
		levels   []int // of each segment
	}{
		// 256 files end in each full segment, 2 in the last (the one
		// cut at the boundary and the rest).
		{4 << 10, []int{smallSegmentLevel, smallSegmentLevel, smallSegmentLevel, segmentLevel}},
		{64 << 10, []int{segmentLevel, segmentLevel, segmentLevel, segmentLevel}},
	} {
		var out bytes.Buffer
		z, err := newParallelZstd(&out)
		if err != nil {
			t.Fatal(err)
		}
		for p := data; len(p) > 0; {
			n := min(len(p), tc.fileSize)
			if _, err := z.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			z.fileDone()
			p = p[n:]
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		var want []byte
		for i, level := range tc.levels {
			frame, err := czstd.CompressLevel(nil, data[i*segmentSize:min((i+1)*segmentSize, len(data))], level)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, frame...)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("files of %d bytes: %d bytes of frames, not the %d of levels %v", tc.fileSize, out.Len(), len(want), tc.levels)
		}
		dec, _ := zstd.NewReader(nil)
		if got, err := dec.DecodeAll(out.Bytes(), nil); err != nil || !bytes.Equal(got, data) {
			t.Errorf("files of %d bytes: decode: %v (%d of %d bytes)", tc.fileSize, err, len(got), len(data))
		}
		dec.Close()
	}
}
