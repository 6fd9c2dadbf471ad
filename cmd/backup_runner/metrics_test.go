package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestBackupWritesMetrics: after a backup with [metrics]
// textfile set, the file parses as exposition format and holds the backup's
// metrics, and the jobs that never ran say so (last_run_ok 0).
func TestBackupWritesMetrics(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	textfile := filepath.Join(dir, "textfile", "drym.prom")
	if err := os.Mkdir(filepath.Dir(textfile), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "drym.toml")
	settings := `host = "metrics1"
sources = ["` + src + `"]
state_dir = "` + filepath.Join(dir, "state") + `"
key_file = "` + filepath.Join(dir, "key", "host-key.asc") + `"

[destination]
url = "dir://` + filepath.Join(dir, "dest") + `"

[metrics]
textfile = "` + textfile + `"
`
	if err := os.WriteFile(cfg, []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--config", cfg, "init"}, &stdout, &stderr); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, &stdout, &stderr)
	}
	before := time.Now().Add(-time.Second)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--config", cfg, "-v", "backup"}, &stdout, &stderr); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, &stdout, &stderr)
	}
	// -v: the structured debug lines say what happened to the textfile and
	// why no progress was drawn.
	for _, want := range []string{"metrics: textfile written", "progress: off"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-v stderr lacks %q:\n%s", want, &stderr)
		}
	}
	data, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatalf("textfile not written: %v\nstderr: %s", err, &stderr)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("textfile does not parse: %v\n%s", err, data)
	}
	get := func(name string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) != 1 {
			t.Errorf("%s missing from\n%s", name, data)
			return -1
		}
		m := f.GetMetric()[0]
		if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "host" || l[0].GetValue() != "metrics1" {
			t.Errorf("%s labels %v, want host=metrics1", name, l)
		}
		return m.GetGauge().GetValue()
	}
	if v := get("drym_backup_last_run_ok"); v != 1 {
		t.Errorf("drym_backup_last_run_ok = %v, want 1", v)
	}
	if v := get("drym_backup_last_success_timestamp_seconds"); v < float64(before.Unix()) || v > float64(time.Now().Unix()+1) {
		t.Errorf("drym_backup_last_success_timestamp_seconds = %v, want about now", v)
	}
	if v := get("drym_backup_last_size_bytes"); v <= 0 {
		t.Errorf("drym_backup_last_size_bytes = %v, want the object size", v)
	}
	if v := get("drym_backup_last_duration_seconds"); v < 0 || v > 600 {
		t.Errorf("drym_backup_last_duration_seconds = %v", v)
	}
	for _, job := range []string{"test_restore", "escrow"} {
		if v := get("drym_" + job + "_last_run_ok"); v != 0 {
			t.Errorf("drym_%s_last_run_ok = %v, want 0 (never ran)", job, v)
		}
		if v := get("drym_" + job + "_last_success_timestamp_seconds"); v != 0 {
			t.Errorf("drym_%s_last_success_timestamp_seconds = %v, want 0 (never)", job, v)
		}
	}

	// A textfile that cannot be written is a warning on stderr, not a
	// failed backup: the status file, which the checks read, is written.
	if err := os.Chmod(filepath.Dir(textfile), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Dir(textfile), 0o755)
	if os.Geteuid() == 0 {
		os.RemoveAll(filepath.Dir(textfile)) // root ignores modes: take the directory away instead
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--config", cfg, "backup"}, &stdout, &stderr); code != 0 {
		t.Fatalf("backup with an unwritable textfile: exit %d, want 0\n%s", code, &stderr)
	}
	if !strings.Contains(stderr.String(), "metrics textfile not written") {
		t.Errorf("stderr lacks the warning:\n%s", &stderr)
	}
}
