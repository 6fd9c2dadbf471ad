package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/drym-backup/drym/internal/store"
)

// TestDirModesUnderUmask077: what a Dir creates is readable as the checks
// need it (directories 0755, objects 0644) and escrow zips private (0600),
// whatever the runner's umask.
func TestDirModesUnderUmask077(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := t.TempDir()
	d := store.NewDir(filepath.Join(root, "a", "b"))
	ctx := context.Background()
	if _, err := d.Put(ctx, "obj", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutPrivate(ctx, d, "secret.zip", strings.NewReader("k")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(root, "a"), store.DirMode | os.ModeDir},
		{filepath.Join(root, "a", "b"), store.DirMode | os.ModeDir},
		{d.Path("obj"), store.ObjectMode},
		{d.Path("secret.zip"), store.PrivateMode},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.want)
		}
	}
}

// TestDirRemovesStalePartials: a .partial file left by a killed run is
// removed by the next Put; one a live writer holds (flock) is not.
func TestDirRemovesStalePartials(t *testing.T) {
	dir := t.TempDir()
	d := store.NewDir(dir)
	stale := filepath.Join(dir, ".x.tar.zst.gpg.123.partial")
	live := filepath.Join(dir, ".y.tar.zst.gpg.456.partial")
	for _, p := range []string{stale, live} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(context.Background(), "z", strings.NewReader("z")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale partial file still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a partial file being written was removed: %v", err)
	}
	var names []string
	if err := d.List(context.Background(), "", func(i store.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "z" {
		t.Errorf("listed %v", names)
	}
}
