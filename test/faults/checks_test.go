package faults

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
)

// statusChecks maps each check to the status file it judges from a bare
// state directory. check_key_escrow needs settings and an escrow zip, so
// TestKeyEscrowOnDamagedStatus gives it a real installation.
var statusChecks = []struct{ check, file, job string }{
	{"check_backup_age", status.BackupFile, status.JobBackup},
	{"check_test_restore", status.TestRestoreFile, status.JobTestRestore},
}

// validStatus is a plausible, successful status file for job, finished at
// finished.
func validStatus(job string, finished time.Time) map[string]any {
	started := finished.Add(-time.Minute)
	m := map[string]any{
		"schema": status.Schema, "job": job, "host": host, "version": "test", "pid": 1, "state": "ok",
		"started": started.UTC().Format(time.RFC3339), "finished": finished.UTC().Format(time.RFC3339),
		"destination": "dir:///srv/backup", "key_fingerprint": strings.Repeat("A", 40),
	}
	switch job {
	case status.JobBackup:
		obj := host + "/" + started.UTC().Format("20060102T150405Z") + "-" + strings.Repeat("ab", 16) + ".tar.zst.gpg"
		m["object"], m["bytes_in"], m["bytes_out"], m["files"], m["sha256"] = obj, 1000, 500, 3, strings.Repeat("0", 64)
	case status.JobTestRestore:
		m["backup"], m["backup_time"], m["files"], m["bytes"], m["verified"], m["sha256_checked"] = "x", started.UTC().Format(time.RFC3339), 3, 1000, true, true
		m["last_success"] = finished.UTC().Format(time.RFC3339)
	case status.JobEscrow:
		m["zip"] = "drym-escrow-" + host + ".zip"
	}
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// damaged returns the ways a status file of job can be damaged; a nil
// value stands for "a directory where the file should be".
func damaged(t *testing.T, base map[string]any) map[string][]byte {
	clone := func() map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	good := mustJSON(t, base)
	with := func(k string, v any) []byte {
		m := clone()
		m[k] = v
		return mustJSON(t, m)
	}
	otherJob := status.JobEscrow
	if base["job"] == status.JobEscrow {
		otherJob = status.JobBackup
	}
	future := clone()
	tomorrow := time.Now().Add(24 * time.Hour).UTC()
	future["started"] = tomorrow.Format(time.RFC3339)
	future["finished"] = tomorrow.Add(time.Minute).Format(time.RFC3339)
	return map[string][]byte{
		"garbage":        []byte("\x00\xff\xfe not json at all"),
		"empty":          {},
		"truncated":      good[:len(good)/2],
		"truncated-end":  good[:len(good)-1],
		"unknown schema": with("schema", status.Schema+1),
		"no schema":      with("schema", nil),
		"schema string":  with("schema", "1"),
		"future":         mustJSON(t, future),
		"wrong job":      with("job", otherJob),
		"unknown state":  with("state", "done"),
		"huge":           append([]byte(strings.Repeat(" ", status.MaxFileSize)), good...),
		"json array":     []byte(`[` + string(good) + `]`),
		"directory":      nil,
	}
}

// plant puts a damaged status file at path.
func plant(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	var err error
	if data == nil {
		err = os.Mkdir(path, 0o755)
	} else {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestChecksOnDamagedStatus: status files that are garbage, empty,
// truncated, of an unknown schema, from the future, of the wrong job, huge,
// or not a file at all. The check says UNKNOWN, never OK.
func TestChecksOnDamagedStatus(t *testing.T) {
	t.Parallel()
	for _, c := range statusChecks {
		t.Run(c.check, func(t *testing.T) {
			checkBinary(t, c.check)
			for name, data := range damaged(t, validStatus(c.job, time.Now().Add(-time.Hour))) {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					dir := t.TempDir()
					plant(t, filepath.Join(dir, c.file), data)
					r := check(t, cleanEnv(), c.check, "--config", "/nonexistent/drym.toml", "--state-dir", dir)
					judgeDamaged(t, r)
				})
			}
		})
	}
}

// TestKeyEscrowOnDamagedStatus: check_key_escrow on a real installation
// whose escrow zip is fine (OK first), then with backup.json or escrow.json
// damaged: UNKNOWN, never OK — a status file nobody can read means the host
// is not in the state the zip was checked against.
func TestKeyEscrowOnDamagedStatus(t *testing.T) {
	t.Parallel()
	checkBinary(t, "check_key_escrow")
	dest, _ := dirDest(t)
	e := newEnv(t, dest, nil, smallSource(t))
	e.cfg.Escrow.URL = "dir://" + t.TempDir()
	e.writeConfig()
	for _, args := range [][]string{{"escrow"}, {"backup"}} {
		if r := e.run(args...); r.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	wantState(t, check(t, e.environ, "check_key_escrow", "--config", e.cfgPath), "OK")
	for _, f := range []string{status.BackupFile, status.EscrowFile} {
		path := filepath.Join(e.stateDir, f)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var base map[string]any
		if err := json.Unmarshal(orig, &base); err != nil {
			t.Fatal(err)
		}
		for name, data := range damaged(t, base) {
			t.Run(f+"/"+name, func(t *testing.T) {
				plant(t, path, data)
				defer plant(t, path, orig)
				judgeDamaged(t, check(t, e.environ, "check_key_escrow", "--config", e.cfgPath))
			})
		}
	}
}

func judgeDamaged(t *testing.T, r result) {
	t.Helper()
	if r.code == 0 || strings.HasPrefix(r.stdout, "OK") {
		t.Fatalf("OK on a damaged status file:\n%s", r.stdout)
	}
	wantState(t, r, "UNKNOWN")
	first, _, _ := strings.Cut(r.stdout, "\n")
	if len(first) > 4096 {
		t.Fatalf("first line longer than 4 KB (%d bytes)", len(first))
	}
}

// TestChecksHang: what a check depends on would hang: the status file is a
// FIFO nobody writes (refused at once: open(2) of a FIFO blocks), or the S3
// endpoint accepts connections and never answers. The check says UNKNOWN
// within -t, with the step it was stuck at.
func TestChecksHang(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	slack := 2 * time.Second
	for _, c := range statusChecks {
		t.Run(c.check+"/fifo", func(t *testing.T) {
			t.Parallel()
			checkBinary(t, c.check)
			dir := t.TempDir()
			if err := syscall.Mkfifo(filepath.Join(dir, c.file), 0o644); err != nil {
				t.Fatal(err)
			}
			r := check(t, cleanEnv(), c.check, "--config", "/nonexistent/drym.toml", "--state-dir", dir, "-t", "2s")
			if r.took > timeout+slack {
				t.Fatalf("took %s with -t 2s", r.took)
			}
			wantState(t, r, "UNKNOWN")
		})
	}
	t.Run("check_key_escrow/fifo", func(t *testing.T) {
		t.Parallel()
		checkBinary(t, "check_key_escrow")
		dest, _ := dirDest(t)
		e := newEnv(t, dest, nil, smallSource(t))
		e.cfg.Escrow.URL = "dir://" + t.TempDir()
		e.writeConfig()
		if err := syscall.Mkfifo(filepath.Join(e.stateDir, status.BackupFile), 0o644); err != nil {
			t.Fatal(err)
		}
		r := check(t, e.environ, "check_key_escrow", "--config", e.cfgPath, "-t", "2s")
		if r.took > timeout+slack {
			t.Fatalf("took %s with -t 2s", r.took)
		}
		// The drop is empty (CRITICAL); the FIFO is refused at once and named.
		if r.code == 0 || !strings.Contains(r.stdout, "UNKNOWN: cannot compare with the last backup's key: open "+filepath.Join(e.stateDir, status.BackupFile)+": not a regular file (it is a FIFO)") {
			t.Fatalf("exit %d:\n%s", r.code, r.stdout)
		}
	})

	t.Run("check_backup_age/remote", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var held []net.Conn
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, conn) // read nothing, answer nothing
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			l.Close()
			mu.Lock()
			for _, c := range held {
				c.Close()
			}
			mu.Unlock()
		})
		dir := t.TempDir()
		stateDir := filepath.Join(dir, "state")
		if err := os.Mkdir(stateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := &config.Config{
			Host: host, Sources: []string{"/etc"}, StateDir: stateDir, KeyFile: filepath.Join(dir, "host-key.asc"),
			Destination: config.Remote{URL: "s3://drym-test/drym", Endpoint: "http://" + l.Addr().String(), PathStyle: true, Region: "us-east-1"},
		}
		data, err := cfg.Encode()
		if err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(dir, "drym.toml")
		if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stateDir, status.BackupFile), mustJSON(t, validStatus(status.JobBackup, time.Now().Add(-time.Hour))), 0o644); err != nil {
			t.Fatal(err)
		}
		environ := append(cleanEnv(), "AWS_ACCESS_KEY_ID=drymread", "AWS_SECRET_ACCESS_KEY=drymreadsecret")
		// Control: without --remote the status alone is OK.
		wantState(t, check(t, environ, "check_backup_age", "--config", cfgPath), "OK")
		r := check(t, environ, "check_backup_age", "--config", cfgPath, "--remote", "-t", "2s")
		if r.took > timeout+slack {
			t.Fatalf("took %s with -t 2s", r.took)
		}
		wantState(t, r, "UNKNOWN")
		mu.Lock()
		n := len(held)
		mu.Unlock()
		if n == 0 {
			t.Fatalf("the check never reached the silent endpoint:\n%s", r.stdout)
		}
	})
}
