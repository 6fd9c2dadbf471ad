package restore

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// tarOf writes hdrs with archive/tar (content "x" repeated to each
// regular file's size); end adds the end-of-archive blocks.
func tarOf(t testing.TB, end bool, hdrs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte{byte('a' + len(h.Name)%26)}, int(h.Size))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if end {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	} else if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var mt = time.Unix(1700000000, 0)

func reg(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mt, Format: tar.FormatUSTAR}
}

// scanLike reads data with archive/tar and with the scanner side by side
// and fails on the first difference in what verify reads: each header's
// type, name, link, mode, mtime, size and PAX records, each regular file's
// content (read, hashed, or skipped, by turns), and the errors. It returns
// the number of members and whether the scanner handed over to archive/tar.
func scanLike(t testing.TB, data []byte, bufSize int, r func(io.Reader) io.Reader) (int, bool) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	s := newTarScanner(r(bytes.NewReader(data)), bufSize)
	h := sha256.New()
	for i := 0; i < 10000; i++ {
		want, werr := tr.Next()
		got, gerr := s.Next()
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Fatalf("member %d: error %v, archive/tar says %v", i, gerr, werr)
		}
		if werr != nil {
			return i, s.tr != nil
		}
		if got.Typeflag != want.Typeflag || got.Name != want.Name || got.Linkname != want.Linkname ||
			got.Mode != want.Mode || got.ModTime.Unix() != want.ModTime.Unix() || got.Size != want.Size ||
			!maps.Equal(got.PAXRecords, want.PAXRecords) {
			t.Fatalf("member %d: %+v, archive/tar says %+v", i, got, want)
		}
		// At most 1 MiB of each: a sparse member's holes read as
		// zeros, and a fuzzed one may claim gigabytes of them.
		wc, werr := io.ReadAll(io.LimitReader(tr, maxCompared))
		lean := s.tr == nil
		switch {
		case i%3 == 1 && lean:
			// Hashing reads the whole content, which in the scanner's own
			// members is bytes of the stream: bounded by the input.
			var sum [32]byte
			n, gerr := s.hash(h, &sum)
			if n != int64(len(wc)) || fmt.Sprint(gerr) != fmt.Sprint(werr) || gerr == nil && sum != sha256.Sum256(wc) {
				t.Fatalf("member %d: hashed %d bytes (%v), archive/tar read %d (%v)", i, n, gerr, len(wc), werr)
			}
		case i%3 != 2:
			gc, gerr := io.ReadAll(io.LimitReader(s, maxCompared))
			if !bytes.Equal(gc, wc) || fmt.Sprint(gerr) != fmt.Sprint(werr) {
				t.Fatalf("member %d: content %q (%v), archive/tar says %q (%v)", i, gc, gerr, wc, werr)
			}
		}
	}
	t.Fatal("no end")
	return 0, false
}

const maxCompared = 1 << 20

func TestTarScanLikeArchiveTar(t *testing.T) {
	plain := tarOf(t, true,
		&tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755, ModTime: mt, Format: tar.FormatUSTAR},
		reg("d/a", 0), reg("d/b", 511), reg("d/c", 512), reg("d/e", 1300),
		&tar.Header{Typeflag: tar.TypeSymlink, Name: "d/l", Linkname: "a", Mode: 0o777, ModTime: mt, Format: tar.FormatUSTAR},
		&tar.Header{Typeflag: tar.TypeLink, Name: "d/h", Linkname: "d/b", Mode: 0o644, ModTime: mt, Format: tar.FormatUSTAR},
	)
	long := strings.Repeat("p", 120) + "/" + strings.Repeat("n", 60)
	pax := &tar.Header{Typeflag: tar.TypeReg, Name: "x", Size: 3, Mode: 0o600, ModTime: mt,
		PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}, Format: tar.FormatPAX}
	// One block made by hand: a directory whose size field is not zero
	// (no content follows it, by archive/tar's rule).
	dirSized := tarOf(t, false, &tar.Header{Typeflag: tar.TypeDir, Name: "s/", Mode: 0o755, ModTime: mt, Format: tar.FormatUSTAR})
	copy(dirSized[124:136], "00000001000\x00")
	fixSum(dirSized[:512])
	dirSized = append(dirSized, tarOf(t, true, reg("s/f", 5))...)
	signed := tarOf(t, true, reg("e", 2), reg("z", 1))
	signed[0] = 0xe9 // a byte whose signed and unsigned sums differ
	copy(signed[148:156], fmt.Sprintf("%06o\x00 ", signedSum(signed[:512])))
	oddOctal := tarOf(t, true, reg("o", 9), reg("p", 1))
	copy(oddOctal[100:108], "  644 \x00\x00")
	fixSum(oddOctal[:512])
	base256 := tarOf(t, true, reg("b", 4), reg("c", 1))
	copy(base256[124:136], "\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04")
	fixSum(base256[:512])
	badSum := tarOf(t, true, reg("a", 1), reg("b", 2))
	badSum[2*512]++ // the second header's name: its checksum no longer holds

	for _, c := range []struct {
		name     string
		data     []byte
		members  int
		handOver bool // at some header, archive/tar takes over
	}{
		{"plain ustar", plain, 7, true}, // the end blocks are archive/tar's
		{"no end blocks", tarOf(t, false, reg("a", 10), reg("b", 0)), 2, true},
		{"cut inside content", plain[:512+512+512+100], 3, false},
		{"cut before padding", tarOf(t, false, reg("a", 10))[:512+10], 1, false},
		{"cut inside padding", tarOf(t, false, reg("a", 10))[:512+200], 1, false},
		{"cut inside a header", plain[:512+300], 1, true},
		{"ustar prefix", tarOf(t, true, reg(long, 7), reg("z", 1)), 2, true},
		{"PAX records", tarOf(t, true, reg("a", 1), pax, reg("z", 2)), 3, true},
		{"GNU long name", tarOf(t, true, reg("a", 1), &tar.Header{Typeflag: tar.TypeReg, Name: strings.Repeat("g", 300), Size: 2, ModTime: mt, Format: tar.FormatGNU}), 2, true},
		{"directory with a size", dirSized, 2, true},
		{"signed checksum", signed, 2, true},
		{"spaces around octal", oddOctal, 2, true},
		{"base-256 size", base256, 2, true},
		{"bad checksum", badSum, 1, true},
		{"absolute name", tarOf(t, true, reg("a", 1), reg("/etc/x", 1)), 2, true},
		{"dot-dot, local", tarOf(t, false, reg("a/../b", 1), reg("a..b", 2)), 2, true},
		{"dot-dot, not local", tarOf(t, true, reg("a", 1), reg("../x", 1)), 2, true},
		{"empty", nil, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []func(io.Reader) io.Reader{
				func(r io.Reader) io.Reader { return r },
				iotest.OneByteReader,
				iotest.DataErrReader,
				chunked(1, 511, 512, 513, 4000),
				chunked(700),
			} {
				for _, size := range []int{512, 1000, 1 << 20} {
					n, handOver := scanLike(t, c.data, size, r)
					if n != c.members || handOver != c.handOver {
						t.Fatalf("buffer %d: %d members, hand-over %v; want %d, %v", size, n, handOver, c.members, c.handOver)
					}
				}
			}
		})
	}
}

// A read error inside a member's content is returned as is, and again by
// Next (archive/tar's errors are sticky too).
func TestTarScanReadError(t *testing.T) {
	boom := errors.New("boom")
	data := tarOf(t, true, reg("a", 2000))
	s := newTarScanner(io.MultiReader(bytes.NewReader(data[:1000]), errReader{boom}), 4096)
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	if _, err := s.hash(sha256.New(), &sum); !errors.Is(err, boom) {
		t.Fatalf("hash: %v, want boom", err)
	}
	if _, err := s.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next: %v, want boom", err)
	}
}

// chunks hands out its data in pieces of the sizes given (in turn) through
// ReadChunk, as the pipe does, and overwrites the previous piece at every
// read: a scanner keeping a piece too long reads garbage.
type chunks struct {
	data  []byte
	sizes []int
	i     int
	buf   []byte
}

func chunked(sizes ...int) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader {
		data, _ := io.ReadAll(r)
		return &chunks{data: data, sizes: sizes}
	}
}

func (c *chunks) ReadChunk() ([]byte, error) {
	for i := range c.buf {
		c.buf[i] = 0xa5
	}
	if len(c.data) == 0 {
		return nil, io.EOF
	}
	n := min(c.sizes[c.i%len(c.sizes)], len(c.data))
	c.i++
	c.buf = append(c.buf[:0], c.data[:n]...)
	c.data = c.data[n:]
	return c.buf, nil
}

func (c *chunks) Read(p []byte) (int, error) {
	for i := range c.buf {
		c.buf[i] = 0xa5
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestBlockSum(t *testing.T) {
	for _, c := range []struct {
		name string
		fill func(i int) byte
	}{
		{"zeros", func(int) byte { return 0 }},
		{"all 0xff", func(int) byte { return 0xff }},
		{"ramp", func(i int) byte { return byte(i) }},
		{"high bytes", func(i int) byte { return byte(0x80 + i%128) }},
		{"sparse", func(i int) byte { return byte(i % 7 * 40) }},
	} {
		var b [blockLen]byte
		var want int64
		for i := range b {
			b[i] = c.fill(i)
			want += int64(b[i])
		}
		if got := blockSum(b[:]); got != want {
			t.Errorf("%s: %d, want %d", c.name, got, want)
		}
	}
}

func fixSum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b[:512] {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

func signedSum(b []byte) int64 {
	var sum int64
	for i, c := range b[:512] {
		if 148 <= i && i < 156 {
			c = ' '
		}
		sum += int64(int8(c))
	}
	return sum
}

// FuzzTarScan compares the scanner with archive/tar on arbitrary streams.
func FuzzTarScan(f *testing.F) {
	f.Add(tarOf(f, true, reg("a", 1), reg("b/c", 700)), uint16(512))
	f.Add(tarOf(f, true, &tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "t", ModTime: mt, Format: tar.FormatUSTAR}, reg(strings.Repeat("p", 120)+"/q", 3)), uint16(600))
	f.Add(tarOf(f, false, reg("a", 5), &tar.Header{Typeflag: tar.TypeReg, Name: "x", Size: 1, ModTime: mt,
		PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}, Format: tar.FormatPAX}), uint16(1024))
	f.Fuzz(func(t *testing.T, data []byte, size uint16) {
		scanLike(t, data, blockLen+int(size), func(r io.Reader) io.Reader { return iotest.HalfReader(r) })
		scanLike(t, data, blockLen, chunked(1+int(size)%1500, 1+int(size)%97))
	})
}
