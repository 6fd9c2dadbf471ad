package plugin

import (
	"fmt"
	"time"

	"github.com/drym-backup/drym/internal/status"
)

// AgeJob is how an age check (check_backup_age, check_test_restore) words
// the job it judges. The judgement itself is the same for both: a running
// job that died or runs too long, a failed run, a job that never
// succeeded, a last success too old.
type AgeJob struct {
	Noun  string // "backup": "last successful backup 3h ago"
	Died  string // "runner died: the backup": "<Died> started 1h ago (pid 5) is gone…"
	First string // "the first backup": "no backup yet: <First> is still running"
	Unit  string // systemd unit: journalctl -u <Unit>, systemctl status <Unit>.timer
	Fix   string // "run backup_runner backup"
}

// JobRun is the last run of a job as its status file tells it.
type JobRun struct {
	State             status.State
	PID               int
	Started, Finished time.Time
	// Alive: a running job's pid is alive and is the job.
	Alive bool
}

// RunOf is the last run as the common part of a status file tells it;
// alive is whether a running job's pid is alive and is the job.
func RunOf(c *status.Common, alive bool) JobRun {
	return JobRun{State: c.State, PID: c.PID, Started: c.Started, Finished: c.Finished, Alive: alive}
}

// Ago renders how long before now t was, to the second. Callers refuse
// timestamps more than status.ClockSkew ahead first (status.CheckClock,
// PastAge); within the skew a time ahead reads "0s".
func Ago(now, t time.Time) string {
	return HumanDuration(max(now.Sub(t), 0).Round(time.Second))
}

// Stamp renders t as the long output shows times.
func Stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// PastAge is then − t as an age: a t up to status.ClockSkew after then
// counts as 0 (clocks differ a little), beyond it ok is false. An age is
// never clamped further: a backup dated hours after the test that tested
// it is news, not a zero.
func PastAge(then, t time.Time) (age time.Duration, ok bool) {
	d := then.Sub(t)
	if d < -status.ClockSkew {
		return d, false
	}
	return max(d, 0), true
}

// JudgeRunning raises a running job whose process is gone, or that runs
// longer than maxRuntime, and notes the run in the long output.
func (j AgeJob) JudgeRunning(r *Result, run JobRun, maxRuntime Duration, now time.Time) {
	runtime := max(now.Sub(run.Started), 0).Round(time.Second)
	switch {
	case !run.Alive:
		r.Raise(Critical, fmt.Sprintf("%s started %s ago (pid %d) is gone without finishing (killed, OOM or reboot?): %s and see journalctl -u %s",
			j.Died, Ago(now, run.Started), run.PID, j.Fix, j.Unit))
	case runtime > maxRuntime.D():
		r.Raise(Warning, fmt.Sprintf("%s running for %s (pid %d), longer than --max-runtime %s: see what it is doing with backup_runner status",
			j.Noun, HumanDuration(runtime), run.PID, maxRuntime))
	}
	r.Addf("%s running since %s (pid %d, %s)", j.Noun, Stamp(run.Started), run.PID, map[bool]string{true: "alive", false: "dead"}[run.Alive])
}

// JudgeFailed raises a failed run: "<what> failed 3h ago: <why>; fix that
// and <fix>".
func (j AgeJob) JudgeFailed(r *Result, what, why string, run JobRun, now time.Time) {
	r.Raise(Critical, fmt.Sprintf("%s failed %s ago: %s; fix that and %s", what, Ago(now, run.Finished), why, j.Fix))
}

// JudgeNever raises a job without any success: its first run still going,
// or none ever succeeded.
func (j AgeJob) JudgeNever(r *Result, run JobRun, now time.Time) {
	if run.State == status.Running && run.Alive {
		r.Raise(Critical, fmt.Sprintf("no %s yet: %s is still running (pid %d, for %s); wait for it, or see backup_runner status",
			j.Noun, j.First, run.PID, Ago(now, run.Started)))
		return
	}
	r.Raise(Critical, fmt.Sprintf("no %s has ever succeeded: %s", j.Noun, j.Fix))
}

// JudgeAge raises the age of the last success against -w and -c and
// returns the age.
func (j AgeJob) JudgeAge(r *Result, last time.Time, warn, crit AgeRange, now time.Time) time.Duration {
	age := max(now.Sub(last), 0)
	for _, t := range []struct {
		s    State
		rng  AgeRange
		flag string
	}{{Critical, crit, "-c"}, {Warning, warn, "-w"}} {
		if t.rng.AlertAge(age) {
			r.Raise(t.s, fmt.Sprintf("last successful %s %s ago, %s (%s): %s and check the timer: systemctl status %s.timer",
				j.Noun, Ago(now, last), t.rng.Describe(), t.flag, j.Fix, j.Unit))
			break
		}
	}
	return age
}

// StatusRead is how reading a job's status file went, before any judging.
type StatusRead struct {
	SettingsErr error // the settings or state dir cannot be used: nothing else was read
	// SettingsPath and SettingsHost are the settings file read and its
	// host ("" without a settings file).
	SettingsPath, SettingsHost string
	Path                       string // the status file
	ReadErr                    error  // the status file cannot be read
}

// Unusable is the result when a status file cannot be judged yet: the
// settings or the file unusable, a file of another host (two settings
// files sharing a state directory), or timestamps in the future, of the
// file itself or of the last success it carries (last; zero when there is
// none). file is nil when it could not be read (then s says why). done is
// false when the file can be judged.
func (j AgeJob) Unusable(s StatusRead, file *status.Common, last status.Common, now time.Time) (r Result, done bool) {
	switch {
	case s.SettingsErr != nil:
		return SettingsResult(s.SettingsErr), true
	case s.ReadErr != nil:
		return StatusError(s.ReadErr, "no "+j.Noun+" yet", j.Fix), true
	}
	if file == nil {
		// Not reached: a file that was not read has a read or settings error.
		return StatusError(fmt.Errorf("%s: not read", s.Path), "", j.Fix), true
	}
	if res, bad := HostMismatch(s.Path, file.Host, s.SettingsPath, s.SettingsHost); bad {
		return res, true
	}
	if err := status.CheckClock(*file, now); err != nil {
		return StatusError(fmt.Errorf("%s: %w", s.Path, err), "", j.Fix), true
	}
	if err := status.CheckClock(last, now); err != nil {
		return StatusError(fmt.Errorf("%s: last success: %w", s.Path, err), "", j.Fix), true
	}
	return Result{}, false
}
