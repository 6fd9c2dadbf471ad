package backup

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/drym-backup/drym/internal/testutil"
)

// Segments compressed in parallel must come back, in order, through both
// klauspost's decoder (test-restore) and the zstd CLI (the escrow's manual
// restore steps), for sizes around the segment boundaries.
func TestParallelZstdRoundTrip(t *testing.T) {
	zstdCLI := testutil.Need(t, "zstd")
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3*segmentSize+5)
	for i := range data {
		if i%3 == 0 {
			data[i] = byte(r.IntN(256)) // partly compressible
		} else {
			data[i] = byte(i / 7)
		}
	}
	for _, size := range []int{1, 100, segmentSize - 1, segmentSize, segmentSize + 1, 3*segmentSize + 5} {
		for _, ws := range []int{size, 4096, 1 << 20} {
			var out bytes.Buffer
			z, err := newParallelZstd(&out)
			if err != nil {
				t.Fatal(err)
			}
			for p := data[:size]; len(p) > 0; {
				n := min(len(p), ws)
				if _, err := z.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			dec, _ := zstd.NewReader(nil)
			got, err := dec.DecodeAll(out.Bytes(), nil)
			if err != nil || !bytes.Equal(got, data[:size]) {
				t.Errorf("size %d, writes of %d: klauspost decode: %v (%d bytes)", size, ws, err, len(got))
			}
			cmd := exec.Command(zstdCLI, "-d", "-q", "-c")
			cmd.Stdin = bytes.NewReader(out.Bytes())
			cli, err := cmd.Output()
			if err != nil || !bytes.Equal(cli, data[:size]) {
				t.Errorf("size %d, writes of %d: zstd -d: %v (%d bytes)", size, ws, err, len(cli))
			}
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(b), nil
}

// A failing destination stops the writer with its error instead of
// blocking or losing it.
func TestParallelZstdWriteError(t *testing.T) {
	z, err := newParallelZstd(&failWriter{n: 1})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var werr error
	for range 64 {
		if _, werr = z.Write(buf); werr != nil {
			break
		}
	}
	cerr := z.Close()
	if werr == nil && cerr == nil {
		t.Fatal("no error from a failing destination")
	}
	for _, e := range []error{werr, cerr} {
		if e != nil && e.Error() != "disk full" {
			t.Errorf("error %v, want disk full", e)
		}
	}
}

// The same input compresses to the same frames whatever the timing of the
// workers, for segments that do not compress, compress moderately and
// compress well.
func TestParallelZstdDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var data []byte
	for range segmentSize {
		data = append(data, byte(r.IntN(256))) // does not compress
	}
	for i := range segmentSize {
		data = append(data, "abcdefgh"[r.IntN(8)]+byte(i%2)) // moderately
	}
	for i := range segmentSize {
		data = append(data, byte(i/4096)) // well
	}
	var first []byte
	for run := range 4 {
		var out bytes.Buffer
		z, err := newParallelZstd(&out)
		if err != nil {
			t.Fatal(err)
		}
		z.Write(data)
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		dec, _ := zstd.NewReader(nil)
		if got, err := dec.DecodeAll(out.Bytes(), nil); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("run %d: decode: %v", run, err)
		}
		if run == 0 {
			first = out.Bytes()
		} else if !bytes.Equal(out.Bytes(), first) {
			t.Fatalf("run %d compressed differently", run)
		}
	}
}
