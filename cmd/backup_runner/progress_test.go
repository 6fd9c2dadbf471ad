package main

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/testutil"
)

var etaRe = regexp.MustCompile(`\d+% ETA (\d+[hms])+`)

// TestProgressRender drives the bar as a backup does and reads what it drew.
func TestProgressRender(t *testing.T) {
	tests := []struct {
		name     string
		estimate int64
		out      int64 // bytes stored before Close
		wantETA  bool  // the final line shows a percentage and an ETA
	}{
		{name: "no-estimate", estimate: 0, out: 3 << 20},
		{name: "estimate", estimate: 8 << 20, out: 3 << 20, wantETA: true},
		// Past the estimate the line must keep counting (not finish early)
		// and show no made-up ETA.
		{name: "estimate-passed", estimate: 2 << 20, out: 3 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := &progress{label: "backup", inVerb: "read", outVerb: "stored", log: slog.New(slog.DiscardHandler), start: time.Now()}
			p.total.Store(tt.estimate)
			p.draw(&buf)
			for i := 0; i < 3; i++ {
				p.File(1 << 20)
				p.Output(int(tt.out / 3))
				time.Sleep(refresh + 50*time.Millisecond)
			}
			p.Close()
			p.Close() // twice is fine
			got := buf.String()
			for _, want := range []string{"backup: 3 files", "3.0 MiB read", "/s"} {
				if !strings.Contains(got, want) {
					t.Errorf("progress output lacks %q:\n%q", want, got)
				}
			}
			if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
				t.Errorf("want one line ended by one newline (redraws use \\r): %q", got)
			}
			last := got[strings.LastIndex(strings.TrimSuffix(got, "\n"), "\r")+1:]
			if !strings.Contains(last, "3 files, 3.0 MiB read") || !strings.Contains(last, "(3.0 MiB") {
				t.Errorf("final line does not show the final counts: %q", last)
			}
			if g := etaRe.MatchString(last); g != tt.wantETA {
				t.Errorf("final line shows an ETA: %v, want %v: %q", g, tt.wantETA, last)
			}
			if tt.estimate == 0 && strings.Contains(got, "%") {
				t.Errorf("a percentage without an estimate: %q", got)
			}
		})
	}
}

// TestProgressOff: not a terminal, or -q, draws nothing; -v says why.
func TestProgressOff(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range []struct {
		name   string
		stderr io.Writer
		quiet  bool
		reason string
	}{
		{"buffer", &bytes.Buffer{}, false, "not a terminal"},
		{"regular-file", f, false, "not a terminal"},
		{"quiet", f, true, "-q"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			a := &app{stderr: tt.stderr, quiet: tt.quiet, log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			p := newProgress(a, "backup")
			p.File(10)
			p.Output(10)
			p.Close()
			if p.bar != nil {
				t.Error("a bar was started")
			}
			if b, ok := tt.stderr.(*bytes.Buffer); ok && b.Len() > 0 {
				t.Errorf("stderr got %q", b)
			}
			if !strings.Contains(logs.String(), tt.reason) || !strings.Contains(logs.String(), "files=1") {
				t.Errorf("debug log lacks the reason %q or the totals:\n%s", tt.reason, logs.String())
			}
		})
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("progress wrote %d bytes to a regular file", fi.Size())
	}
}

// writeRandomTree writes n incompressible files of size bytes, so a backup
// of them takes long enough to be watched.
func writeRandomTree(t *testing.T, dir string, n, size int) {
	t.Helper()
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	buf := make([]byte, size)
	for i := range n {
		for j := 0; j < len(buf); j += 8 {
			v := r.Uint64()
			for k := 0; k < 8 && j+k < len(buf); k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProgressInTerminal: a backup under cron-like
// conditions (stderr a pipe, no TTY) writes nothing on stderr; the next one,
// run in a real terminal (tmux), shows files, bytes, rate and an ETA taken
// from the first backup's size.
func TestProgressInTerminal(t *testing.T) {
	tmux := testutil.Need(t, "tmux")
	if testing.Short() {
		t.Skip("writes and backs up 192 MiB")
	}
	bin := testutil.Binary(t, "backup_runner")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRandomTree(t, src, 48, 4<<20)
	cfg := filepath.Join(dir, "drym.toml")
	runner := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"--config", cfg}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if out, errs, err := runner("init", "--source", src, "--dest", "dir://"+filepath.Join(dir, "dest"),
		"--state-dir", filepath.Join(dir, "state"), "--key-file", filepath.Join(dir, "key", "host-key.asc"), "--host", "tty1"); err != nil {
		t.Fatalf("init: %v\n%s%s", err, out, errs)
	}

	// Cron: stdout and stderr are pipes.
	out, errs, err := runner("backup")
	if err != nil {
		t.Fatalf("backup without a TTY: %v\n%s%s", err, out, errs)
	}
	if errs != "" {
		t.Errorf("backup without a TTY wrote on stderr: %q", errs)
	}
	if !strings.Contains(out, "backup ok") {
		t.Errorf("backup without a TTY: stdout %q, want the summary", out)
	}

	// Terminal: tmux on a private socket, so no user's server is touched.
	sock := filepath.Join(dir, "tmux.sock")
	tm := func(args ...string) (string, error) {
		b, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		return string(b), err
	}
	shell := bin + " --config " + cfg + " backup; echo EXIT=$?; sleep 60"
	if b, err := tm("new-session", "-d", "-x", "160", "-y", "20", shell); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, b)
	}
	t.Cleanup(func() { tm("kill-server") })
	var screens []string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		screen, err := tm("capture-pane", "-p")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, screen)
		}
		screens = append(screens, screen)
		if strings.Contains(screen, "EXIT=") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup in tmux did not finish in 3 minutes; screen:\n%s", screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	final := screens[len(screens)-1]
	if !strings.Contains(final, "EXIT=0") || !strings.Contains(final, "backup ok") {
		t.Fatalf("backup in tmux failed:\n%s", final)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`backup: 48 files, 192\.0 MiB read`), // the final state stays on screen
		regexp.MustCompile(`\d+(\.\d+)? [KMG]iB/s`),             // rate
	} {
		if !want.MatchString(final) {
			t.Errorf("final screen lacks %s:\n%s", want, final)
		}
	}
	var sawETA, sawMidway bool
	for _, s := range screens {
		if etaRe.MatchString(s) {
			sawETA = true
		}
		if m := regexp.MustCompile(`backup: (\d+) files`).FindStringSubmatch(s); m != nil && m[1] != "48" {
			sawMidway = true
		}
	}
	if !sawETA {
		t.Errorf("no screen showed a percentage and an ETA (estimate from the first backup); %d screens, last:\n%s", len(screens), final)
	}
	if !sawMidway {
		t.Errorf("no screen showed progress while the backup ran; %d screens", len(screens))
	}
	t.Logf("%d screens captured; final:\n%s", len(screens), final)
}
