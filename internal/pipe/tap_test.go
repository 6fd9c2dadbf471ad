package pipe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestTap(t *testing.T) {
	data := bytes.Repeat([]byte("drym"), 10_000)
	boom := errors.New("boom")
	tests := []struct {
		name    string
		r       io.Reader
		want    []byte // what the tap must have hashed and counted
		wantErr error
	}{
		{"empty", bytes.NewReader(nil), nil, nil},
		{"whole", bytes.NewReader(data), data, nil},
		{"one byte a read", iotest.OneByteReader(bytes.NewReader(data[:1000])), data[:1000], nil},
		{"data with the error", iotest.DataErrReader(bytes.NewReader(data[:5000])), data[:5000], nil},
		{"fails midway", io.MultiReader(bytes.NewReader(data[:300]), iotest.ErrReader(boom)), data[:300], boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reported := 0
			tap := &Tap{R: tt.r, Hash: sha256.New(), OnRead: func(n int) { reported += n }}
			got, err := io.ReadAll(tap)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			sum := sha256.Sum256(tt.want)
			if !bytes.Equal(got, tt.want) || tap.N != int64(len(tt.want)) || reported != len(tt.want) ||
				hex.EncodeToString(tap.Hash.Sum(nil)) != hex.EncodeToString(sum[:]) {
				t.Errorf("read %d, counted %d, reported %d, want %d; hash matches: %v",
					len(got), tap.N, reported, len(tt.want), bytes.Equal(tap.Hash.Sum(nil), sum[:]))
			}
		})
	}
	// OnRead is optional.
	tap := &Tap{R: bytes.NewReader(data), Hash: sha256.New()}
	if _, err := io.Copy(io.Discard, tap); err != nil || tap.N != int64(len(data)) {
		t.Fatalf("without OnRead: %d bytes, %v", tap.N, err)
	}
}
