package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const (
	statePath = "/var/lib/drym/backup.json"
	objName   = "20260310T084550Z-0123456789abcdef0123456789abcdef.tar.zst.gpg"
	sha       = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// defaults parses argv (empty: the flag defaults) as the check would.
func defaults(t testing.TB, argv ...string) args { return plugintest.Defaults[args](t, argv...) }

// run is a finished backup run ending ago before now.
func run(ago time.Duration, bytesIn int64, obj string) status.BackupRun {
	fin := now.Add(-ago)
	return status.BackupRun{
		Started: fin.Add(-4*time.Minute - 10*time.Second), Finished: fin, State: status.OK,
		Object: obj, BytesIn: bytesIn, BytesOut: bytesIn * 4 / 5, Files: 14203, SHA256: sha,
	}
}

// backup is an ok backup.json as the runner writes it: the run, itself as
// last success and first in the history, one older run before it.
func backup(ago time.Duration) *status.Backup {
	r := run(ago, 1536<<20, objName)
	prev := run(ago+24*time.Hour, 1500<<20, "20260309T084550Z-ffffffffffffffffffffffffffffffff.tar.zst.gpg")
	b := &status.Backup{
		Common: status.Common{Schema: status.Schema, Job: status.JobBackup, Host: "web1", Version: "1.0.0",
			PID: 4242, State: status.OK, Started: r.Started, Finished: r.Finished},
		Destination: "s3://backups/drym", Object: r.Object, BytesIn: r.BytesIn, BytesOut: r.BytesOut,
		Files: r.Files, SHA256: r.SHA256,
	}
	b.LastSuccess = &r
	b.History = []status.BackupRun{r, prev}
	return b
}

// running turns b into a run in progress since ago, keeping its last success.
func running(b *status.Backup, since time.Duration) *status.Backup {
	last := *b.LastSuccess
	b.State, b.Started, b.Finished, b.PID = status.Running, now.Add(-since), time.Time{}, 5151
	b.Object, b.BytesIn, b.BytesOut, b.Files, b.SHA256 = "", 0, 0, 0, ""
	b.LastSuccess = &last
	return b
}

func failed(b *status.Backup, ago time.Duration, msg string) *status.Backup {
	last := *b.LastSuccess
	b.State, b.Started, b.Finished, b.Error = status.Failed, now.Add(-ago-time.Minute), now.Add(-ago), msg
	b.Object, b.BytesIn, b.BytesOut, b.Files, b.SHA256 = "", 0, 0, 0, ""
	b.LastSuccess = &last
	return b
}

func parseErr(data string) error {
	var b status.Backup
	err := status.Parse([]byte(data), &b)
	if err == nil {
		panic("parses")
	}
	return fmt.Errorf("%s: %w", statePath, err)
}

func ok(b *status.Backup) facts {
	return facts{StatusRead: plugin.StatusRead{Path: statePath}, Status: b}
}

func withRemote(f facts, rf remoteFacts) facts {
	if rf.Where == "" {
		rf.Where = "s3://backups/drym"
	}
	if rf.Object == "" {
		rf.Object = "web1/" + objName
	}
	f.Remote = &rf
	return f
}

// remoteName is the object of backup(3h) as the runner names it: made when
// the run started.
const remoteName = "20260310T085550Z-0123456789abcdef0123456789abcdef.tar.zst.gpg"

var remoteSize = int64(1536<<20) * 4 / 5

// remoteOK is a signed backup 3h old that --remote found as recorded, with
// mod applied to what the destination said.
func remoteOK(mod func(*remoteFacts)) facts {
	b := backup(3 * time.Hour)
	b.Object, b.LastSuccess.Object, b.History[0].Object = remoteName, remoteName, remoteName
	b.Signature, b.LastSuccess.Signature = remoteName+".sig", remoteName+".sig"
	rf := remoteFacts{
		Where: "s3://backups/drym", Object: "web1/" + remoteName, Size: remoteSize, ModTime: b.Finished.Add(-time.Second),
		Statement: evidence.Statement{Object: remoteName,
			Parsed: statement.Statement{Host: "web1", Object: remoteName, Size: remoteSize, SHA256: sha},
			Signer: "3F2A9C0D11B24E6F8A7B5C4D3E2F1A0B99887766", KeysFrom: "host key /etc/drym/host-key.pub.asc"},
	}
	if mod != nil {
		mod(&rf)
	}
	f := ok(b)
	f.Remote = &rf
	return f
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name  string // also the golden file
		f     facts
		argv  []string
		state plugin.State
		first string // substring of the first line
	}{
		{"ok", ok(backup(3 * time.Hour)), nil, plugin.OK, "last backup 3h ago: 1.2 GiB in 14203 files, took 4m10s, to s3://backups/drym"},
		{"ok_just_under_warning", ok(backup(26 * time.Hour)), nil, plugin.OK, "last backup 1d2h ago"},
		{"warning_age", ok(backup(27 * time.Hour)), nil, plugin.Warning, "last successful backup 1d3h ago, older than 26h (-w): run backup_runner backup"},
		{"critical_age", ok(backup(51 * time.Hour)), nil, plugin.Critical, "older than 50h (-c)"},
		{"critical_age_custom", ok(backup(3 * time.Hour)), []string{"-w", "1h", "-c", "2h"}, plugin.Critical, "older than 2h (-c)"},
		{"warning_age_range", ok(backup(3 * time.Hour)), []string{"-w", "@2h:4h"}, plugin.Warning, "between 2h and 4h old (-w)"},
		{"ok_running_alive", func() facts {
			f := ok(running(backup(20*time.Hour), time.Hour))
			f.Alive = true
			return f
		}(), nil, plugin.OK, "last backup 20h ago: 1.2 GiB in 14203 files, took 4m10s, to s3://backups/drym; a backup is running (pid 5151, for 1h)"},
		{"warning_running_long", func() facts {
			f := ok(running(backup(14*time.Hour), 13*time.Hour))
			f.Alive = true
			return f
		}(), nil, plugin.Warning, "backup running for 13h (pid 5151), longer than --max-runtime 12h"},
		{"critical_running_old_success", func() facts {
			f := ok(running(backup(60*time.Hour), 2*time.Hour))
			f.Alive = true
			return f
		}(), nil, plugin.Critical, "last successful backup 2d12h ago, older than 50h"},
		{"critical_runner_died", ok(running(backup(20*time.Hour), time.Hour)), nil, plugin.Critical, "runner died: the backup started 1h ago (pid 5151) is gone without finishing"},
		{"critical_first_running", func() facts {
			b := running(backup(time.Hour), 10*time.Minute)
			b.LastSuccess, b.History = nil, nil
			return facts{StatusRead: plugin.StatusRead{Path: statePath}, Status: b, Alive: true}
		}(), nil, plugin.Critical, "no backup yet: the first backup is still running (pid 5151, for 10m)"},
		{"critical_failed", ok(failed(backup(20*time.Hour), 30*time.Minute, "cannot upload to s3://backups/drym: AccessDenied")), nil, plugin.Critical,
			"last backup failed 30m ago: cannot upload to s3://backups/drym: AccessDenied; fix that and run backup_runner backup"},
		{"critical_failed_never_succeeded", func() facts {
			b := failed(backup(20*time.Hour), 30*time.Minute, "no such source /srv/www")
			b.LastSuccess, b.History = nil, nil
			return ok(b)
		}(), nil, plugin.Critical, "last backup failed 30m ago: no such source /srv/www"},
		{"warning_warnings", func() facts {
			b := backup(3 * time.Hour)
			b.Warnings, b.LastSuccess.Warnings = 4, 4
			b.WarningList = []string{"/srv/www/a: permission denied", "/srv/www/b: file changed as we read it", "/srv/db/c: vanished", "/srv/x: permission denied"}
			return ok(b)
		}(), nil, plugin.Warning, "last backup had 4 warning(s): /srv/www/a: permission denied; /srv/www/b: file changed as we read it; /srv/db/c: vanished; …"},
		{"warning_shrank", func() facts {
			b := backup(3 * time.Hour)
			b.History[1].BytesIn = 5 << 30
			return ok(b)
		}(), nil, plugin.Warning, "backup shrank 70% since the previous one (5.0 GiB → 1.5 GiB of data, over --shrink-warning 50%)"},
		{"ok_shrank_disabled", func() facts {
			b := backup(3 * time.Hour)
			b.History[1].BytesIn = 5 << 30
			return ok(b)
		}(), []string{"--shrink-warning", "0"}, plugin.OK, "last backup 3h ago"},
		{"worst_of_several", func() facts {
			b := backup(30 * time.Hour)
			b.History[1].BytesIn = 5 << 30
			b.Warnings, b.LastSuccess.Warnings = 1, 1
			b.WarningList = []string{"/srv/x: permission denied"}
			return withRemote(ok(b), remoteFacts{Err: fmt.Errorf("HeadObject s3://backups/drym/web1/x: %w", store.ErrNotFound)})
		}(), nil, plugin.Critical, "is missing from s3://backups/drym (deleted"},
		{"critical_not_set_up", facts{StatusRead: plugin.StatusRead{SettingsErr: &plugin.NotSetUpError{Missing: "no settings file /etc/drym/drym.toml"}}}, nil, plugin.Critical,
			"not set up: run backup_runner init (no settings file /etc/drym/drym.toml)"},
		{"unknown_bad_settings", facts{StatusRead: plugin.StatusRead{SettingsErr: errors.New("cannot use settings: /etc/drym/drym.toml:3: unknown key \"hots\"")}}, nil, plugin.Unknown,
			"cannot use settings: /etc/drym/drym.toml:3: unknown key"},
		{"critical_no_backup_yet", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: fmt.Errorf("%s: %w", statePath, status.ErrNotExist)}}, nil, plugin.Critical,
			"no backup yet: run backup_runner backup (no /var/lib/drym/backup.json)"},
		{"unknown_schema", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: parseErr(`{"schema": 2, "job": "backup"}`)}}, nil, plugin.Unknown,
			"unknown status schema 2 (this drym reads schema 1; upgrade drym on this host)"},
		{"unknown_corrupt", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: parseErr(`{"schema": 1, "job": "backup", "state": "ok", "started": "2026-03-10T08:00:00Z"`)}}, nil, plugin.Unknown,
			"status file is corrupt"},
		{"unknown_permission", facts{StatusRead: plugin.StatusRead{Path: statePath, ReadErr: &os.PathError{Op: "open", Path: statePath, Err: syscall.EACCES}}}, nil, plugin.Unknown,
			"permission denied (the check runs as user nagios"},
		{"unknown_future", ok(backup(-time.Hour)), nil, plugin.Unknown, "backup.json: timestamp in the future: 2026-03-10T12:55:50Z is 55m50s ahead of this host's clock (check NTP); fix the clock (timedatectl status)"},
		{"ok_small_skew", ok(backup(-2 * time.Minute)), nil, plugin.OK, "last backup 0s ago"},
		{"ok_remote", remoteOK(nil), []string{"--remote"}, plugin.OK,
			"last backup 3h ago: 1.2 GiB in 14203 files, took 4m10s, to s3://backups/drym; in the destination: size, time, signed statement"},
		{"ok_remote_verify", remoteOK(func(rf *remoteFacts) { rf.Verify = &verifyFacts{Bytes: remoteSize, SHA256: sha} }), []string{"--remote-verify"}, plugin.OK,
			"in the destination: size, time, signed statement, sha256 of all 1.2 GiB"},
		{"critical_remote_missing", withRemote(ok(backup(3*time.Hour)), remoteFacts{Err: fmt.Errorf("x: %w", store.ErrNotFound)}), []string{"--remote"}, plugin.Critical,
			"the last backup web1/" + objName + " is missing from s3://backups/drym (deleted"},
		{"critical_remote_size", withRemote(ok(backup(3*time.Hour)), remoteFacts{Size: 1000}), []string{"--remote"}, plugin.Critical,
			"is 1000 bytes, the runner recorded"},
		{"critical_remote_sha", remoteOK(func(rf *remoteFacts) { rf.Statement.Parsed.SHA256 = strings.Repeat("0", 64) }), []string{"--remote"}, plugin.Critical,
			"the object is not the one uploaded"},
		{"critical_remote_no_object", func() facts {
			f := remoteOK(func(rf *remoteFacts) { *rf = remoteFacts{Where: rf.Where, NoObject: true} })
			f.Status.Object, f.Status.LastSuccess.Object, f.Status.History[0].Object = "", "", ""
			return f
		}(), []string{"--remote"}, plugin.Critical, "backup.json records a successful backup without an object name"},
		{"critical_remote_name_time", remoteOK(func(rf *remoteFacts) { rf.Object = "web1/" + objName }), []string{"--remote"}, plugin.Critical,
			"the object web1/" + objName + " is not the recorded backup: its name says it was made 2026-03-10T08:45:50Z, but the run recorded started 2026-03-10T08:55:50Z"},
		{"critical_remote_stored_time", remoteOK(func(rf *remoteFacts) { rf.ModTime = now.Add(-30 * time.Hour) }), []string{"--remote"}, plugin.Critical,
			"is not the recorded backup: s3://backups/drym stored it 2026-03-09T06:00:00Z"},
		{"critical_remote_statement_missing", remoteOK(func(rf *remoteFacts) {
			rf.Statement = evidence.Statement{Object: remoteName, Err: fmt.Errorf("x: %w", store.ErrNotFound)}
		}), []string{"--remote"}, plugin.Critical,
			"the statement web1/" + remoteName + ".sha256 is missing"},
		{"warning_remote_sidecar_missing", func() facts {
			f := remoteOK(func(rf *remoteFacts) {
				rf.Statement = evidence.Statement{Object: remoteName, Err: fmt.Errorf("x: %w", store.ErrNotFound)}
			})
			f.Status.Signature, f.Status.LastSuccess.Signature = "", ""
			return f
		}(), []string{"--remote"}, plugin.Warning, "the statement web1/" + remoteName + ".sha256 is missing"},
		{"warning_remote_unsigned", func() facts {
			f := remoteOK(func(rf *remoteFacts) {
				rf.Statement.Parsed.Legacy, rf.Statement.Signer, rf.Statement.KeysFrom = true, "", ""
				rf.Statement.SigErr = fmt.Errorf("x: %w", store.ErrNotFound)
			})
			f.Status.Signature, f.Status.LastSuccess.Signature = "", ""
			return f
		}(), []string{"--remote"}, plugin.Warning, "the backup web1/" + remoteName + " is unsigned (a one-line sidecar, from a drym before signed statements)"},
		{"critical_remote_sig_missing", remoteOK(func(rf *remoteFacts) {
			rf.Statement.Signer, rf.Statement.SigErr = "", fmt.Errorf("x: %w", store.ErrNotFound)
		}), []string{"--remote"}, plugin.Critical, "the signature web1/" + remoteName + ".sig is missing"},
		{"critical_remote_sig_bad", remoteOK(func(rf *remoteFacts) {
			rf.Statement.Signer, rf.Statement.VerifyErr = "", fmt.Errorf("%w: openpgp: invalid signature: hash tag doesn't match", statement.ErrBadSignature)
		}), []string{"--remote"}, plugin.Critical, "web1/" + remoteName + ".sig does not verify against the host key"},
		{"critical_remote_sig_foreign", remoteOK(func(rf *remoteFacts) { rf.Statement.Signer, rf.Statement.VerifyErr = "", statement.ErrOtherKey }), []string{"--remote"}, plugin.Critical,
			"web1/" + remoteName + ".sig is signed by a key that is not the host key"},
		{"unknown_remote_no_keys", remoteOK(func(rf *remoteFacts) {
			rf.Statement.Signer = ""
			rf.Statement.VerifyErr = fmt.Errorf("%w: open /etc/drym/host-key.pub.asc: permission denied", evidence.ErrNoKeys)
		}), []string{"--remote"}, plugin.Unknown, "cannot check the signature web1/" + remoteName + ".sig"},
		{"critical_remote_verify_mismatch", remoteOK(func(rf *remoteFacts) { rf.Verify = &verifyFacts{Bytes: remoteSize, SHA256: strings.Repeat("1", 64)} }), []string{"--remote-verify"}, plugin.Critical,
			"--remote-verify: web1/" + remoteName + " in s3://backups/drym hashes to 1111111111111111… over"},
		{"unknown_remote_verify_read", remoteOK(func(rf *remoteFacts) { rf.Verify = &verifyFacts{Bytes: 1 << 20, Err: errors.New("unexpected EOF")} }), []string{"--remote-verify"}, plugin.Unknown,
			"--remote-verify: reading web1/" + remoteName + " failed after 1.0 MiB: unexpected EOF"},
		{"unknown_remote_denied", withRemote(ok(backup(3*time.Hour)), remoteFacts{Err: errors.New("HeadObject s3://backups/drym/web1/x: 403 Forbidden")}), []string{"--remote"}, plugin.Unknown,
			"cannot check the destination: HeadObject s3://backups/drym/web1/x: 403 Forbidden (check read_profile"},
		{"unknown_remote_dir_permission", withRemote(ok(backup(3*time.Hour)), remoteFacts{Where: "dir:///srv/backup", Err: &os.PathError{Op: "stat", Path: "/srv/backup/web1/" + objName, Err: syscall.EACCES}}), []string{"--remote"}, plugin.Unknown,
			"permission denied (the check runs as user nagios: make the destination readable by group nagios, or drop --remote)"},
		{"unknown_remote_dir_unreadable", withRemote(ok(backup(3*time.Hour)), remoteFacts{Where: "dir:///srv/backup", Err: errors.New("stat /srv/backup/web1/x: input/output error")}), []string{"--remote"}, plugin.Unknown,
			"input/output error (is it mounted? backup_runner list reads it the same way)"},
		{"unknown_remote_no_settings", withRemote(ok(backup(3*time.Hour)), remoteFacts{Err: errNoSettings}), []string{"--remote"}, plugin.Unknown,
			"--remote needs the settings file"},
		{"unknown_host_mismatch", func() facts {
			f := ok(backup(3 * time.Hour))
			f.Status.Host = "db2"
			f.SettingsPath, f.SettingsHost = "/etc/drym/drym.toml", "web1"
			return f
		}(), nil, plugin.Unknown, `/var/lib/drym/backup.json is of host "db2" but the settings /etc/drym/drym.toml are for host "web1"`},
		{"warning_warnings_changed", func() facts {
			b := backup(3 * time.Hour)
			b.Warnings, b.LastSuccess.Warnings = 1, 1
			b.WarningList = []string{"/var/log/syslog: file grew while it was read (archived its first 1048576 bytes)"}
			return ok(b)
		}(), nil, plugin.Warning, "files that changed while read are in the backup as read, possibly inconsistent"},
		{"warning_warnings_long_path", func() facts {
			b := backup(3 * time.Hour)
			b.Warnings, b.LastSuccess.Warnings = 1, 1
			b.WarningList = []string{"/srv/" + strings.Repeat("very-long-directory-name/", 160) + "file: permission denied"}
			return ok(b)
		}(), nil, plugin.Warning, "(files it could not read are not in the backup): fix them, see backup_runner status"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if seen[tt.name] {
				t.Fatal("duplicate name")
			}
			seen[tt.name] = true
			r := evaluate(tt.f, defaults(t, tt.argv...), now)
			plugintest.Judge(t, tt.name, r, plugintest.Verdict{State: tt.state, First: tt.first})
		})
	}
}

// ---- the built binary ----

func TestMain(m *testing.M) { plugintest.Main(m) }

func runBin(t *testing.T, env []string, argv ...string) plugintest.Result {
	t.Helper()
	return plugintest.Run(t, "check_backup_age", env, argv...)
}

// liveBackup is an ok backup relative to the real clock: the fixture
// shifted from the fixed test time to now.
func liveBackup(ago time.Duration) *status.Backup {
	b := backup(ago)
	d := time.Since(now)
	shift := func(r *status.BackupRun) { r.Started, r.Finished = r.Started.Add(d), r.Finished.Add(d) }
	b.Started, b.Finished = b.Started.Add(d), b.Finished.Add(d)
	shift(b.LastSuccess)
	for i := range b.History {
		shift(&b.History[i])
	}
	return b
}

func writeState(t *testing.T, b *status.Backup) string {
	t.Helper()
	dir := t.TempDir()
	if b != nil {
		if err := status.Write(filepath.Join(dir, status.BackupFile), b); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBinary(t *testing.T) {
	deadPID := func() int {
		c := exec.Command("true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		return c.Process.Pid
	}
	corrupt := t.TempDir()
	if err := os.WriteFile(filepath.Join(corrupt, status.BackupFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		dir   string
		argv  []string
		code  int
		first string
	}{
		{"ok", writeState(t, liveBackup(3*time.Hour)), nil, 0, "OK: last backup 3h ago"},
		{"warning", writeState(t, liveBackup(27*time.Hour)), nil, 1, "WARNING: last successful backup 1d3h ago, older than 26h (-w)"},
		{"critical", writeState(t, liveBackup(51*time.Hour)), nil, 2, "CRITICAL: last successful backup 2d3h ago, older than 50h (-c)"},
		{"critical failed", writeState(t, func() *status.Backup {
			// An hour ago: ages under an hour are printed to the second,
			// and the table is written before the binaries run.
			b := failed(liveBackup(3*time.Hour), 0, "disk full")
			b.Started, b.Finished = time.Now().Add(-time.Hour-time.Minute), time.Now().Add(-time.Hour)
			return b
		}()), nil, 2, "CRITICAL: last backup failed 1h ago: disk full"},
		{"running live pid", writeState(t, func() *status.Backup {
			b := running(liveBackup(3*time.Hour), 0)
			b.PID, b.Started = os.Getpid(), time.Now()
			return b
		}()), nil, 0, "OK: last backup 3h ago"},
		{"running dead pid", writeState(t, func() *status.Backup {
			b := running(liveBackup(3*time.Hour), 0)
			b.PID, b.Started = deadPID(), time.Now()
			return b
		}()), nil, 2, "CRITICAL: runner died"},
		{"no backup yet", writeState(t, nil), nil, 2, "CRITICAL: no backup yet: run backup_runner backup"},
		{"not set up", "", nil, 2, "CRITICAL: not set up: run backup_runner init (no settings file /nonexistent/drym.toml)"},
		{"no state dir", "/nonexistent/state", nil, 2, "CRITICAL: not set up: run backup_runner init (no state directory /nonexistent/state)"},
		{"corrupt", corrupt, nil, 3, "UNKNOWN: " + filepath.Join(corrupt, status.BackupFile) + ": status file is corrupt"},
		{"bad flag", "", []string{"--bogus"}, 3, "UNKNOWN: bad command line: unknown argument --bogus"},
		{"bad threshold", "", []string{"-w", "tomorrow"}, 3, "UNKNOWN: bad command line: error processing -w: bad threshold \"tomorrow\""},
		{"bad timeout", "", []string{"-t", "-1"}, 3, "UNKNOWN: bad command line:"},
		{"zero timeout", writeState(t, liveBackup(3*time.Hour)), []string{"-t", "0"}, 3, "UNKNOWN: bad command line: -t/--timeout must be longer than 0"},
		{"help", "", []string{"--help"}, 0, "check_backup_age: is the last drym backup"},
		{"version", "", []string{"--version"}, 0, "check_backup_age drym "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := tt.argv
			if tt.dir != "" {
				argv = append([]string{"--state-dir", tt.dir}, argv...)
			}
			r := runBin(t, nil, argv...)
			if r.Code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", r.Code, tt.code, r.Stdout)
			}
			if !strings.HasPrefix(r.Stdout, tt.first) {
				t.Errorf("stdout starts\n%.200s\nwant\n%s", r.Stdout, tt.first)
			}
			if r.Stderr != "" {
				t.Errorf("stderr without -v: %q", r.Stderr)
			}
		})
	}
}

func TestBinaryVerbose(t *testing.T) {
	dir := writeState(t, liveBackup(time.Hour))
	r := runBin(t, nil, "--state-dir", dir, "-v")
	if r.Code != 0 || !strings.Contains(r.Stderr, "reading "+filepath.Join(dir, status.BackupFile)) {
		t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// A FIFO in place of the status file is refused at once (open(2) of a FIFO
// would block until a writer came).
func TestBinaryFIFOStatusFile(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, status.BackupFile), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, nil, "--state-dir", dir, "-t", "1")
	want := "UNKNOWN: open " + filepath.Join(dir, status.BackupFile) + ": not a regular file (it is a FIFO): move it away"
	if r.Code != 3 || !strings.HasPrefix(r.Stdout, want) {
		t.Errorf("exit %d: %s\nwant first line starting %q", r.Code, r.Stdout, want)
	}
	if r.Took > 500*time.Millisecond {
		t.Errorf("took %v: open(2) of a FIFO must not block", r.Took)
	}
}

func writeConfig(t *testing.T, stateDir, destination, extra string) string {
	t.Helper()
	return writeSettings(t, "", stateDir, destination, extra)
}

// writeSettings writes drym.toml for web1; keyFile may be "" (the default).
func writeSettings(t *testing.T, keyFile, stateDir, destination, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drym.toml")
	top := ""
	if keyFile != "" {
		top = fmt.Sprintf("key_file = %q\n", keyFile)
	}
	cfg := fmt.Sprintf("host = \"web1\"\nsources = [\"/etc\"]\nstate_dir = %q\n%s[destination]\nurl = %q\n%s", stateDir, top, destination, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// signedHost is web1 with a real host key, a backup.json of a signed
// backup made ago before now, and what the runner stores for it: the
// object, its statement and the statement's signature.
type signedHost struct {
	key            *openpgp.Entity
	keyFile, state string
	name           string // the object's name
	body           []byte
	status         *status.Backup
}

func newSignedHost(t *testing.T, ago time.Duration, size int) *signedHost {
	t.Helper()
	key, err := crypt.Generate("web1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := &signedHost{key: key, keyFile: filepath.Join(dir, "host-key.asc")}
	if err := crypt.WriteKeyFiles(key, h.keyFile, config.PublicKeyPath(h.keyFile)); err != nil {
		t.Fatal(err)
	}
	b := liveBackup(ago)
	h.name = b.Started.UTC().Format("20060102T150405Z") + "-0123456789abcdef0123456789abcdef.tar.zst.gpg"
	h.body = bytes.Repeat([]byte("x"), size)
	sum := sha256.Sum256(h.body)
	b.Object, b.LastSuccess.Object, b.History[0].Object = h.name, h.name, h.name
	b.BytesOut, b.LastSuccess.BytesOut, b.History[0].BytesOut = int64(size), int64(size), int64(size)
	b.SHA256, b.LastSuccess.SHA256, b.History[0].SHA256 = hex.EncodeToString(sum[:]), hex.EncodeToString(sum[:]), hex.EncodeToString(sum[:])
	b.Signature, b.LastSuccess.Signature = h.name+".sig", h.name+".sig"
	h.status = b
	h.state = writeState(t, b)
	return h
}

// objects returns what the runner stores, by name: the object, its
// statement, and the statement signed by signer.
func (h *signedHost) objects(t *testing.T, signer *openpgp.Entity) map[string][]byte {
	t.Helper()
	st := statement.Statement{Host: "web1", Object: h.name, Size: int64(len(h.body)), SHA256: h.status.SHA256}
	sig, err := statement.Sign(st.Marshal(), signer)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{h.name: h.body, h.name + ".sha256": st.Marshal(), h.name + ".sig": sig}
}

// --remote against a dir destination: the real store code, the real
// signed statement.
func TestBinaryRemoteDir(t *testing.T) {
	dest := t.TempDir()
	h := newSignedHost(t, 2*time.Hour, 4096)
	cfg := writeSettings(t, h.keyFile, h.state, "dir://"+dest, "")
	hostDir := filepath.Join(dest, "web1")
	os.MkdirAll(hostDir, 0o755)
	obj := filepath.Join(hostDir, h.name)
	// Files made as the runner makes them: stored before the run ended.
	stored := h.status.Finished.Add(-time.Second)
	write := func(files map[string][]byte) {
		for name, data := range files {
			p := filepath.Join(hostDir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, stored, stored)
		}
	}
	write(h.objects(t, h.key))
	intruder, _ := crypt.Generate("web1")
	steps := []struct {
		name  string
		prep  func()
		argv  []string
		code  int
		first string
	}{
		{"present", func() {}, nil, 0, "OK: last backup 2h ago: 4.0 KiB in 14203 files, took 4m10s, to s3://backups/drym; in the destination: size, time, signed statement"},
		{"verify", func() {}, []string{"--remote-verify"}, 0, "; in the destination: size, time, signed statement, sha256 of all 4.0 KiB"},
		{"content altered, same size", func() {
			write(map[string][]byte{h.name: bytes.Repeat([]byte("y"), 4096)})
		}, []string{"--remote-verify"}, 2, "CRITICAL: --remote-verify: web1/" + h.name + " in dir://" + dest + " hashes to"},
		{"foreign signature", func() {
			write(h.objects(t, h.key))
			write(map[string][]byte{h.name + ".sig": h.objects(t, intruder)[h.name+".sig"]})
		}, nil, 2, "CRITICAL: web1/" + h.name + ".sig is signed by a key that is not the host key"},
		{"signature missing", func() { os.Remove(obj + ".sig") }, nil, 2, "CRITICAL: the signature web1/" + h.name + ".sig is missing from dir://" + dest},
		{"statement missing", func() { os.Remove(obj + ".sha256") }, nil, 2, "CRITICAL: the statement web1/" + h.name + ".sha256 is missing from dir://" + dest},
		{"truncated", func() { write(h.objects(t, h.key)); write(map[string][]byte{h.name: h.body[:10]}) }, nil, 2, "CRITICAL: the last backup web1/" + h.name + " in dir://" + dest + " is 10 bytes"},
		{"stored long after the run", func() {
			write(h.objects(t, h.key))
			later := time.Now().Add(time.Hour)
			os.Chtimes(obj, later, later)
		}, nil, 2, "CRITICAL: the object web1/" + h.name + " is not the recorded backup: dir://" + dest + " stored it"},
		{"deleted", func() { os.Remove(obj) }, nil, 2, "CRITICAL: the last backup web1/" + h.name + " is missing from dir://" + dest},
	}
	for _, s := range steps {
		s.prep()
		r := runBin(t, nil, append([]string{"--config", cfg, "--remote"}, s.argv...)...)
		if r.Code != s.code || !strings.Contains(r.First(), s.first) {
			t.Errorf("%s: exit %d (want %d):\n%s\nwant\n%s", s.name, r.Code, s.code, r.Stdout, s.first)
		}
	}
	// Without --remote the deleted object goes unnoticed: that is what
	// --remote is for.
	if r := runBin(t, nil, "--config", cfg); r.Code != 0 {
		t.Errorf("without --remote: exit %d: %s", r.Code, r.Stdout)
	}
}

// A recorded success must match an object of its own time: a status file
// that claims a success without an object, or names an object of another
// time, is CRITICAL with --remote.
func TestBinaryRemoteRecordedRun(t *testing.T) {
	dest := t.TempDir()
	h := newSignedHost(t, 2*time.Hour, 100)
	os.MkdirAll(filepath.Join(dest, "web1"), 0o755)
	stored := h.status.Finished.Add(-time.Second)
	for name, data := range h.objects(t, h.key) {
		os.WriteFile(filepath.Join(dest, "web1", name), data, 0o644)
		os.Chtimes(filepath.Join(dest, "web1", name), stored, stored)
	}
	for _, tc := range []struct {
		name  string
		mod   func(b *status.Backup)
		first string
	}{
		{"no object", func(b *status.Backup) { b.Object, b.LastSuccess.Object = "", "" },
			"CRITICAL: backup.json records a successful backup without an object name"},
		{"object of another time", func(b *status.Backup) {
			d := -3 * 24 * time.Hour
			b.Started, b.Finished = b.Started.Add(d), b.Finished.Add(d)
			b.LastSuccess.Started, b.LastSuccess.Finished = b.Started, b.Finished
		}, "is not the recorded backup: its name says it was made"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := *h.status
			last := *b.LastSuccess
			b.LastSuccess = &last
			tc.mod(&b)
			cfg := writeSettings(t, h.keyFile, writeState(t, &b), "dir://"+dest, "")
			r := runBin(t, nil, "--config", cfg, "--remote", "-c", "30d", "-w", "30d")
			if r.Code != 2 || !strings.Contains(r.First(), tc.first) {
				t.Fatalf("exit %d:\n%s", r.Code, r.Stdout)
			}
		})
	}
}

// Two settings files sharing one state dir: the status file names the
// other host, and the check says so instead of judging it.
func TestBinaryHostMismatch(t *testing.T) {
	b := liveBackup(time.Hour)
	b.Host = "db2"
	state := writeState(t, b)
	cfg := writeConfig(t, state, "dir:///srv/backup", "")
	r := runBin(t, nil, "--config", cfg)
	if r.Code != 3 || !strings.Contains(r.First(), `is of host "db2" but the settings `+cfg+` are for host "web1"`) {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stdout)
	}
}

// --remote against an endpoint that accepts connections and
// never answers, with -t 2, exits 3 within 3 s.
func TestBinaryRemoteHungEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 64)
	defer func() {
		ln.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c: // hold it open, never answer
			default:
				c.Close()
			}
		}
	}()
	state := writeState(t, liveBackup(time.Hour))
	cfg := writeConfig(t, state, "s3://backups/drym", fmt.Sprintf("endpoint = \"http://%s\"\npath_style = true\n", ln.Addr()))
	r := runBin(t, []string{"AWS_CA_BUNDLE=", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"},
		"--config", cfg, "--remote", "-t", "2")
	if r.Code != 3 || !strings.HasPrefix(r.Stdout, "UNKNOWN: timed out after 2s asking s3://backups/drym/web1/ for "+objName) {
		t.Errorf("exit %d: %s", r.Code, r.Stdout)
	}
	if r.Took > 3*time.Second {
		t.Errorf("took %v with -t 2", r.Took)
	}
}

// --remote against each real S3 server on 127.0.0.1, reading with
// the read-only monitoring user's profile.
func TestBinaryRemoteS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts S3 servers")
	}
	testutil.ForEachS3(t, testBinaryRemoteS3)
}

func testBinaryRemoteS3(t *testing.T, s *testutil.S3Server) {
	ctx := context.Background()
	// Recorded a minute ago, stored now: within the clock skew allowed.
	h := newSignedHost(t, time.Minute, 1000)
	for name, data := range h.objects(t, h.key) {
		k := "drym/web1/" + name
		if _, err := s.Root().PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: &k, Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	remote := fmt.Sprintf("endpoint = %q\npath_style = true\nprofile = %q\nread_profile = %q\n", s.Endpoint, s.PutProfile, s.ReadProfile)
	cfg := writeSettings(t, h.keyFile, h.state, "s3://"+s.Bucket+"/drym", remote)
	// s.Env() drops the machine's AWS_* variables, but plugintest.Run starts
	// from os.Environ(): blank AWS_CA_BUNDLE explicitly. The store honours a
	// CA bundle (internal/store TestS3WithCABundle), so one set on the
	// machine running the tests would be loaded here, and one that cannot
	// be read fails the SDK's settings before any request; this plain-HTTP
	// endpoint needs none.
	env := append(s.Env(), "AWS_CA_BUNDLE=")

	r := runBin(t, env, "--config", cfg, "--remote")
	if r.Code != 0 || !strings.Contains(r.First(), "in the destination: size, time, signed statement") ||
		!strings.Contains(r.Stdout, "destination: s3://"+s.Bucket+"/drym holds web1/"+h.name+": 1000 bytes as recorded") {
		t.Errorf("present: exit %d:\n%s", r.Code, r.Stdout)
	}

	// The put-only backup credentials cannot read: UNKNOWN, not OK.
	putCfg := writeSettings(t, h.keyFile, h.state, "s3://"+s.Bucket+"/drym",
		fmt.Sprintf("endpoint = %q\npath_style = true\nread_profile = %q\n", s.Endpoint, s.PutProfile))
	if r := runBin(t, env, "--config", putCfg, "--remote"); r.Code != 3 || !strings.HasPrefix(r.Stdout, "UNKNOWN: cannot check the destination:") {
		t.Errorf("put-only reader: exit %d:\n%s", r.Code, r.Stdout)
	}

	key := "drym/web1/" + h.name
	if _, err := s.Root().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	r = runBin(t, env, "--config", cfg, "--remote")
	if r.Code != 2 || !strings.HasPrefix(r.Stdout, "CRITICAL: the last backup web1/"+h.name+" is missing from s3://"+s.Bucket+"/drym") {
		t.Errorf("deleted: exit %d:\n%s", r.Code, r.Stdout)
	}
}

// remoteError's precedence: a missing object is CRITICAL; anything that
// kept the check from looking is UNKNOWN with the fix for its cause.
func TestRemoteError(t *testing.T) {
	for _, tc := range []struct {
		where string
		err   error
		state plugin.State
		hint  string
	}{
		{"s3://b/p", nil, plugin.OK, ""},
		{"s3://b/p", fmt.Errorf("x: %w", store.ErrNotFound), plugin.Critical, "is missing from"},
		{"dir:///srv", fmt.Errorf("x: %w", store.ErrNotFound), plugin.Critical, "is missing from"},
		{"s3://b/p", errNoSettings, plugin.Unknown, "--remote needs the settings file"},
		{"dir:///srv", &os.PathError{Op: "stat", Path: "/srv/x", Err: syscall.EACCES}, plugin.Unknown, "readable by group nagios"},
		{"s3://b/p", errors.New("denied"), plugin.Unknown, "check read_profile"},
		{"dir:///srv", errors.New("input/output error"), plugin.Unknown, "is it mounted?"},
	} {
		s, msg, bad := remoteError(&remoteFacts{Where: tc.where, Object: "web1/x", Err: tc.err})
		if s != tc.state || bad != (tc.err != nil) || !strings.Contains(msg, tc.hint) {
			t.Errorf("%s %v: %s %q", tc.where, tc.err, s, msg)
		}
	}
}
