package pipe

import (
	"hash"
	"io"
)

// Tap hashes and counts what is read through it, and reports each read:
// both ends of drym's object stream need all three (the backup's upload,
// the test-restore's download), from one pass over the bytes.
type Tap struct {
	R      io.Reader
	Hash   hash.Hash
	N      int64     // bytes read so far
	OnRead func(int) // optional: progress, called with each read's length
}

func (t *Tap) Read(b []byte) (int, error) {
	n, err := t.R.Read(b)
	if n > 0 {
		t.Hash.Write(b[:n])
		t.N += int64(n)
		if t.OnRead != nil {
			t.OnRead(n)
		}
	}
	return n, err
}
