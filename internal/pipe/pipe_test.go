package pipe

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 100, 1 << 10, 1<<10 + 1, 10<<10 + 7, 1 << 20} {
		data := make([]byte, size)
		rand.Read(data)
		for _, mode := range []string{"write-read", "readfrom-writeto", "write-chunks"} {
			p := New(1<<10, 3)
			go func() {
				var err error
				if mode != "readfrom-writeto" {
					// Odd write sizes cross chunk borders.
					for b := data; len(b) > 0; {
						n := min(len(b), 333)
						if _, err = p.Write(b[:n]); err != nil {
							break
						}
						b = b[n:]
					}
				} else {
					_, err = p.ReadFrom(bytes.NewReader(data))
				}
				p.CloseWrite(err)
			}()
			var got bytes.Buffer
			var err error
			switch mode {
			case "write-read":
				_, err = io.Copy(&got, struct{ io.Reader }{p})
			case "write-chunks":
				// Chunks, with a short Read in between.
				for i := 0; ; i++ {
					var c []byte
					if i%3 == 2 {
						var b [100]byte
						n, rerr := p.Read(b[:])
						c, err = b[:n], rerr
					} else {
						c, err = p.ReadChunk()
					}
					got.Write(c)
					if err != nil {
						break
					}
				}
				if err == io.EOF {
					err = nil
				}
			default:
				_, err = p.WriteTo(&got)
			}
			if err != nil || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("%s %d bytes: got %d, %v", mode, size, got.Len(), err)
			}
		}
	}
}

func TestWriterErrorReachesReader(t *testing.T) {
	p := New(16, 2)
	boom := errors.New("boom")
	go func() {
		p.Write([]byte("partial data"))
		p.CloseWrite(boom)
	}()
	_, err := io.ReadAll(struct{ io.Reader }{p})
	if !errors.Is(err, boom) {
		t.Fatalf("reader got %v, want boom: a failed stage must never look like a clean end", err)
	}
}

func TestReaderCloseUnblocksWriter(t *testing.T) {
	p := New(16, 1)
	done := make(chan error)
	go func() {
		_, err := p.Write(make([]byte, 1<<20)) // far more than the pipe holds
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	stop := errors.New("upload failed")
	p.CloseRead(stop)
	select {
	case err := <-done:
		if !errors.Is(err, stop) {
			t.Fatalf("writer got %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("writer still blocked after the reader went away")
	}
}
