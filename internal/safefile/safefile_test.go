package safefile

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	if err := os.WriteFile(reg, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(reg, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		name, path string
		limit      int64
		want       string
		err        error
		errText    string
	}{
		{"regular", reg, 10, "hello", nil, ""},
		{"symlink to regular", link, 10, "hello", nil, ""},
		{"too large", reg, 4, "", nil, "larger than 4 bytes"},
		{"fifo", fifo, 10, "", ErrNotRegular, "FIFO"},
		{"socket", sock, 10, "", nil, ""},
		{"directory", dir, 10, "", ErrNotRegular, "directory"},
		{"device", "/dev/null", 10, "", ErrNotRegular, "device"},
		{"missing", filepath.Join(dir, "nope"), 10, "", os.ErrNotExist, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var got []byte
			var err error
			go func() { got, err = ReadFile(tc.path, tc.limit); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			if tc.want != "" {
				if err != nil || string(got) != tc.want {
					t.Fatalf("ReadFile = %q, %v", got, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadFile = %q, want an error", got)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			if !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("error %q lacks %q", err, tc.errText)
			}
		})
	}
}
