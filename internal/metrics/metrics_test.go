package metrics

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/drym-backup/drym/internal/status"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	t1 = t0.Add(90 * time.Second)
)

func common(job string, st status.State, started, finished time.Time) status.Common {
	c := status.NewCommon(job, "web1", "v1.0.0", started)
	c.State, c.Finished = st, finished
	if st == status.Failed {
		c.Error = "destination full"
	}
	return c
}

func okBackup() *status.Backup {
	b := &status.Backup{Common: common(status.JobBackup, status.OK, t0, t1), BytesIn: 5000, BytesOut: 1234567, Files: 10}
	run := b.Run()
	b.History, b.LastSuccess = []status.BackupRun{run}, &run
	return b
}

// parse runs the textfile through Prometheus' own parser: if node_exporter
// would reject it, this fails.
func parse(t *testing.T, data []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("textfile does not parse: %v\n%s", err, data)
	}
	for name, f := range fams {
		if f.GetHelp() == "" || f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: help %q type %v; want HELP and gauge", name, f.GetHelp(), f.GetType())
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "host" {
				t.Errorf("%s: labels %v; want host only", name, m.GetLabel())
			}
		}
	}
	return fams
}

func value(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) != 1 {
		return 0, false
	}
	return f.GetMetric()[0].GetGauge().GetValue(), true
}

func TestRender(t *testing.T) {
	running := func() *status.Backup {
		b := okBackup()
		b.Common = common(status.JobBackup, status.Running, t1.Add(time.Hour), time.Time{})
		return b
	}
	failedBackup := func() *status.Backup {
		b := okBackup()
		b.Common = common(status.JobBackup, status.Failed, t1.Add(time.Hour), t1.Add(time.Hour+time.Minute))
		b.BytesOut = 0
		b.History = append(b.History, b.Run())
		return b
	}
	okRestore := &status.TestRestore{Common: common(status.JobTestRestore, status.OK, t0, t1.Add(time.Minute)), Bytes: 4096}
	failedRestore := &status.TestRestore{Common: common(status.JobTestRestore, status.Failed, t1, t1.Add(time.Second)), LastSuccess: t0}
	okEscrow := &status.Escrow{Common: common(status.JobEscrow, status.OK, t0, t0.Add(2*time.Second))}
	failedEscrow := &status.Escrow{Common: common(status.JobEscrow, status.Failed, t0, t0.Add(2*time.Second))}
	missing := os.ErrNotExist

	type want map[string]float64 // metric → value; absent keys in omit must be missing
	tests := []struct {
		name string
		jobs []Job
		want want
		omit []string
	}{
		{
			name: "all-ok",
			jobs: []Job{FromBackup(okBackup()), FromTestRestore(okRestore), FromEscrow(okEscrow)},
			want: want{
				"drym_backup_last_run_ok": 1, "drym_backup_last_size_bytes": 1234567,
				"drym_backup_last_duration_seconds": 90, "drym_backup_last_success_timestamp_seconds": float64(t1.Unix()),
				"drym_backup_running":           0,
				"drym_test_restore_last_run_ok": 1, "drym_test_restore_last_size_bytes": 4096,
				"drym_test_restore_last_duration_seconds": 150, "drym_test_restore_last_success_timestamp_seconds": float64(t1.Add(time.Minute).Unix()),
				"drym_escrow_last_run_ok": 1, "drym_escrow_last_duration_seconds": 2,
				"drym_escrow_last_success_timestamp_seconds": float64(t0.Add(2 * time.Second).Unix()),
			},
			omit: []string{"drym_escrow_last_size_bytes"},
		},
		{
			name: "nothing-set-up",
			jobs: []Job{Unavailable(NameBackup, missing), Unavailable(NameTestRestore, missing), Unavailable(NameEscrow, missing)},
			want: want{
				"drym_backup_last_run_ok": 0, "drym_backup_last_success_timestamp_seconds": 0,
				"drym_test_restore_last_run_ok": 0, "drym_test_restore_last_success_timestamp_seconds": 0,
				"drym_escrow_last_run_ok": 0, "drym_escrow_last_success_timestamp_seconds": 0,
			},
			omit: []string{"drym_backup_last_size_bytes", "drym_backup_last_duration_seconds"},
		},
		{
			name: "failures",
			jobs: []Job{FromBackup(failedBackup()), FromTestRestore(failedRestore), FromEscrow(failedEscrow)},
			want: want{
				"drym_backup_last_run_ok": 0, "drym_backup_last_success_timestamp_seconds": float64(t1.Unix()),
				"drym_backup_last_duration_seconds": 60,
				"drym_test_restore_last_run_ok":     0, "drym_test_restore_last_success_timestamp_seconds": float64(t0.Unix()),
				"drym_escrow_last_run_ok": 0,
			},
			omit: []string{"drym_backup_last_size_bytes", "drym_test_restore_last_size_bytes", "drym_escrow_last_success_timestamp_seconds"},
		},
		{
			name: "backup-running",
			jobs: []Job{FromBackup(running()), FromTestRestore(okRestore), FromEscrow(okEscrow)},
			want: want{
				// the previous run still answers "how did the last one go"
				"drym_backup_running": 1, "drym_backup_last_run_ok": 1, "drym_backup_last_size_bytes": 1234567,
				"drym_backup_last_success_timestamp_seconds": float64(t1.Unix()),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := Render("web1", tt.jobs)
			fams := parse(t, data)
			for name, w := range tt.want {
				got, ok := value(fams, name)
				if !ok {
					t.Errorf("%s missing", name)
				} else if got != w {
					t.Errorf("%s = %v, want %v", name, got, w)
				}
			}
			for _, name := range tt.omit {
				if _, ok := fams[name]; ok {
					t.Errorf("%s present, want it omitted", name)
				}
			}
			golden(t, filepath.Join("testdata", tt.name+".prom"), data)
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestEscapeLabel(t *testing.T) {
	data := Render("we\"b\\1\n", []Job{Unavailable(NameBackup, os.ErrNotExist)})
	fams := parse(t, data)
	got := fams["drym_backup_last_run_ok"].GetMetric()[0].GetLabel()[0].GetValue()
	if got != "we\"b\\1\n" {
		t.Errorf("host label = %q", got)
	}
}

// TestGatherWriteFile goes through real files: status files written by
// status.Write, then the textfile written atomically and parsed back.
func TestGatherWriteFile(t *testing.T) {
	state := t.TempDir()
	if err := status.Write(filepath.Join(state, status.BackupFile), okBackup()); err != nil {
		t.Fatal(err)
	}
	// A corrupt test-restore.json must read as not ok, never as absent-and-fine.
	if err := os.WriteFile(filepath.Join(state, status.TestRestoreFile), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs := Gather(state)
	if len(jobs) != 3 {
		t.Fatalf("Gather returned %d jobs, want 3", len(jobs))
	}
	if jobs[1].Problem == "" || !strings.Contains(jobs[1].Problem, "corrupt") {
		t.Errorf("test restore problem = %q, want it to say corrupt", jobs[1].Problem)
	}
	if !strings.Contains(jobs[2].Problem, "does not exist") {
		t.Errorf("escrow problem = %q, want does not exist", jobs[2].Problem)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "drym.prom")
	if err := WriteFile(path, Render("web1", jobs)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fams := parse(t, data)
	for name, w := range map[string]float64{
		"drym_backup_last_run_ok": 1, "drym_test_restore_last_run_ok": 0, "drym_escrow_last_run_ok": 0,
	} {
		if got, ok := value(fams, name); !ok || got != w {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, w)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("textfile mode: %v %v, want 0644 (node_exporter runs as its own user)", fi.Mode(), err)
	}
	// Nothing but the textfile is left behind: a stray temp file ending in
	// .prom would be scraped.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only drym.prom", len(ents))
	}

	err = WriteFile(filepath.Join(dir, "no-such-dir", "drym.prom"), data)
	if err == nil || !strings.Contains(err.Error(), "create the directory") {
		t.Errorf("write into a missing directory: %v, want an error saying to create it", err)
	}
}
