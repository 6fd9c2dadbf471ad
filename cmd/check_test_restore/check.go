package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/units"
)

// facts is everything gather found; evaluate judges it without I/O.
type facts struct {
	plugin.StatusRead // Path is test-restore.json
	Status            *status.TestRestore
	Alive             bool // a running job's pid is alive and is the job
}

// job is how this check words the test-restore job (the judgement is
// shared with check_backup_age, in plugin.AgeJob).
var job = plugin.AgeJob{
	Noun: "test restore", Died: "test restore died: the one", First: "the first one",
	Unit: "drym-test-restore", Fix: "run backup_runner test-restore",
}

// gather reads test-restore.json; nothing else.
func gather(ctx context.Context, a *args) facts {
	var tr status.TestRestore
	js := a.ReadJobStatus(ctx, status.TestRestoreFile, &tr)
	f := facts{StatusRead: js.StatusRead, Alive: js.Alive}
	if js.SettingsErr == nil && js.ReadErr == nil {
		f.Status = &tr
	}
	return f
}

// lastSuccess is when the last successful test restore finished: the run
// itself, or the one carried forward while a run is going or after a
// failure.
func lastSuccess(tr *status.TestRestore) time.Time {
	if tr.State == status.OK {
		return tr.Finished
	}
	return tr.LastSuccess
}

// evaluate judges the facts: pure, no I/O, no clock.
func evaluate(f facts, a args, now time.Time) plugin.Result {
	if r, done := unusable(f, now); done {
		return r
	}
	tr := f.Status
	last := lastSuccess(tr)
	var r plugin.Result
	judgeLastRun(&r, f, a.MaxRuntime, now)
	if last.IsZero() {
		job.JudgeNever(&r, jobRun(f), now)
		r.Addf("status file: %s (host %s, drym %s)", f.Path, tr.Host, tr.Version)
		return r
	}
	r.Addf("last successful test restore: %s", plugin.Stamp(last))
	age := job.JudgeAge(&r, last, a.Warning, a.Critical, now)
	r.Perfdata = append(r.Perfdata, plugin.Seconds("age", age.Seconds(), a.Warning.Range, a.Critical.Range))
	if tr.State != status.OK {
		// The details (which backup, how many files) are of this run, not
		// of the last success: only the age can be judged.
		if r.State == plugin.OK {
			r.Summary = fmt.Sprintf("last test restore succeeded %s ago; another is running (pid %d, for %s)", plugin.Ago(now, last), tr.PID, plugin.Ago(now, tr.Started))
		}
		trailer(&r, f, a)
		return r
	}
	if !tr.Verified {
		r.Raise(plugin.Warning, fmt.Sprintf("the last test restore verified nothing: backup %s has no manifest to check files against; run backup_runner backup, then %s",
			tr.Backup, job.Fix))
	}
	backupAge := judgeBackupAge(&r, tr, a.MaxBackupAge)
	judgeFuture(&r, tr)
	describe(&r, f, a, now, last, backupAge)
	return r
}

// unusable is the result when there is nothing to judge yet (see
// plugin.AgeJob.Unusable).
func unusable(f facts, now time.Time) (plugin.Result, bool) {
	if f.Status == nil {
		return job.Unusable(f.StatusRead, nil, status.Common{}, now)
	}
	return job.Unusable(f.StatusRead, &f.Status.Common, status.Common{Finished: lastSuccess(f.Status)}, now)
}

func jobRun(f facts) plugin.JobRun { return plugin.RunOf(&f.Status.Common, f.Alive) }

// judgeLastRun raises what the last run itself says: still running (too
// long, or its process gone) or failed (the first mismatch shown).
func judgeLastRun(r *plugin.Result, f facts, maxRuntime plugin.Duration, now time.Time) {
	tr := f.Status
	switch tr.State {
	case status.Running:
		job.JudgeRunning(r, jobRun(f), maxRuntime, now)
	case status.Failed:
		why := tr.Error
		if n := len(tr.Mismatches); n > 0 {
			why = fmt.Sprintf("%d file(s) differ from the manifest, first: %s", n, tr.Mismatches[0])
		}
		what := "test restore"
		if tr.Backup != "" {
			what += " of " + tr.Backup
		}
		job.JudgeFailed(r, what, why, jobRun(f), now)
		r.Addf("failed run: started %s, finished %s: %s", plugin.Stamp(tr.Started), plugin.Stamp(tr.Finished), tr.Error)
		for _, m := range tr.Mismatches {
			r.Addf("mismatch: %s", m)
		}
	}
}

// judgeBackupAge raises a tested backup that was already old when tested,
// or that is dated after the test started (a future-dated object was
// taken as the latest: the newest real backup was not tested). It returns
// the age, or -1 when it is unknown.
func judgeBackupAge(r *plugin.Result, tr *status.TestRestore, maxAge plugin.Duration) time.Duration {
	if tr.BackupTime.IsZero() {
		return -1
	}
	age, ok := plugin.PastAge(tr.Started, tr.BackupTime)
	if !ok {
		r.Raise(plugin.Unknown, fmt.Sprintf("the last test restore tested backup %s, dated %s after the test started: a future-dated object (planted, or made with a wrong clock) was taken as the latest, so the newest real backup was not tested: look at backup_runner list, fix the clock (timedatectl status), then %s",
			shortName(tr.Backup), plugin.HumanDuration((-age).Round(time.Second)), job.Fix))
		return -1
	}
	if age > maxAge.D() {
		r.Raise(plugin.Warning, fmt.Sprintf("the last test restore tested a backup that was %s old, older than --max-backup-age %s: newer backups are missing or not found; see check_backup_age, run backup_runner backup, then %s",
			plugin.HumanDuration(age.Round(time.Second)), maxAge, job.Fix))
	}
	r.Perfdata = append(r.Perfdata, plugin.Seconds("backup_age", age.Seconds(), plugin.Range{}, maxRange(maxAge.D())))
	return age
}

// judgeFuture raises the future-dated objects the test restore found in
// the destination (and never took as the latest).
func judgeFuture(r *plugin.Result, tr *status.TestRestore) {
	if tr.FutureCount == 0 {
		return
	}
	first := ""
	if len(tr.FutureObjects) > 0 {
		first = " (first: " + plugin.Shorten(tr.FutureObjects[0], plugin.MaxWord) + ")"
	}
	r.Raise(plugin.Warning, fmt.Sprintf("%d backup object(s) in %s are dated more than %s in the future%s: planted, or made with a wrong clock; they were not tested: look at them with backup_runner list and fix the clock (timedatectl status) of the host that made them",
		tr.FutureCount, tr.Destination, plugin.HumanDuration(status.ClockSkew), first))
	for _, o := range tr.FutureObjects {
		r.Addf("future-dated: %s", o)
	}
}

// describe sets the OK summary and the detail lines and perfdata of a
// successful run.
func describe(r *plugin.Result, f facts, a args, now, last time.Time, backupAge time.Duration) {
	tr := f.Status
	dur := max(tr.Finished.Sub(tr.Started), 0)
	if r.State == plugin.OK {
		made := ""
		if backupAge >= 0 {
			made = fmt.Sprintf(" (then %s old)", plugin.HumanDuration(backupAge.Round(time.Second)))
		}
		r.Summary = fmt.Sprintf("test restore %s ago verified %d files (%s) of backup %s%s, took %s",
			plugin.Ago(now, last), tr.Files, units.Bytes(tr.Bytes), shortName(tr.Backup), made, plugin.HumanDuration(dur.Round(time.Second)))
	}
	r.Addf("backup: %s from %s (made %s)", tr.Backup, tr.Destination, plugin.Stamp(tr.BackupTime))
	r.Addf("verified: %d files, %s; object %s, sha256 %s", tr.Files, units.Bytes(tr.Bytes), units.Bytes(tr.ObjectBytes),
		map[bool]string{true: "checked", false: "not checked"}[tr.SHA256Checked])
	if tr.Fingerprint != "" {
		r.Addf("decrypted with key %s", tr.Fingerprint)
	}
	switch {
	case tr.SignedBy != "":
		r.Addf("statement signed by %s", tr.SignedBy)
	case tr.Unsigned:
		r.Addf("statement unsigned: accepted with --allow-unsigned")
	}
	trailer(r, f, a)
	r.Perfdata = append(r.Perfdata,
		plugin.Count("files", tr.Files),
		plugin.Bytes("size", tr.Bytes),
		plugin.Seconds("duration", dur.Seconds(), plugin.Range{}, plugin.Range{}),
	)
}

// trailer ends the long output: thresholds and the status file.
func trailer(r *plugin.Result, f facts, a args) {
	r.Addf("thresholds: -w %s -c %s --max-backup-age %s --max-runtime %s", a.Warning, a.Critical, a.MaxBackupAge, a.MaxRuntime)
	r.Addf("status file: %s (host %s, drym %s)", f.Path, f.Status.Host, f.Status.Version)
}

// maxRange is the perfdata threshold "alert above d".
func maxRange(d time.Duration) plugin.Range {
	r, _ := plugin.ParseRange(fmt.Sprintf("%.0f", d.Seconds()))
	return r
}

// shortName drops the host directory and the suffix from an object name:
// "web1/20260310T010000Z-<hex>.tar.zst.gpg" → "20260310T010000Z-<hex>".
func shortName(obj string) string {
	if i := strings.LastIndexByte(obj, '/'); i >= 0 {
		obj = obj[i+1:]
	}
	return strings.TrimSuffix(obj, ".tar.zst.gpg")
}
