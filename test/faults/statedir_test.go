package faults

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/drym-backup/drym/internal/status"
)

// TestStateDirUnwritable: the state directory turns read-only (a remount
// after a disk error) or fills up. The runner fails with one clear line, and
// the previous backup.json stays intact and readable: a check keeps judging
// the last real backup instead of a torn file.
func TestStateDirUnwritable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, stateDir string) // after the first good backup
		want  []string                            // any of these in the error
	}{
		{"read-only", func(t *testing.T, stateDir string) {
			mount(t, stateDir, "--bind", stateDir)
			if out, err := exec.Command("mount", "-o", "remount,ro,bind", stateDir).CombinedOutput(); err != nil {
				t.Fatalf("remount read-only: %v\n%s", err, out)
			}
		}, []string{"read-only file system"}},
		{"full", func(t *testing.T, stateDir string) {
			fill(t, stateDir)
		}, []string{"no space left on device"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest, _ := dirDest(t)
			e := newEnv(t, dest, nil, smallSource(t))
			if tc.name == "full" {
				// The state dir lives on a small tmpfs from the start, as a
				// small /var would.
				if err := os.RemoveAll(e.stateDir); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(e.stateDir, 0o750); err != nil {
					t.Fatal(err)
				}
				mount(t, e.stateDir, "-t", "tmpfs", "-o", "size=256k,mode=0750", "tmpfs")
			}
			if r := e.run("backup"); r.code != 0 {
				t.Fatalf("first backup: exit %d\n%s", r.code, r.stderr)
			}
			path := filepath.Join(e.stateDir, status.BackupFile)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(t, e.stateDir)

			r := e.run("backup")
			if r.code != 1 {
				t.Fatalf("want exit 1 with an unwritable state dir, got %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
			if !containsAny(r.stderr, tc.want) || !strings.Contains(r.stderr, e.stateDir) {
				t.Fatalf("the error does not name the state dir and the cause (%q): %s", tc.want, r.stderr)
			}
			after, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(before, after) {
				t.Fatalf("previous backup.json damaged (err %v):\n%s\n→\n%s", err, before, after)
			}
			if b := e.backupStatus(); b.State != status.OK {
				t.Fatalf("previous backup.json no longer reads ok: %s", b.State)
			}
			// No temp files left to fill the disk further.
			if tmp, _ := filepath.Glob(filepath.Join(e.stateDir, ".*.tmp-*")); len(tmp) != 0 {
				t.Fatalf("temp files left in the state dir: %v", tmp)
			}
			wantState(t, check(t, e.environ, "check_backup_age", "--config", e.cfgPath), "OK")
		})
	}
}

// fill writes a file into dir until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			// Use up the last partial block too.
			for _, err := f.Write(buf[:1]); err == nil; _, err = f.Write(buf[:1]) {
			}
			return
		}
	}
}
