package main

import (
	"context"
	"errors"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/version"
)

// statusFile is a status file type (*status.Backup, *status.TestRestore,
// *status.Escrow): each embeds status.Common.
type statusFile interface{ Base() *status.Common }

// job is a runner job that records its outcome in a status file. runJob
// gives backup, test-restore and escrow the same life, so the contract the
// checks read is kept in one place:
//
//  1. take the state directory's lock (one job at a time);
//  2. read the previous status file and make this run's (history and last
//     success carried forward);
//  3. prepare: find what the run needs; a *usageError here is exit 2 with
//     the status file untouched (a mistyped name says nothing about backups);
//  4. write "running" with the pid, so a check tells a run in progress from
//     a runner that died;
//  5. run, then record ok or failed (with the error on one line, a signal
//     as "interrupted") atomically;
//  6. rewrite the metrics textfile.
type job[S statusFile] struct {
	kind string // status.JobBackup, …: the lock holder's name
	file string // the status file's name in the state directory
	// empty returns a zero status to read the previous file into.
	empty func() S
	// begin makes this run's status; prev is the previous file's, or nil
	// when there is none or it was unreadable (said on stderr with -v).
	begin func(base status.Common, prev S) S
	// prepare, when set, runs after the lock and before "running" is
	// written. A *usageError ends the job with exit 2; any other error is
	// recorded as the run's failure.
	prepare func(st S) error
	// run does the work, filling st as it learns.
	run func(st S) error
	// end records what the run found once its state is set; err is the
	// run's error as recorded (nil for ok).
	end func(st S, err error)
	// failed, when set, prints details before the one-line failure.
	failed func(st S)
}

// runJob runs j (see job) and returns the final status and the exit code.
// The caller prints the result on success (exit 0).
func runJob[S statusFile](ctx context.Context, a *app, cfg *config.Config, j job[S]) (S, int) {
	var zero S
	lock, err := status.TryLock(cfg.StateDir, j.kind)
	if err != nil {
		return zero, a.fail(exitFailure, "%v", err)
	}
	defer lock.Unlock()

	path := cfg.StatusPath(j.file)
	prev := j.empty()
	if err := status.Read(path, prev); err != nil {
		if !errors.Is(err, status.ErrNotExist) {
			a.log.Warn("previous status file unreadable; replacing it", "file", path, "err", err)
		}
		prev = zero
	}
	st := j.begin(status.NewCommon(j.kind, cfg.Host, version.Version, a.now()), prev)
	var prepErr error
	if j.prepare != nil {
		prepErr = j.prepare(st)
		var usage *usageError
		if errors.As(prepErr, &usage) {
			return st, a.fail(exitUsage, "%s: %v", j.kind, prepErr)
		}
	}
	if err := status.Write(path, st); err != nil {
		return st, a.fail(exitFailure, "%v", err)
	}

	err = prepErr
	if err == nil {
		err = j.run(st)
	}
	err = a.endJob(ctx, st.Base(), err)
	j.end(st, err)
	if werr := status.Write(path, st); werr != nil {
		return st, a.fail(exitFailure, "%s %s but %v", j.kind, st.Base().State, werr)
	}
	writeMetrics(a, cfg)
	if err != nil {
		if j.failed != nil {
			j.failed(st)
		}
		return st, a.fail(exitFailure, "%s failed: %s", j.kind, st.Base().Error)
	}
	return st, exitOK
}

// usageError is a mistake in what was asked (a malformed backup name, or
// one not in the destination): exit 2, and no status file is touched.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
