package plugin

import (
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/status"
)

var job = AgeJob{Noun: "backup", Died: "runner died: the backup", First: "the first backup", Unit: "drym-backup", Fix: "run backup_runner backup"}

func TestPastAge(t *testing.T) {
	then := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		age  time.Duration
		okay bool
	}{
		{then.Add(-time.Hour), time.Hour, true},
		{then, 0, true},
		{then.Add(status.ClockSkew), 0, true}, // within the skew: 0
		{then.Add(status.ClockSkew + time.Second), -status.ClockSkew - time.Second, false},
		{then.Add(3 * time.Hour), -3 * time.Hour, false},
	} {
		age, ok := PastAge(then, tc.t)
		if age != tc.age || ok != tc.okay {
			t.Errorf("PastAge(then, %s) = %s, %v; want %s, %v", tc.t, age, ok, tc.age, tc.okay)
		}
	}
}

func TestAgeJob(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var w, c AgeRange
	w.UnmarshalText([]byte("26h"))
	c.UnmarshalText([]byte("50h"))
	max := Duration(12 * time.Hour)
	for _, tc := range []struct {
		name  string
		judge func(r *Result)
		state State
		first string
	}{
		{"running fine", func(r *Result) {
			job.JudgeRunning(r, JobRun{State: status.Running, PID: 7, Started: now.Add(-time.Hour), Alive: true}, max, now)
		}, OK, ""},
		{"running long", func(r *Result) {
			job.JudgeRunning(r, JobRun{State: status.Running, PID: 7, Started: now.Add(-13 * time.Hour), Alive: true}, max, now)
		}, Warning, "backup running for 13h (pid 7), longer than --max-runtime 12h"},
		{"died", func(r *Result) {
			job.JudgeRunning(r, JobRun{State: status.Running, PID: 7, Started: now.Add(-time.Hour)}, max, now)
		}, Critical, "runner died: the backup started 1h ago (pid 7) is gone without finishing"},
		{"failed", func(r *Result) {
			job.JudgeFailed(r, "last backup", "disk full", JobRun{State: status.Failed, Finished: now.Add(-time.Minute)}, now)
		}, Critical, "last backup failed 1m ago: disk full; fix that and run backup_runner backup"},
		{"first running", func(r *Result) {
			job.JudgeNever(r, JobRun{State: status.Running, PID: 7, Started: now.Add(-time.Minute), Alive: true}, now)
		}, Critical, "no backup yet: the first backup is still running (pid 7, for 1m)"},
		{"never", func(r *Result) { job.JudgeNever(r, JobRun{State: status.Failed}, now) }, Critical, "no backup has ever succeeded: run backup_runner backup"},
		{"young", func(r *Result) { job.JudgeAge(r, now.Add(-time.Hour), w, c, now) }, OK, ""},
		{"old", func(r *Result) { job.JudgeAge(r, now.Add(-27*time.Hour), w, c, now) }, Warning, "last successful backup 1d3h ago, older than 26h (-w)"},
		{"too old", func(r *Result) { job.JudgeAge(r, now.Add(-51*time.Hour), w, c, now) }, Critical, "older than 50h (-c): run backup_runner backup and check the timer: systemctl status drym-backup.timer"},
	} {
		var r Result
		tc.judge(&r)
		if r.State != tc.state || !strings.Contains(r.Summary, tc.first) {
			t.Errorf("%s: %s %q, want %s %q", tc.name, r.State, r.Summary, tc.state, tc.first)
		}
	}
}

func TestHostMismatch(t *testing.T) {
	if _, bad := HostMismatch("/s/backup.json", "web1", "/etc/drym.toml", "web1"); bad {
		t.Error("same host is a mismatch")
	}
	if _, bad := HostMismatch("/s/backup.json", "web1", "", ""); bad {
		t.Error("no settings is a mismatch")
	}
	r, bad := HostMismatch("/s/backup.json", "db2", "/etc/drym.toml", "web1")
	if !bad || r.State != Unknown || !strings.Contains(r.Summary, `"db2"`) || !strings.Contains(r.Summary, `"web1"`) {
		t.Errorf("%v %+v", bad, r)
	}
}
