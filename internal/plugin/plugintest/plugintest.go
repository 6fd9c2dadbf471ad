// Package plugintest holds what every check's tests share: golden files
// refreshed with -update, running the built binary, and the rule that a
// non-OK first line names its fix.
package plugintest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alexflint/go-arg"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/testutil"
)

// Update is the -update flag: rewrite testdata/*.golden instead of comparing.
var Update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Golden compares got with testdata/<name>.golden (or writes it under -update).
func Golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *Update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update to accept):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// fixes are the marks of a first line that names its fix: a drym command
// to run, or the admin action the message spells out. A flag alone is not
// one: "--remote-verify: reading … failed" names no fix, "raise -t" or
// "pass --config" does (each flag a fix may ask for is listed).
var fixes = []string{
	"pass --config", "pass --monitoring-config", "pass --allow-unsigned", "pass --backup ",
	"backup_runner ", "check_backup_age --host", "upgrade drym", "group nagios", "timedatectl", "systemctl",
	"read_profile", "raise -t", "(see --help)", "see check_", "correct the", "chmod ", "chown ",
}

// NamesFix reports whether a first line names a command or action that
// fixes the problem.
func NamesFix(line string) bool {
	for _, f := range fixes {
		if strings.Contains(line, f) {
			return true
		}
	}
	return false
}

// Main is TestMain for a check's package: it builds the check in the
// current directory, and the commands in also (package paths such as
// "../backup_runner"), once into DRYM_BIN (unless DRYM_BIN points at make's
// build already) so each binary test does not rebuild them.
func Main(m *testing.M, also ...string) {
	flag.Parse()
	if os.Getenv("DRYM_BIN") != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "drym-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("DRYM_BIN", dir)
	for _, pkg := range append([]string{"."}, also...) {
		if out, err := exec.Command("go", "build", "-o", dir, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Defaults parses argv (empty: the flag defaults) into a check's args
// struct, as the check's own command line would, without the environment.
func Defaults[A any](t testing.TB, argv ...string) A {
	t.Helper()
	var a A
	p, err := arg.NewParser(arg.Config{IgnoreEnv: true}, &a)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Parse(argv); err != nil {
		t.Fatal(err)
	}
	return a
}

// Verdict is what an evaluate table row expects: the state, and a part of
// the first line (and of the long output, when set).
type Verdict struct {
	State plugin.State
	First string
	Long  string
}

// Judge holds an evaluate result to what every check's table promises: the
// expected state and first line, a fix named on every non-OK first line, the
// whole output within plugin.MaxOutput, and the golden file name (the
// gallery shows it).
func Judge(t *testing.T, name string, r plugin.Result, want Verdict) {
	t.Helper()
	if r.State != want.State {
		t.Errorf("state %v, want %v: %s", r.State, want.State, r.Summary)
	}
	out := plugin.Format(r)
	first, rest, _ := strings.Cut(out, "\n")
	if !strings.Contains(first, want.First) {
		t.Errorf("first line\n%s\nlacks\n%s", first, want.First)
	}
	if !strings.Contains(rest, want.Long) {
		t.Errorf("long output\n%s\nlacks\n%s", rest, want.Long)
	}
	if r.State != plugin.OK && !NamesFix(first) {
		t.Errorf("non-OK first line names no fix: %s", first)
	}
	if len(out) > plugin.MaxOutput {
		t.Errorf("output %d bytes, more than %d", len(out), plugin.MaxOutput)
	}
	Golden(t, name, out)
}

// Result is one run of a check binary.
type Result struct {
	Code           int
	Stdout, Stderr string
	Took           time.Duration
}

// First is the first line of stdout.
func (r Result) First() string {
	first, _, _ := strings.Cut(r.Stdout, "\n")
	return first
}

// Run runs the built binary name with argv. DRYM_CONFIG points nowhere
// unless env sets it, so the host's real settings never leak into a test.
func Run(t testing.TB, name string, env []string, argv ...string) Result {
	t.Helper()
	bin := testutil.Binary(t, name)
	cmd := exec.Command(bin, argv...)
	cmd.Env = append(os.Environ(), "DRYM_CONFIG=/nonexistent/drym.toml")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errOut.String(), Took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}
