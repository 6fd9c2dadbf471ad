package plugin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testArgs struct {
	Common
	Warning AgeRange `arg:"-w,--warning" default:"26h" help:"age for WARNING"`
	Shrink  Percent  `arg:"--shrink" default:"50%"`
	Fail    bool     `arg:"--fail"`
}

func (testArgs) Description() string { return "check_test: a test check" }

func (a *testArgs) Validate() error {
	if a.Fail {
		return errors.New("--fail given")
	}
	return nil
}

func runCheck(t *testing.T, run func(ctx context.Context, a *testArgs) Result, argv ...string) (int, string, string, *testArgs) {
	t.Helper()
	var a testArgs
	var out, errOut bytes.Buffer
	c := Check{Name: "check_test", Args: &a, Run: func(ctx context.Context) Result { return run(ctx, &a) }}
	code := c.Exec(argv, &out, &errOut)
	return code, out.String(), errOut.String(), &a
}

func okRun(ctx context.Context, a *testArgs) Result {
	Doing(ctx, "checking")
	return Result{State: OK, Summary: "all good, warning at " + a.Warning.String()}
}

func TestExecFlags(t *testing.T) {
	tests := []struct {
		name      string
		argv      []string
		code      int
		firstLine string // prefix
		contains  string
	}{
		{"ok", nil, 0, "OK: all good, warning at 26h", ""},
		{"override", []string{"-w", "1w2d"}, 0, "OK: all good, warning at 1w2d", ""},
		{"help", []string{"-h"}, 0, "check_test: a test check", "--warning"},
		{"help long", []string{"--help", "--bogus"}, 0, "check_test: a test check", "Usage: check_test"},
		{"version", []string{"--version"}, 0, "check_test drym ", ""},
		{"unknown flag", []string{"--bogus"}, 3, "UNKNOWN: bad command line: unknown argument --bogus", "Usage: check_test"},
		{"bad threshold", []string{"-w", "26x"}, 3, "UNKNOWN: bad command line: error processing", "unknown unit"},
		{"bad range", []string{"-w", "2h:1h"}, 3, "UNKNOWN: bad command line:", "start is greater than end"},
		{"bad timeout", []string{"-t", "soon"}, 3, "UNKNOWN: bad command line:", "--timeout"},
		{"zero timeout", []string{"-t", "0"}, 3, "UNKNOWN: bad command line: -t/--timeout must be longer than 0", ""},
		{"zero timeout unit", []string{"--timeout", "0s"}, 3, "UNKNOWN: bad command line: -t/--timeout must be longer than 0", ""},
		{"bad percent", []string{"--shrink", "150%"}, 3, "UNKNOWN: bad command line:", "bad percentage"},
		{"missing value", []string{"-w"}, 3, "UNKNOWN: bad command line:", "missing value"},
		{"positional", []string{"extra"}, 3, "UNKNOWN: bad command line:", "extra"},
		{"validate", []string{"--fail"}, 3, "UNKNOWN: bad command line: --fail given", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut, _ := runCheck(t, okRun, tt.argv...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			if !strings.HasPrefix(out, tt.firstLine) {
				t.Errorf("output starts %.100q, want prefix %q", out, tt.firstLine)
			}
			if !strings.Contains(out, tt.contains) {
				t.Errorf("output lacks %q:\n%s", tt.contains, out)
			}
			if errOut != "" {
				t.Errorf("stderr without -v: %q", errOut)
			}
			if len(out) > MaxOutput {
				t.Errorf("output %d bytes", len(out))
			}
		})
	}
}

func TestExecVerboseLogsToStderr(t *testing.T) {
	code, _, errOut, _ := runCheck(t, okRun, "-v")
	if code != 0 || !strings.Contains(errOut, "checking") {
		t.Errorf("code %d, stderr %q", code, errOut)
	}
}

func TestExecTimeout(t *testing.T) {
	start := time.Now()
	block := make(chan struct{})
	defer close(block)
	code, out, _, _ := runCheck(t, func(ctx context.Context, a *testArgs) Result {
		Doing(ctx, "reading /hung/backup.json")
		<-block // ignores ctx, like open(2) on a FIFO
		return Result{State: OK, Summary: "too late"}
	}, "-t", "1")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v with -t 1", el)
	}
	if code != 3 || !strings.HasPrefix(out, "UNKNOWN: timed out after 1s reading /hung/backup.json") {
		t.Errorf("code %d out %q", code, out)
	}
}

func TestExecTimeoutWinsOverCtxError(t *testing.T) {
	code, out, _, _ := runCheck(t, func(ctx context.Context, a *testArgs) Result {
		Doing(ctx, "asking the store")
		<-ctx.Done()
		return Result{State: Critical, Summary: "store said: " + ctx.Err().Error()}
	}, "-t", "200ms")
	if code != 3 || !strings.HasPrefix(out, "UNKNOWN: timed out after 200ms asking the store") {
		t.Errorf("code %d out %q", code, out)
	}
}

func TestExecPanicIsCritical(t *testing.T) {
	code, out, _, _ := runCheck(t, func(ctx context.Context, a *testArgs) Result {
		panic("boom")
	})
	if code != 2 || !strings.HasPrefix(out, "CRITICAL:") || !strings.Contains(out, "boom") {
		t.Errorf("code %d out %q", code, out)
	}
}

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "drym.toml")
	good := "host = \"h1\"\nsources = [\"/etc\"]\nstate_dir = \"" + state + "\"\n[destination]\nurl = \"dir:///srv/backup\"\n"
	if err := os.WriteFile(cfgPath, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	badPath := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badPath, []byte("hots = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "none.toml")
	t.Setenv("DRYM_CONFIG", missing)
	tests := []struct {
		name     string
		c        Common
		wantDir  string
		wantCfg  bool
		state    State // of SettingsResult when err != nil; OK for no error
		contains string
	}{
		{"config", Common{Config: cfgPath}, state, true, OK, ""},
		{"config + state-dir", Common{Config: cfgPath, StateDir: dir}, dir, true, OK, ""},
		{"state-dir only", Common{StateDir: state}, state, false, OK, ""},
		{"nothing", Common{}, "", false, Critical, "not set up: run backup_runner init (no settings file " + missing + ")"},
		{"no state dir", Common{StateDir: filepath.Join(dir, "nope")}, "", false, Critical, "not set up: run backup_runner init (no state directory"},
		{"bad config", Common{Config: badPath}, "", false, Unknown, "unknown key \"hots\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, sd, err := tt.c.Settings(context.Background())
			if err != nil {
				r := SettingsResult(err)
				if r.State != tt.state || !strings.Contains(r.Summary, tt.contains) {
					t.Errorf("got %v %q, want %v containing %q", r.State, r.Summary, tt.state, tt.contains)
				}
				return
			}
			if tt.state != OK {
				t.Fatalf("no error, want %v", tt.state)
			}
			if sd != tt.wantDir || (cfg != nil) != tt.wantCfg {
				t.Errorf("dir %q cfg %v", sd, cfg != nil)
			}
		})
	}
}
