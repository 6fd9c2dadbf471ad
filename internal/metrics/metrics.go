// Package metrics renders drym's status files as a Prometheus
// node_exporter textfile (the textfile collector reads *.prom files from one
// directory), so hosts watched by Prometheus rather than Nagios get the same
// facts: when each job last succeeded, how long it took, how big it was, and
// whether its last run was ok.
//
// The status files stay the source of truth; the textfile is derived from all
// three after every job, so it never disagrees with what the checks read.
//
// Missing or unreadable status files are not left out: such a job gets
// last_run_ok 0 and last_success_timestamp_seconds 0, so an alert on either
// ("not ok", or "last success older than a day") fires for a job that was
// never set up instead of staying silent. Only facts that are truly unknown
// (the size of a run still going on) are omitted.
package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/status"
)

// Job is what the textfile says about one job. Nil pointers are facts that
// are unknown and therefore omitted.
type Job struct {
	// Name is the job as it appears in metric names: backup, test_restore,
	// escrow.
	Name string
	// Problem is why the status file could not be used ("" when it could).
	Problem string
	Running bool
	// LastRunOK is the outcome of the last finished run.
	LastRunOK *bool
	// LastSuccess is when the last successful run finished; the zero time
	// means never (rendered as 0).
	LastSuccess *time.Time
	// Duration and Size describe the last finished run.
	Duration *time.Duration
	Size     *int64
}

// Metric-name parts of the three jobs.
const (
	NameBackup      = "backup"
	NameTestRestore = "test_restore"
	NameEscrow      = "escrow"
)

func ptr[T any](v T) *T { return &v }

// Unavailable is a job whose status file is missing or unreadable: not ok,
// never succeeded (as far as anyone can tell).
func Unavailable(name string, err error) Job {
	return Job{Name: name, Problem: err.Error(), LastRunOK: ptr(false), LastSuccess: ptr(time.Time{})}
}

// FromBackup derives the backup job. While a backup runs, the previous run
// (the newest history entry) still describes "the last run".
func FromBackup(b *status.Backup) Job {
	j := Job{Name: NameBackup, Running: b.State == status.Running, LastSuccess: ptr(time.Time{})}
	if b.LastSuccess != nil {
		j.LastSuccess = ptr(b.LastSuccess.Finished)
	}
	last := b.Run()
	if j.Running {
		if len(b.History) == 0 {
			return j
		}
		last = b.History[len(b.History)-1]
	}
	j.LastRunOK = ptr(last.State == status.OK)
	j.Duration = ptr(last.Finished.Sub(last.Started))
	// The stored object's size: what the destination holds and what a
	// restore must download. A failed run stored nothing.
	if last.State == status.OK {
		j.Size = ptr(last.BytesOut)
	}
	if last.State == status.OK && last.Finished.After(*j.LastSuccess) {
		j.LastSuccess = ptr(last.Finished)
	}
	return j
}

// FromTestRestore derives the test-restore job. The file keeps only the
// current run, so while one runs the previous outcome is unknown.
func FromTestRestore(t *status.TestRestore) Job {
	j := Job{Name: NameTestRestore, Running: t.State == status.Running, LastSuccess: ptr(t.LastSuccess)}
	if j.Running {
		return j
	}
	j.LastRunOK = ptr(t.State == status.OK)
	j.Duration = ptr(t.Duration())
	if t.State == status.OK {
		// Bytes restored and verified against the manifest.
		j.Size = ptr(t.Bytes)
		if t.Finished.After(t.LastSuccess) {
			j.LastSuccess = ptr(t.Finished)
		}
	}
	return j
}

// FromEscrow derives the escrow job. escrow.json records no earlier success
// and no zip size, so after a failure the last success is unknown (omitted,
// not 0: the zip shipped before may well be fine) and size is never given.
func FromEscrow(e *status.Escrow) Job {
	j := Job{Name: NameEscrow, Running: e.State == status.Running}
	if j.Running {
		return j
	}
	j.LastRunOK = ptr(e.State == status.OK)
	j.Duration = ptr(e.Duration())
	if e.State == status.OK {
		j.LastSuccess = ptr(e.Finished)
	}
	return j
}

// Gather reads the three status files in stateDir. It never fails: a file
// that cannot be used becomes an Unavailable job naming the problem.
func Gather(stateDir string) []Job {
	var (
		b  status.Backup
		tr status.TestRestore
		e  status.Escrow
	)
	jobs := make([]Job, 0, 3)
	if err := status.Read(filepath.Join(stateDir, status.BackupFile), &b); err != nil {
		jobs = append(jobs, Unavailable(NameBackup, err))
	} else {
		jobs = append(jobs, FromBackup(&b))
	}
	if err := status.Read(filepath.Join(stateDir, status.TestRestoreFile), &tr); err != nil {
		jobs = append(jobs, Unavailable(NameTestRestore, err))
	} else {
		jobs = append(jobs, FromTestRestore(&tr))
	}
	if err := status.Read(filepath.Join(stateDir, status.EscrowFile), &e); err != nil {
		jobs = append(jobs, Unavailable(NameEscrow, err))
	} else {
		jobs = append(jobs, FromEscrow(&e))
	}
	return jobs
}

// human names of the jobs in HELP texts.
var human = map[string]string{
	NameBackup:      "backup",
	NameTestRestore: "test restore",
	NameEscrow:      "key escrow",
}

// Render writes the jobs in the text exposition format (version 0.0.4), one
// family per metric with HELP and TYPE lines, every sample labelled with the
// host. It is pure: the same jobs give the same bytes.
func Render(host string, jobs []Job) []byte {
	var buf bytes.Buffer
	label := `{host="` + escapeLabel(host) + `"}`
	family := func(name, help string, value float64) {
		fmt.Fprintf(&buf, "# HELP %s %s\n# TYPE %s gauge\n%s%s %s\n",
			name, help, name, name, label, strconv.FormatFloat(value, 'f', -1, 64))
	}
	for _, j := range jobs {
		p := "drym_" + j.Name + "_"
		what := human[j.Name]
		if what == "" {
			what = j.Name
		}
		if j.LastSuccess != nil {
			v := 0.0
			if !j.LastSuccess.IsZero() {
				v = float64(j.LastSuccess.UnixMilli()) / 1000
			}
			family(p+"last_success_timestamp_seconds",
				"Unix time the last successful drym "+what+" finished (0: never, or no readable status file).", v)
		}
		if j.Duration != nil {
			family(p+"last_duration_seconds", "How long the last finished drym "+what+" took.", j.Duration.Seconds())
		}
		if j.Size != nil {
			family(p+"last_size_bytes", sizeHelp[j.Name], float64(*j.Size))
		}
		if j.LastRunOK != nil {
			family(p+"last_run_ok",
				"1 if the last finished drym "+what+" succeeded, 0 if it failed or its status file is missing or unreadable.", b2f(*j.LastRunOK))
		}
		family(p+"running", "1 while a drym "+what+" is running.", b2f(j.Running))
	}
	return buf.Bytes()
}

var sizeHelp = map[string]string{
	NameBackup:      "Bytes stored by the last successful drym backup (the encrypted object).",
	NameTestRestore: "Bytes restored and verified by the last successful drym test restore.",
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// escapeLabel escapes a label value as the exposition format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// WriteFile replaces the textfile at path atomically: node_exporter reads the
// directory at any moment and must never see half a file. The temp file
// starts with a dot and does not end in .prom, so the collector ignores it.
func WriteFile(path string, data []byte) error {
	if path == "" {
		return errors.New("metrics: no textfile path")
	}
	if err := status.WriteFileAtomic(path, data, 0o644); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, os.ErrNotExist) {
			return fmt.Errorf("%w (create the directory, e.g. node_exporter's --collector.textfile.directory, or change [metrics] textfile)", err)
		}
		return err
	}
	return nil
}
