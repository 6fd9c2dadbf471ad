package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/status"
)

func TestMain(m *testing.M) { plugintest.Main(m) }

var now = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

const statePath = "/var/lib/drym/test-restore.json"

// objName is the object name the runner gives a backup made at t.
func objName(t time.Time) string {
	return "web1/" + t.UTC().Format("20060102T150405Z") + "-0123456789abcdef0123456789abcdef.tar.zst.gpg"
}

// defaults parses argv (empty: the flag defaults) as the check would.
func defaults(t testing.TB, argv ...string) args { return plugintest.Defaults[args](t, argv...) }

// restore is an ok test restore that finished ago before ref, of a backup
// made 4h before it started.
func restore(ref time.Time, ago time.Duration) *status.TestRestore {
	fin := ref.Add(-ago)
	start := fin.Add(-3*time.Minute - 20*time.Second)
	return &status.TestRestore{
		Common: status.Common{Schema: status.Schema, Job: status.JobTestRestore, Host: "web1", Version: "1.0.0",
			PID: 4343, State: status.OK, Started: start, Finished: fin},
		Destination: "s3://backups/drym", Backup: objName(start.Add(-4 * time.Hour)), BackupTime: start.Add(-4 * time.Hour),
		Files: 14203, Bytes: 1536 << 20, ObjectBytes: 1288490188, ObjectSHA256: strings.Repeat("ab", 32),
		SHA256Checked: true, Fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567", Verified: true,
		LastSuccess: fin,
	}
}

func runningTR(tr *status.TestRestore, ref time.Time, since time.Duration) *status.TestRestore {
	tr.State, tr.Started, tr.Finished, tr.PID = status.Running, ref.Add(-since), time.Time{}, 5252
	tr.Files, tr.Bytes, tr.Backup, tr.BackupTime = 0, 0, "", time.Time{}
	return tr
}

func failedTR(tr *status.TestRestore, ref time.Time, ago time.Duration, msg string, mismatches ...string) *status.TestRestore {
	tr.State, tr.Started, tr.Finished, tr.Error, tr.Mismatches = status.Failed, ref.Add(-ago-5*time.Minute), ref.Add(-ago), msg, mismatches
	return tr
}

func ok(tr *status.TestRestore) facts {
	return facts{StatusRead: plugin.StatusRead{Path: statePath}, Status: tr}
}

func parseErr(data string) error {
	var tr status.TestRestore
	err := status.Parse([]byte(data), &tr)
	if err == nil {
		panic("parses")
	}
	return fmt.Errorf("%s: %w", statePath, err)
}

func TestEvaluate(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name  string
		f     facts
		argv  []string
		state plugin.State
		first string
	}{
		{"ok", ok(restore(now, 2*day)), nil, plugin.OK,
			"test restore 2d ago verified 14203 files (1.5 GiB) of backup 20260313T075640Z-0123456789abcdef0123456789abcdef (then 4h old), took 3m20s"},
		{"ok_just_under_warning", ok(restore(now, 8*day)), nil, plugin.OK, "test restore 8d ago"},
		{"warning_age", ok(restore(now, 8*day+time.Hour)), nil, plugin.Warning,
			"last successful test restore 8d1h ago, older than 8d (-w): run backup_runner test-restore and check the timer: systemctl status drym-test-restore.timer"},
		{"critical_age", ok(restore(now, 10*day)), nil, plugin.Critical, "last successful test restore 10d ago, older than 9d (-c)"},
		{"critical_age_custom", ok(restore(now, 2*day)), []string{"-w", "1d", "-c", "36h"}, plugin.Critical, "older than 36h (-c)"},
		{"warning_old_backup", func() facts {
			tr := restore(now, day)
			tr.BackupTime = tr.Started.Add(-5 * day)
			return ok(tr)
		}(), nil, plugin.Warning, "the last test restore tested a backup that was 5d old, older than --max-backup-age 2d"},
		{"ok_old_backup_allowed", func() facts {
			tr := restore(now, day)
			tr.BackupTime = tr.Started.Add(-5 * day)
			return ok(tr)
		}(), []string{"--max-backup-age", "1w"}, plugin.OK, "(then 5d old)"},
		{"warning_not_verified", func() facts {
			tr := restore(now, day)
			tr.Verified = false
			return ok(tr)
		}(), nil, plugin.Warning, "the last test restore verified nothing: backup web1/20260314T075640Z-0123456789abcdef0123456789abcdef.tar.zst.gpg has no manifest"},
		{"critical_failed_mismatch", ok(failedTR(restore(now, 3*day), now, time.Hour, "3 files differ from the manifest",
			"/etc/passwd: sha256 differs", "/etc/shadow: size 0, manifest says 1234", "/srv/www/index.html: missing")), nil, plugin.Critical,
			"test restore of web1/20260312T075640Z-0123456789abcdef0123456789abcdef.tar.zst.gpg failed 1h ago: 3 file(s) differ from the manifest, first: /etc/passwd: sha256 differs; fix that and run backup_runner test-restore"},
		{"critical_failed_error", ok(failedTR(restore(now, 3*day), now, time.Hour, "cannot decrypt: no key matches (the host key changed? see check_key_escrow)")), nil, plugin.Critical,
			"failed 1h ago: cannot decrypt: no key matches"},
		{"critical_failed_never_succeeded", func() facts {
			tr := failedTR(restore(now, 3*day), now, time.Hour, "no backups in s3://backups/drym/web1/")
			tr.LastSuccess = time.Time{}
			return ok(tr)
		}(), nil, plugin.Critical, "failed 1h ago: no backups in s3://backups/drym/web1/"},
		{"ok_running", facts{StatusRead: plugin.StatusRead{Path: statePath}, Status: runningTR(restore(now, 2*day), now, 10*time.Minute), Alive: true}, nil, plugin.OK,
			"last test restore succeeded 2d ago; another is running (pid 5252, for 10m)"},
		{"warning_running_long", facts{StatusRead: plugin.StatusRead{Path: statePath}, Status: runningTR(restore(now, 2*day), now, 13*time.Hour), Alive: true}, nil, plugin.Warning,
			"test restore running for 13h (pid 5252), longer than --max-runtime 12h"},
		{"critical_died", ok(runningTR(restore(now, 2*day), now, 10*time.Minute)), nil, plugin.Critical,
			"test restore died: the one started 10m ago (pid 5252) is gone without finishing"},
		{"critical_first_running", func() facts {
			tr := runningTR(restore(now, 2*day), now, 10*time.Minute)
			tr.LastSuccess = time.Time{}
			return facts{StatusRead: plugin.StatusRead{Path: statePath}, Status: tr, Alive: true}
		}(), nil, plugin.Critical, "no test restore yet: the first one is still running (pid 5252, for 10m)"},
		{"critical_not_set_up", facts{StatusRead: plugin.StatusRead{SettingsErr: &plugin.NotSetUpError{Missing: "no settings file /etc/drym/drym.toml"}}}, nil, plugin.Critical,
			"not set up: run backup_runner init (no settings file /etc/drym/drym.toml)"},
		{"critical_never", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: fmt.Errorf("%s: %w", statePath, status.ErrNotExist)}}, nil, plugin.Critical,
			"no test restore yet: run backup_runner test-restore (no /var/lib/drym/test-restore.json)"},
		{"unknown_schema", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: parseErr(`{"schema": 7}`)}}, nil, plugin.Unknown, "unknown status schema 7"},
		{"unknown_corrupt", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: parseErr(`{"schema": 1, "job": "backup"}`)}}, nil, plugin.Unknown,
			"status file is corrupt: job is \"backup\", want \"test-restore\": run backup_runner test-restore to rewrite it"},
		{"unknown_permission", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: &os.PathError{Op: "open", Path: statePath, Err: syscall.EACCES}}}, nil, plugin.Unknown,
			"permission denied (the check runs as user nagios"},
		{"unknown_future", ok(restore(now, -time.Hour)), nil, plugin.Unknown, "timestamp in the future"},
		{"unknown_future_last_success", func() facts {
			tr := failedTR(restore(now, 3*day), now, time.Hour, "x")
			tr.LastSuccess = now.Add(48 * time.Hour)
			return ok(tr)
		}(), nil, plugin.Unknown, "last success: timestamp in the future"},
		{"unknown_backup_from_the_future", func() facts {
			tr := restore(now, 2*day)
			tr.BackupTime = tr.Started.Add(3 * time.Hour)
			tr.Backup = objName(tr.BackupTime)
			return ok(tr)
		}(), nil, plugin.Unknown, "the last test restore tested backup 20260313T145640Z-0123456789abcdef0123456789abcdef, dated 3h after the test started: a future-dated object"},
		{"ok_backup_within_skew", func() facts {
			tr := restore(now, 2*day)
			tr.BackupTime = tr.Started.Add(2 * time.Minute)
			tr.Backup = objName(tr.BackupTime)
			return ok(tr)
		}(), nil, plugin.OK, "(then 0s old)"},
		{"warning_future_objects", func() facts {
			tr := restore(now, 2*day)
			tr.FutureCount = 3
			tr.FutureObjects = []string{objName(now.Add(400 * day)), objName(now.Add(401 * day)), objName(now.Add(402 * day))}
			tr.SignedBy = "0123456789ABCDEF0123456789ABCDEF01234567"
			return ok(tr)
		}(), nil, plugin.Warning, "3 backup object(s) in s3://backups/drym are dated more than 5m in the future (first: web1/20270419T120000Z-0123456789abcdef0123456789abcdef.tar.zst.gpg): planted"},
		{"unknown_host_mismatch", func() facts {
			f := ok(restore(now, 2*day))
			f.SettingsPath, f.SettingsHost = "/etc/drym/drym.toml", "db2"
			return f
		}(), nil, plugin.Unknown, `/var/lib/drym/test-restore.json is of host "web1" but the settings /etc/drym/drym.toml are for host "db2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := evaluate(tt.f, defaults(t, tt.argv...), now)
			plugintest.Judge(t, tt.name, r, plugintest.Verdict{State: tt.state, First: tt.first})
		})
	}
}

func writeState(t *testing.T, tr *status.TestRestore) string {
	t.Helper()
	dir := t.TempDir()
	if tr != nil {
		if err := status.Write(filepath.Join(dir, status.TestRestoreFile), tr); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBinary(t *testing.T) {
	real := time.Now()
	day := 24 * time.Hour
	deadPID := func() int {
		c := exec.Command("true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		return c.Process.Pid
	}
	schema := t.TempDir()
	if err := os.WriteFile(filepath.Join(schema, status.TestRestoreFile), []byte(`{"schema": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := writeState(t, restore(real, day))
	hostCfg := func(host string) string {
		cfg := filepath.Join(t.TempDir(), "drym.toml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, "host = %q\nsources = [\"/etc\"]\nstate_dir = %q\n[destination]\nurl = \"dir:///srv/backup\"\n", host, state), 0o644); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := hostCfg("web1")
	tests := []struct {
		name  string
		env   []string
		argv  []string
		code  int
		first string
	}{
		{"ok", nil, []string{"--state-dir", writeState(t, restore(real, day))}, 0, "OK: test restore 1d ago verified 14203 files"},
		{"backup from the future", nil, []string{"--state-dir", writeState(t, func() *status.TestRestore {
			tr := restore(real, day)
			tr.BackupTime = tr.Started.Add(2 * time.Hour)
			return tr
		}())}, 3, "UNKNOWN: the last test restore tested backup"},
		{"future objects", nil, []string{"--state-dir", writeState(t, func() *status.TestRestore {
			tr := restore(real, day)
			tr.FutureCount, tr.FutureObjects = 1, []string{objName(real.Add(300 * day))}
			return tr
		}())}, 1, "WARNING: 1 backup object(s) in s3://backups/drym are dated more than 5m in the future"},
		{"other host", nil, []string{"--config", hostCfg("db2")}, 3, `UNKNOWN: ` + filepath.Join(state, status.TestRestoreFile) + ` is of host "web1" but the settings`},
		{"zero timeout", nil, []string{"--config", cfg, "-t", "0"}, 3, "UNKNOWN: bad command line: -t/--timeout must be longer than 0"},
		{"ok via DRYM_CONFIG", []string{"DRYM_CONFIG=" + cfg}, nil, 0, "OK: test restore 1d ago"},
		{"ok via --config", nil, []string{"--config", cfg}, 0, "OK: test restore 1d ago"},
		{"warning", nil, []string{"--state-dir", writeState(t, restore(real, 8*day+time.Hour))}, 1, "WARNING: last successful test restore 8d1h ago"},
		{"critical", nil, []string{"--state-dir", writeState(t, restore(real, 10*day))}, 2, "CRITICAL: last successful test restore 10d ago"},
		{"failed", nil, []string{"--state-dir", writeState(t, failedTR(restore(real, day), real, 0, "1 file(s) differ", "/etc/hosts: sha256 differs"))}, 2,
			"CRITICAL: test restore of web1/"},
		{"running live", nil, []string{"--state-dir", writeState(t, func() *status.TestRestore {
			tr := runningTR(restore(real, day), real, 0)
			tr.PID = os.Getpid()
			return tr
		}())}, 0, "OK: last test restore succeeded 1d ago; another is running"},
		{"running dead", nil, []string{"--state-dir", writeState(t, func() *status.TestRestore {
			tr := runningTR(restore(real, day), real, 0)
			tr.PID = deadPID()
			return tr
		}())}, 2, "CRITICAL: test restore died"},
		{"never", nil, []string{"--state-dir", writeState(t, nil)}, 2, "CRITICAL: no test restore yet: run backup_runner test-restore"},
		{"not set up", nil, nil, 2, "CRITICAL: not set up: run backup_runner init"},
		{"unknown schema", nil, []string{"--state-dir", schema}, 3, "UNKNOWN: " + filepath.Join(schema, status.TestRestoreFile) + ": unknown status schema 99"},
		{"bad flag", nil, []string{"--remote"}, 3, "UNKNOWN: bad command line: unknown argument --remote"},
		{"bad max-backup-age", nil, []string{"--max-backup-age", "2 days"}, 3, "UNKNOWN: bad command line: error processing --max-backup-age"},
		{"help", nil, []string{"-h"}, 0, "check_test_restore: did the last drym test restore"},
		{"version", nil, []string{"--version"}, 0, "check_test_restore drym "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := plugintest.Run(t, "check_test_restore", tt.env, tt.argv...)
			if r.Code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", r.Code, tt.code, r.Stdout)
			}
			if !strings.HasPrefix(r.Stdout, tt.first) {
				t.Errorf("stdout starts\n%.300s\nwant\n%s", r.Stdout, tt.first)
			}
			if r.Stderr != "" {
				t.Errorf("stderr without -v: %q", r.Stderr)
			}
		})
	}
}

func TestBinaryFIFOStatusFile(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, status.TestRestoreFile), 0o644); err != nil {
		t.Fatal(err)
	}
	r := plugintest.Run(t, "check_test_restore", nil, "--state-dir", dir, "-t", "1")
	want := "UNKNOWN: open " + filepath.Join(dir, status.TestRestoreFile) + ": not a regular file (it is a FIFO): move it away"
	if r.Code != 3 || !strings.HasPrefix(r.Stdout, want) {
		t.Errorf("exit %d: %s\nwant first line starting %q", r.Code, r.Stdout, want)
	}
	if r.Took > 500*time.Millisecond {
		t.Errorf("took %v: open(2) of a FIFO must not block", r.Took)
	}
}

func TestBinaryVerbose(t *testing.T) {
	r := plugintest.Run(t, "check_test_restore", nil, "--state-dir", writeState(t, restore(time.Now(), time.Hour)), "-v")
	if r.Code != 0 || !strings.Contains(r.Stderr, "reading ") {
		t.Errorf("exit %d stderr %q", r.Code, r.Stderr)
	}
}
