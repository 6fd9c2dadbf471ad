package faults

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/status"
)

// TestRunnerSIGKILL: the runner dies mid-backup (OOM killer, kill -9, power
// cut of the process). The lock dies with it, no final-named object exists,
// check_backup_age says CRITICAL "runner died", and the next run takes the
// lock and succeeds.
func TestRunnerSIGKILL(t *testing.T) {
	t.Parallel()
	dest, objDir := dirDest(t)
	src := bigSource(t)
	e := newEnv(t, dest, nil, src)

	p := e.start("backup")
	waitFor(t, time.Minute, "the first bytes of the object", func() bool { return partialWritten(objDir) || p.exited() })
	if p.exited() {
		r := p.wait(0)
		t.Fatalf("backup ended before it could be killed: exit %d\n%s", r.code, r.stderr)
	}
	p.signal(syscall.SIGKILL)
	if r := p.wait(10 * time.Second); r.code != -int(syscall.SIGKILL) {
		t.Fatalf("want death by SIGKILL, got exit %d", r.code)
	}

	b := e.backupStatus()
	if b.State != status.Running || b.PID != p.cmd.Process.Pid {
		t.Fatalf("backup.json after SIGKILL: state %s pid %d, want running pid %d", b.State, b.PID, p.cmd.Process.Pid)
	}
	r := check(t, e.environ, "check_backup_age", "--config", e.cfgPath)
	wantState(t, r, "CRITICAL")
	if !strings.Contains(r.stdout, "runner died") {
		t.Fatalf("check_backup_age does not say the runner died:\n%s", r.stdout)
	}
	if final, _ := objects(t, objDir); len(final) != 0 {
		t.Fatalf("final-named objects after SIGKILL: %v", final)
	}

	// The next run: the kernel dropped the flock with the process.
	e.cfg.Sources = []string{smallSource(t)}
	e.writeConfig()
	if r := e.run("backup"); r.code != 0 {
		t.Fatalf("next backup: exit %d\n%s", r.code, r.stderr)
	}
	if b := e.backupStatus(); b.State != status.OK {
		t.Fatalf("next backup: state %s: %s", b.State, b.Error)
	}
	final, _ := objects(t, objDir)
	if len(final) != 3 { // object, its .sha256 statement and .sig signature
		t.Fatalf("after the next run want one object, its statement and signature, got %v", final)
	}
	wantState(t, check(t, e.environ, "check_backup_age", "--config", e.cfgPath), "OK")
}

// TestRunnerSignals: SIGTERM (systemd stop, shutdown) and SIGINT (Ctrl-C) are
// graceful: the upload is aborted, nothing is left under a final name,
// backup.json says failed: interrupted, the exit code is non-zero, and the
// check is CRITICAL.
func TestRunnerSignals(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dest, objDir := dirDest(t)
			e := newEnv(t, dest, nil, bigSource(t))
			p := e.start("backup")
			waitFor(t, time.Minute, "the first bytes of the object", func() bool { return partialWritten(objDir) || p.exited() })
			if p.exited() {
				t.Fatalf("backup ended before the signal: %+v", p.wait(0))
			}
			p.signal(sig)
			r := p.wait(30 * time.Second)
			assertInterrupted(t, e, r)
			final, partial := objects(t, objDir)
			if len(final) != 0 || len(partial) != 0 {
				t.Fatalf("after %v: objects %v, partial files %v; want none", sig, final, partial)
			}
		})
	}
}

// assertInterrupted checks the aftermath of a signalled backup.
func assertInterrupted(t *testing.T, e *env, r result) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("want exit 1 after the signal, got %d\n%s", r.code, r.stderr)
	}
	oneLine(t, "stderr", r.stderr)
	b := e.backupStatus()
	if b.State != status.Failed || !strings.Contains(b.Error, "interrupted") || b.Object != "" {
		t.Fatalf("backup.json: state %s error %q object %q; want failed, interrupted, no object", b.State, b.Error, b.Object)
	}
	c := check(t, e.environ, "check_backup_age", "--config", e.cfgPath)
	wantState(t, c, "CRITICAL")
	if !strings.Contains(c.stdout, "interrupted") {
		t.Fatalf("check_backup_age does not name the cause:\n%s", c.stdout)
	}
}

// TestTwoRunners: a second runner (a timer firing while a slow backup still
// runs) refuses within a second, naming the holder, and touches nothing; the
// first finishes OK.
func TestTwoRunners(t *testing.T) {
	t.Parallel()
	dest, objDir := dirDest(t)
	e := newEnv(t, dest, nil, bigSource(t))
	first := e.start("backup")
	waitFor(t, time.Minute, "the first runner to start writing", func() bool { return partialWritten(objDir) || first.exited() })
	if first.exited() {
		t.Fatalf("first backup ended too soon: %+v", first.wait(0))
	}
	before, err := os.ReadFile(filepath.Join(e.stateDir, status.BackupFile))
	if err != nil {
		t.Fatal(err)
	}
	// At once: it must not wait for the first. (Well under a second on a
	// quiet machine; 2 s leaves room for a loaded CI host.)
	second := e.run("backup")
	if second.code != 1 || second.took > 2*time.Second {
		t.Fatalf("second runner: exit %d after %s; want 1 within 2s\n%s", second.code, second.took, second.stderr)
	}
	oneLine(t, "second runner's stderr", second.stderr)
	if !strings.Contains(second.stderr, "locked") || !strings.Contains(second.stderr, "pid") {
		t.Fatalf("second runner does not say who holds the lock: %s", second.stderr)
	}
	after, _ := os.ReadFile(filepath.Join(e.stateDir, status.BackupFile))
	if string(after) != string(before) {
		t.Fatalf("the refused runner changed backup.json:\n%s\n→\n%s", before, after)
	}
	if r := first.wait(2 * time.Minute); r.code != 0 {
		t.Fatalf("first runner: exit %d\n%s", r.code, r.stderr)
	}
	if b := e.backupStatus(); b.State != status.OK || b.PID != first.cmd.Process.Pid {
		t.Fatalf("backup.json: state %s pid %d, want ok from pid %d", b.State, b.PID, first.cmd.Process.Pid)
	}
	if final, _ := objects(t, objDir); len(final) != 3 {
		t.Fatalf("want one object, its statement and signature, got %v", final)
	}
}

// TestRunnerRefusesSpecialFiles: a FIFO in place of the settings file or the
// host key used to block open(2) for good — SIGTERM could not end the
// runner, only SIGKILL. Settings, keys and status files must be regular
// files: anything else is refused at once, by name, and nothing is written.
func TestRunnerRefusesSpecialFiles(t *testing.T) {
	t.Parallel()
	dest, objDir := dirDest(t)
	e := newEnv(t, dest, nil, smallSource(t))
	replaceWithFIFO := func(path string) func() {
		saved, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		mode, _ := os.Stat(path)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
		return func() {
			os.Remove(path)
			if err := os.WriteFile(path, saved, mode.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name, path string
		code       int
	}{
		{"settings", e.cfgPath, 2},
		{"host public key", e.cfg.PublicKeyFile(), 1},
		{"backup.json", filepath.Join(e.stateDir, status.BackupFile), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "backup.json" {
				if r := e.run("backup"); r.code != 0 {
					t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
				}
			}
			restore := replaceWithFIFO(tc.path)
			defer restore()
			before, _ := objects(t, objDir)
			r := e.run("backup")
			if r.took > 5*time.Second {
				t.Fatalf("took %s: the runner blocked on the FIFO", r.took)
			}
			if tc.name == "backup.json" {
				// The previous status is unreadable (a FIFO): the run goes
				// on with a new history, and replaces it with a real file.
				if r.code != 0 {
					t.Fatalf("backup with a FIFO status file: exit %d\n%s", r.code, r.stderr)
				}
				if fi, err := os.Lstat(tc.path); err != nil || !fi.Mode().IsRegular() {
					t.Fatalf("backup.json is still not a regular file: %v %v", fi, err)
				}
				return
			}
			if r.code != tc.code || !strings.Contains(r.stderr, "not a regular file (it is a FIFO)") {
				t.Fatalf("exit %d (want %d), stderr %q", r.code, tc.code, r.stderr)
			}
			if after, _ := objects(t, objDir); len(after) != len(before) {
				t.Fatalf("objects written: %v → %v", before, after)
			}
		})
	}
}
