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
	plugin.StatusRead // Path is backup.json
	Status            *status.Backup
	Alive             bool // a running job's pid is alive and is the job
	// Remote is set when --remote was asked for (or the store could not
	// be used).
	Remote *remoteFacts
}

// job is how this check words the backup job (the judgement is shared with
// check_test_restore, in plugin.AgeJob).
var job = plugin.AgeJob{
	Noun: "backup", Died: "runner died: the backup", First: "the first backup",
	Unit: "drym-backup", Fix: "run backup_runner backup",
}

// judged returns the run a backup's age is measured by: the run itself when
// it succeeded, else the last success carried in the file (nil if none).
func judged(b *status.Backup) *status.BackupRun {
	if b.State == status.OK {
		r := b.Run()
		return &r
	}
	return b.LastSuccess
}

// gather reads backup.json (and, with --remote, asks the destination about
// the recorded object: a HEAD and two small GETs however many backups are
// stored).
func gather(ctx context.Context, a *args) facts {
	var b status.Backup
	js := a.ReadJobStatus(ctx, status.BackupFile, &b)
	f := facts{StatusRead: js.StatusRead, Alive: js.Alive}
	if js.SettingsErr != nil || js.ReadErr != nil {
		return f
	}
	f.Status = &b
	cfg := js.Settings
	if a.Remote || a.RemoteVerify {
		if run := judged(&b); run != nil && (cfg == nil || b.Host == cfg.Host) {
			f.Remote = gatherRemote(ctx, cfg, run, a.RemoteVerify)
		}
	}
	return f
}

// evaluate judges the facts: pure, no I/O, no clock.
func evaluate(f facts, a args, now time.Time) plugin.Result {
	if r, done := unusable(f, now); done {
		return r
	}
	b := f.Status
	run := judged(b)
	var r plugin.Result
	judgeLastRun(&r, f, a.MaxRuntime, now)
	if run == nil {
		job.JudgeNever(&r, jobRun(f), now)
		r.Addf("status file: %s (host %s, drym %s)", f.Path, b.Host, b.Version)
		return r
	}
	r.Addf("last success: %s, object %s", plugin.Stamp(run.Finished), run.Object)
	r.Addf("size: %s stored, %s of data, %d files", units.Bytes(run.BytesOut), units.Bytes(run.BytesIn), run.Files)
	if run.SHA256 != "" {
		r.Addf("sha256: %s", run.SHA256)
	}
	age := job.JudgeAge(&r, run.Finished, a.Warning, a.Critical, now)
	judgeWarnings(&r, b, run)
	judgeShrink(&r, b, run, a.ShrinkWarning)
	proven := ""
	if f.Remote != nil {
		proven = checkRemote(&r, f.Remote, run)
	}
	checkAppendOnly(&r, b)
	finish(&r, f, a, run, age, proven, now)
	return r
}

// unusable is the result when there is nothing to judge yet (see
// plugin.AgeJob.Unusable).
func unusable(f facts, now time.Time) (plugin.Result, bool) {
	if f.Status == nil {
		return job.Unusable(f.StatusRead, nil, status.Common{}, now)
	}
	var last status.Common
	if run := judged(f.Status); run != nil {
		last = status.Common{Started: run.Started, Finished: run.Finished}
	}
	return job.Unusable(f.StatusRead, &f.Status.Common, last, now)
}

func jobRun(f facts) plugin.JobRun { return plugin.RunOf(&f.Status.Common, f.Alive) }

// judgeLastRun raises what the last run itself says: still running (too
// long, or its process gone) or failed.
func judgeLastRun(r *plugin.Result, f facts, maxRuntime plugin.Duration, now time.Time) {
	b := f.Status
	switch b.State {
	case status.Running:
		job.JudgeRunning(r, jobRun(f), maxRuntime, now)
	case status.Failed:
		job.JudgeFailed(r, "last backup", b.Error, jobRun(f), now)
		r.Addf("failed run: started %s, finished %s", plugin.Stamp(b.Started), plugin.Stamp(b.Finished))
	}
}

// changedWhileRead marks the warnings of files that are in the backup as
// they were read (they changed meanwhile); every other warning is a file
// the backup could not read, so it is not in it.
func changedWhileRead(w string) bool {
	return strings.Contains(w, "while it was read") || strings.Contains(w, "changed as we read it") ||
		strings.Contains(w, "during the backup")
}

// maxListedWarning bounds one warning on the first line: a 4 KiB path must
// not push the fix off the line.
const maxListedWarning = 120

// judgeWarnings raises the warnings of the last backup, saying which files
// are in it (changed while read) and which are not (unreadable).
func judgeWarnings(r *plugin.Result, b *status.Backup, run *status.BackupRun) {
	if run.Warnings == 0 {
		return
	}
	msg := fmt.Sprintf("last backup had %d warning(s)", run.Warnings)
	var list []string
	if b.State == status.OK {
		list = b.WarningList
	}
	if len(list) > 0 {
		shown := make([]string, 0, 3)
		for _, w := range list[:min(3, len(list))] {
			shown = append(shown, plugin.Shorten(w, maxListedWarning))
		}
		msg += ": " + strings.Join(shown, "; ")
		if len(list) > 3 {
			msg += "; …"
		}
	}
	r.Raise(plugin.Warning, msg+" ("+warningKinds(list)+"): fix them, see backup_runner status")
	for _, w := range list {
		r.Addf("warning: %s", w)
	}
}

// warningKinds says what the listed warnings mean for the backup's
// content: files that changed while read are in it as read; files it could
// not read are not.
func warningKinds(list []string) string {
	changed := 0
	for _, w := range list {
		if changedWhileRead(w) {
			changed++
		}
	}
	unreadable := len(list) - changed
	switch {
	case changed == 0:
		return "files it could not read are not in the backup"
	case unreadable == 0:
		return "files that changed while read are in the backup as read, possibly inconsistent"
	}
	return fmt.Sprintf("%d listed changed while read: in the backup as read; %d could not be read: not in the backup", changed, unreadable)
}

// judgeShrink raises a backup whose data shrank sharply since the previous
// success, and notes the previous one.
func judgeShrink(r *plugin.Result, b *status.Backup, run *status.BackupRun, limit plugin.Percent) {
	prev := previous(b.History, run)
	if prev == nil || limit <= 0 {
		return
	}
	cur, old := dataSize(*run), dataSize(*prev)
	if old > 0 && float64(cur) < float64(old)*(1-float64(limit)/100) {
		r.Raise(plugin.Warning, fmt.Sprintf("backup shrank %.0f%% since the previous one (%s → %s of data, over --shrink-warning %s): were sources deleted or excluded? compare with backup_runner list",
			100*(1-float64(cur)/float64(old)), units.Bytes(old), units.Bytes(cur), limit))
	}
	r.Addf("previous backup: %s, %s of data, %d files", plugin.Stamp(prev.Finished), units.Bytes(dataSize(*prev)), prev.Files)
}

// finish sets the OK summary, the thresholds, the status file line and
// the perfdata.
func finish(r *plugin.Result, f facts, a args, run *status.BackupRun, age time.Duration, proven string, now time.Time) {
	b := f.Status
	dur := max(run.Finished.Sub(run.Started), 0)
	if r.State == plugin.OK {
		running := ""
		if b.State == status.Running {
			running = fmt.Sprintf("; a backup is running (pid %d, for %s)", b.PID, plugin.Ago(now, b.Started))
		}
		confirmed := ""
		if proven != "" {
			confirmed = "; in the destination: " + proven
		}
		r.Summary = fmt.Sprintf("last backup %s ago: %s in %d files, took %s, to %s%s%s",
			plugin.Ago(now, run.Finished), units.Bytes(run.BytesOut), run.Files, plugin.HumanDuration(dur), b.Destination, confirmed, running)
	}
	r.Addf("thresholds: -w %s -c %s --max-runtime %s --shrink-warning %s", a.Warning, a.Critical, a.MaxRuntime, a.ShrinkWarning)
	r.Addf("status file: %s (host %s, drym %s)", f.Path, b.Host, b.Version)
	r.Perfdata = append(r.Perfdata,
		plugin.Seconds("age", age.Seconds(), a.Warning.Range, a.Critical.Range),
		plugin.Bytes("size", run.BytesOut),
		plugin.Seconds("duration", dur.Seconds(), plugin.Range{}, plugin.Range{}),
		plugin.Count("files", run.Files),
	)
}

// previous returns the newest successful run in history before run.
func previous(history []status.BackupRun, run *status.BackupRun) *status.BackupRun {
	for i := range history {
		h := &history[i]
		if h.State == status.OK && h.Started.Before(run.Started) && h.Object != run.Object {
			return h
		}
	}
	return nil
}

// dataSize is what shrinking is judged by: the source bytes read, or the
// stored size for files written before bytes_in was recorded.
func dataSize(r status.BackupRun) int64 {
	if r.BytesIn > 0 {
		return r.BytesIn
	}
	return r.BytesOut
}
