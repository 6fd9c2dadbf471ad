package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

// facts is everything gather found; evaluate judges it without I/O.
type facts struct {
	SettingsErr error
	Path        string // backup.json
	ReadErr     error
	Status      *status.Backup
	Alive       bool // a running job's pid is alive and is the job
	// Remote is set when --remote was asked for and there was a recorded
	// object to look for (or the store could not be used).
	Remote *remoteFacts
}

// remoteFacts is what the destination says about the recorded object.
type remoteFacts struct {
	Where      string // store URL, for messages
	Object     string // name within the store
	Err        error  // cannot use the store, or Stat of the object failed
	Size       int64
	SidecarErr error
	SidecarSHA string
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
// the recorded object: one HEAD and one small GET however many backups are
// stored).
func gather(ctx context.Context, a *args) facts {
	var f facts
	cfg, stateDir, err := a.Settings(ctx)
	if err != nil {
		f.SettingsErr = err
		return f
	}
	f.Path = filepath.Join(stateDir, status.BackupFile)
	plugin.Doing(ctx, "reading %s", f.Path)
	var b status.Backup
	if f.ReadErr = status.Read(f.Path, &b); f.ReadErr != nil {
		return f
	}
	f.Status = &b
	if b.State == status.Running {
		plugin.Doing(ctx, "looking for backup pid %d", b.PID)
		f.Alive = status.JobAlive(b.PID, b.Started)
	}
	if a.Remote {
		if run := judged(&b); run != nil && run.Object != "" {
			f.Remote = remote(ctx, cfg, run)
		}
	}
	return f
}

// errNoSettings is reported for --remote with --state-dir but no settings
// file: the destination and its read credentials live there.
var errNoSettings = errors.New("--remote needs the settings file for the destination and read_profile: pass --config or set DRYM_CONFIG")

func remote(ctx context.Context, cfg *config.Config, run *status.BackupRun) *remoteFacts {
	if cfg == nil {
		return &remoteFacts{Err: errNoSettings}
	}
	// The runner records the bare object name; the store is scoped to the
	// host. A "<host>/<name>" form is accepted too.
	sub, name := path.Split(run.Object)
	sub = strings.Trim(sub, "/")
	if sub == "" {
		sub = cfg.Host
	}
	// Messages name the destination as configured and the object as
	// "<host>/<name>" within it, as backup_runner prints them.
	rf := &remoteFacts{Where: cfg.Destination.URL, Object: sub + "/" + name}
	plugin.Doing(ctx, "opening destination %s", cfg.Destination.URL)
	st, err := store.Open(ctx, cfg.Destination, sub, store.Read)
	if err != nil {
		rf.Err = err
		return rf
	}
	plugin.Doing(ctx, "asking %s for %s", st, name)
	info, err := st.Stat(ctx, name)
	if err != nil {
		rf.Err = err
		return rf
	}
	rf.Size = info.Size
	plugin.Doing(ctx, "reading %s.sha256 from %s", name, st)
	rc, err := st.Open(ctx, name+".sha256")
	if err != nil {
		rf.SidecarErr = err
		return rf
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		rf.SidecarErr = err
		return rf
	}
	// The sidecar is the host's statement (comment lines, then the
	// sha256sum line); a legacy one is that line alone. Anything else
	// keeps its first word, which then disagrees with the record.
	if st, err := statement.Parse(data, name); err == nil {
		rf.SidecarSHA = st.SHA256
	} else if fields := strings.Fields(string(data)); len(fields) > 0 {
		rf.SidecarSHA = strings.ToLower(fields[0])
	}
	return rf
}

// evaluate judges the facts: pure, no I/O, no clock.
func evaluate(f facts, a args, now time.Time) plugin.Result {
	const fix = "run backup_runner backup"
	if f.SettingsErr != nil {
		return plugin.SettingsResult(f.SettingsErr)
	}
	if f.ReadErr != nil {
		return plugin.StatusError(f.ReadErr, "no backup yet", fix)
	}
	b := f.Status
	run := judged(b)
	if err := status.CheckClock(b.Common, now); err != nil {
		return plugin.StatusError(fmt.Errorf("%s: %w", f.Path, err), "", fix)
	}
	if run != nil {
		if err := status.CheckClock(status.Common{Started: run.Started, Finished: run.Finished}, now); err != nil {
			return plugin.StatusError(fmt.Errorf("%s: last success: %w", f.Path, err), "", fix)
		}
	}
	ago := func(t time.Time) string { return plugin.HumanDuration(max(now.Sub(t), 0).Round(time.Second)) }

	var r plugin.Result
	switch b.State {
	case status.Running:
		runtime := max(now.Sub(b.Started), 0).Round(time.Second)
		switch {
		case !f.Alive:
			r.Raise(plugin.Critical, fmt.Sprintf("runner died: the backup started %s ago (pid %d) is gone without finishing (killed, OOM or reboot?): %s and see journalctl -u drym-backup",
				ago(b.Started), b.PID, fix))
		case runtime > a.MaxRuntime.D():
			r.Raise(plugin.Warning, fmt.Sprintf("backup running for %s (pid %d), longer than --max-runtime %s: see what it is doing with backup_runner status",
				plugin.HumanDuration(runtime), b.PID, a.MaxRuntime))
		}
		r.Addf("backup running since %s (pid %d, %s)", b.Started.UTC().Format(time.RFC3339), b.PID, map[bool]string{true: "alive", false: "dead"}[f.Alive])
	case status.Failed:
		r.Raise(plugin.Critical, fmt.Sprintf("last backup failed %s ago: %s; fix that and %s", ago(b.Finished), b.Error, fix))
		r.Addf("failed run: started %s, finished %s", b.Started.UTC().Format(time.RFC3339), b.Finished.UTC().Format(time.RFC3339))
	}

	if run == nil {
		if b.State == status.Running && f.Alive {
			r.Raise(plugin.Critical, fmt.Sprintf("no backup yet: the first backup is still running (pid %d, for %s); wait for it, or see backup_runner status",
				b.PID, ago(b.Started)))
		} else {
			r.Raise(plugin.Critical, "no backup has ever succeeded: "+fix)
		}
		r.Addf("status file: %s (host %s, drym %s)", f.Path, b.Host, b.Version)
		return r
	}

	age := max(now.Sub(run.Finished), 0)
	r.Addf("last success: %s, object %s", run.Finished.UTC().Format(time.RFC3339), run.Object)
	r.Addf("size: %s stored, %s of data, %d files", units.Bytes(run.BytesOut), units.Bytes(run.BytesIn), run.Files)
	if run.SHA256 != "" {
		r.Addf("sha256: %s", run.SHA256)
	}
	switch {
	case a.Critical.AlertAge(age):
		r.Raise(plugin.Critical, fmt.Sprintf("last successful backup %s ago, %s (-c): %s and check the timer: systemctl status drym-backup.timer",
			ago(run.Finished), a.Critical.Describe(), fix))
	case a.Warning.AlertAge(age):
		r.Raise(plugin.Warning, fmt.Sprintf("last successful backup %s ago, %s (-w): %s and check the timer: systemctl status drym-backup.timer",
			ago(run.Finished), a.Warning.Describe(), fix))
	}

	if run.Warnings > 0 {
		msg := fmt.Sprintf("last backup had %d warning(s)", run.Warnings)
		if b.State == status.OK && len(b.WarningList) > 0 {
			msg += ": " + strings.Join(b.WarningList[:min(3, len(b.WarningList))], "; ")
			if len(b.WarningList) > 3 {
				msg += "; …"
			}
		}
		r.Raise(plugin.Warning, msg+" (files it could not read are not in the backup): fix them, see backup_runner status")
		if b.State == status.OK {
			for _, w := range b.WarningList {
				r.Addf("warning: %s", w)
			}
		}
	}

	if prev := previous(b.History, run); prev != nil && a.ShrinkWarning > 0 {
		cur, old := dataSize(*run), dataSize(*prev)
		if old > 0 && float64(cur) < float64(old)*(1-float64(a.ShrinkWarning)/100) {
			r.Raise(plugin.Warning, fmt.Sprintf("backup shrank %.0f%% since the previous one (%s → %s of data, over --shrink-warning %s): were sources deleted or excluded? compare with backup_runner list",
				100*(1-float64(cur)/float64(old)), units.Bytes(old), units.Bytes(cur), a.ShrinkWarning))
		}
		r.Addf("previous backup: %s, %s of data, %d files", prev.Finished.UTC().Format(time.RFC3339), units.Bytes(dataSize(*prev)), prev.Files)
	}

	if f.Remote != nil {
		checkRemote(&r, f.Remote, run)
	}
	checkAppendOnly(&r, b)

	dur := max(run.Finished.Sub(run.Started), 0)
	if r.State == plugin.OK {
		running := ""
		if b.State == status.Running {
			running = fmt.Sprintf("; a backup is running (pid %d, for %s)", b.PID, ago(b.Started))
		}
		r.Summary = fmt.Sprintf("last backup %s ago: %s in %d files, took %s, to %s%s",
			ago(run.Finished), units.Bytes(run.BytesOut), run.Files, plugin.HumanDuration(dur), b.Destination, running)
	}
	r.Addf("thresholds: -w %s -c %s --max-runtime %s --shrink-warning %s", a.Warning, a.Critical, a.MaxRuntime, a.ShrinkWarning)
	r.Addf("status file: %s (host %s, drym %s)", f.Path, b.Host, b.Version)
	r.Perfdata = append(r.Perfdata,
		plugin.Seconds("age", age.Seconds(), a.Warning.Range, a.Critical.Range),
		plugin.Bytes("size", run.BytesOut),
		plugin.Seconds("duration", dur.Seconds(), plugin.Range{}, plugin.Range{}),
		plugin.Count("files", run.Files),
	)
	return r
}

// checkRemote compares what the destination holds with what was recorded.
func checkRemote(r *plugin.Result, rf *remoteFacts, run *status.BackupRun) {
	switch {
	case errors.Is(rf.Err, store.ErrNotFound):
		r.Raise(plugin.Critical, fmt.Sprintf("the last backup %s is missing from %s (deleted, or expired by a lifecycle rule?): run backup_runner backup and check the bucket",
			rf.Object, rf.Where))
		return
	case errors.Is(rf.Err, errNoSettings):
		r.Raise(plugin.Unknown, rf.Err.Error())
		return
	case errors.Is(rf.Err, fs.ErrPermission):
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot check the destination: %v (the check runs as user nagios: make the destination readable by group nagios, or drop --remote)", rf.Err))
		return
	case rf.Err != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot check the destination: %v (check read_profile and its credentials in the settings; backup_runner list uses the same)", rf.Err))
		return
	case rf.Size != run.BytesOut:
		r.Raise(plugin.Critical, fmt.Sprintf("the last backup %s in %s is %d bytes, the runner recorded %d: it is damaged; run backup_runner backup",
			rf.Object, rf.Where, rf.Size, run.BytesOut))
		return
	}
	r.Addf("destination: %s holds %s with the recorded size (%d bytes)", rf.Where, rf.Object, rf.Size)
	switch {
	case errors.Is(rf.SidecarErr, store.ErrNotFound):
		r.Raise(plugin.Warning, fmt.Sprintf("the sidecar %s.sha256 is missing from %s (the upload was cut short?): run backup_runner backup", rf.Object, rf.Where))
	case rf.SidecarErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read %s.sha256 from %s: %v (check read_profile and its credentials)", rf.Object, rf.Where, rf.SidecarErr))
	case run.SHA256 != "" && rf.SidecarSHA != strings.ToLower(run.SHA256):
		r.Raise(plugin.Critical, fmt.Sprintf("the sidecar %s.sha256 in %s says %.16s…, the runner recorded %.16s…: the object is not the one uploaded; run backup_runner backup and find out who wrote it",
			rf.Object, rf.Where, rf.SidecarSHA, run.SHA256))
	default:
		r.Addf("destination: %s.sha256 matches the recorded sha256", rf.Object)
	}
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
