package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/units"
)

// facts is everything gather found; evaluate judges it without I/O.
type facts struct {
	SettingsErr error
	Path        string // test-restore.json
	ReadErr     error
	Status      *status.TestRestore
	Alive       bool // a running job's pid is alive and is the job
}

// gather reads test-restore.json; nothing else.
func gather(ctx context.Context, a *args) facts {
	var f facts
	_, stateDir, err := a.Settings(ctx)
	if err != nil {
		f.SettingsErr = err
		return f
	}
	f.Path = filepath.Join(stateDir, status.TestRestoreFile)
	plugin.Doing(ctx, "reading %s", f.Path)
	var tr status.TestRestore
	if f.ReadErr = status.Read(f.Path, &tr); f.ReadErr != nil {
		return f
	}
	f.Status = &tr
	if tr.State == status.Running {
		plugin.Doing(ctx, "looking for test restore pid %d", tr.PID)
		f.Alive = status.JobAlive(tr.PID, tr.Started)
	}
	return f
}

// evaluate judges the facts: pure, no I/O, no clock.
func evaluate(f facts, a args, now time.Time) plugin.Result {
	const fix = "run backup_runner test-restore"
	if f.SettingsErr != nil {
		return plugin.SettingsResult(f.SettingsErr)
	}
	if f.ReadErr != nil {
		return plugin.StatusError(f.ReadErr, "no test restore yet", fix)
	}
	tr := f.Status
	if err := status.CheckClock(tr.Common, now); err != nil {
		return plugin.StatusError(fmt.Errorf("%s: %w", f.Path, err), "", fix)
	}
	// The time the last successful test restore finished: the run itself,
	// or the one carried forward while a run is going or after a failure.
	last := tr.LastSuccess
	if tr.State == status.OK {
		last = tr.Finished
	}
	if err := status.CheckClock(status.Common{Finished: last}, now); err != nil {
		return plugin.StatusError(fmt.Errorf("%s: last success: %w", f.Path, err), "", fix)
	}
	ago := func(t time.Time) string { return plugin.HumanDuration(max(now.Sub(t), 0).Round(time.Second)) }
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }

	var r plugin.Result
	switch tr.State {
	case status.Running:
		runtime := max(now.Sub(tr.Started), 0).Round(time.Second)
		switch {
		case !f.Alive:
			r.Raise(plugin.Critical, fmt.Sprintf("test restore died: the one started %s ago (pid %d) is gone without finishing (killed, OOM or reboot?): %s and see journalctl -u drym-test-restore",
				ago(tr.Started), tr.PID, fix))
		case runtime > a.MaxRuntime.D():
			r.Raise(plugin.Warning, fmt.Sprintf("test restore running for %s (pid %d), longer than --max-runtime %s: see what it is doing with backup_runner status",
				plugin.HumanDuration(runtime), tr.PID, a.MaxRuntime))
		}
		r.Addf("test restore running since %s (pid %d, %s)", stamp(tr.Started), tr.PID, map[bool]string{true: "alive", false: "dead"}[f.Alive])
	case status.Failed:
		what := tr.Error
		if n := len(tr.Mismatches); n > 0 {
			what = fmt.Sprintf("%d file(s) differ from the manifest, first: %s", n, tr.Mismatches[0])
		}
		of := ""
		if tr.Backup != "" {
			of = " of " + tr.Backup
		}
		r.Raise(plugin.Critical, fmt.Sprintf("test restore%s failed %s ago: %s; fix that and %s", of, ago(tr.Finished), what, fix))
		r.Addf("failed run: started %s, finished %s: %s", stamp(tr.Started), stamp(tr.Finished), tr.Error)
		for _, m := range tr.Mismatches {
			r.Addf("mismatch: %s", m)
		}
	}

	if last.IsZero() {
		if tr.State == status.Running && f.Alive {
			r.Raise(plugin.Critical, fmt.Sprintf("no test restore yet: the first one is still running (pid %d, for %s); wait for it, or see backup_runner status",
				tr.PID, ago(tr.Started)))
		} else {
			r.Raise(plugin.Critical, "no test restore has ever succeeded: "+fix)
		}
		r.Addf("status file: %s (host %s, drym %s)", f.Path, tr.Host, tr.Version)
		return r
	}

	age := max(now.Sub(last), 0)
	r.Addf("last successful test restore: %s", stamp(last))
	switch {
	case a.Critical.AlertAge(age):
		r.Raise(plugin.Critical, fmt.Sprintf("last successful test restore %s ago, %s (-c): %s and check the timer: systemctl status drym-test-restore.timer",
			ago(last), a.Critical.Describe(), fix))
	case a.Warning.AlertAge(age):
		r.Raise(plugin.Warning, fmt.Sprintf("last successful test restore %s ago, %s (-w): %s and check the timer: systemctl status drym-test-restore.timer",
			ago(last), a.Warning.Describe(), fix))
	}
	r.Perfdata = append(r.Perfdata, plugin.Seconds("age", age.Seconds(), a.Warning.Range, a.Critical.Range))

	if tr.State != status.OK {
		// The details (which backup, how many files) are of this run, not
		// of the last success: only the age can be judged.
		if r.State == plugin.OK {
			r.Summary = fmt.Sprintf("last test restore succeeded %s ago; another is running (pid %d, for %s)", ago(last), tr.PID, ago(tr.Started))
		}
		r.Addf("thresholds: -w %s -c %s --max-backup-age %s --max-runtime %s", a.Warning, a.Critical, a.MaxBackupAge, a.MaxRuntime)
		r.Addf("status file: %s (host %s, drym %s)", f.Path, tr.Host, tr.Version)
		return r
	}

	if !tr.Verified {
		r.Raise(plugin.Warning, fmt.Sprintf("the last test restore verified nothing: backup %s has no manifest to check files against; run backup_runner backup, then %s",
			tr.Backup, fix))
	}
	backupAge := time.Duration(-1)
	if !tr.BackupTime.IsZero() {
		backupAge = max(tr.Started.Sub(tr.BackupTime), 0)
		if backupAge > a.MaxBackupAge.D() {
			r.Raise(plugin.Warning, fmt.Sprintf("the last test restore tested a backup that was %s old, older than --max-backup-age %s: newer backups are missing or not found; see check_backup_age, run backup_runner backup, then %s",
				plugin.HumanDuration(backupAge.Round(time.Second)), a.MaxBackupAge, fix))
		}
		r.Perfdata = append(r.Perfdata, plugin.Seconds("backup_age", backupAge.Seconds(), plugin.Range{}, maxRange(a.MaxBackupAge.D())))
	}

	dur := max(tr.Finished.Sub(tr.Started), 0)
	if r.State == plugin.OK {
		made := ""
		if backupAge >= 0 {
			made = fmt.Sprintf(" (then %s old)", plugin.HumanDuration(backupAge.Round(time.Second)))
		}
		r.Summary = fmt.Sprintf("test restore %s ago verified %d files (%s) of backup %s%s, took %s",
			ago(last), tr.Files, units.Bytes(tr.Bytes), shortName(tr.Backup), made, plugin.HumanDuration(dur.Round(time.Second)))
	}
	r.Addf("backup: %s from %s (made %s)", tr.Backup, tr.Destination, stamp(tr.BackupTime))
	r.Addf("verified: %d files, %s; object %s, sha256 %s", tr.Files, units.Bytes(tr.Bytes), units.Bytes(tr.ObjectBytes),
		map[bool]string{true: "checked", false: "not checked"}[tr.SHA256Checked])
	if tr.Fingerprint != "" {
		r.Addf("decrypted with key %s", tr.Fingerprint)
	}
	r.Addf("thresholds: -w %s -c %s --max-backup-age %s --max-runtime %s", a.Warning, a.Critical, a.MaxBackupAge, a.MaxRuntime)
	r.Addf("status file: %s (host %s, drym %s)", f.Path, tr.Host, tr.Version)
	r.Perfdata = append(r.Perfdata,
		plugin.Count("files", tr.Files),
		plugin.Bytes("size", tr.Bytes),
		plugin.Seconds("duration", dur.Seconds(), plugin.Range{}, plugin.Range{}),
	)
	return r
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
