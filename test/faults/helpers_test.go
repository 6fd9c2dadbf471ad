// Package faults holds drym's end-to-end fault tests: the built binaries run
// as real processes against real servers (S3: versitygw, SeaweedFS), and the tests
// kill, interrupt, starve and confuse them. Each test states the worst day it
// stands for and proves the two promises: nothing is lost, and no check says
// OK when it should not.
package faults

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/testutil"
)

// host is the host name every test backs up as.
const host = "faulthost"

// bigSize is the size of the shared source: large enough (incompressible,
// so the whole of it is uploaded) that a backup takes a couple of seconds,
// which is the window the tests kill and signal processes in.
const bigSize = 300 << 20

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	testutil.RemoveBinaries()
	os.Exit(code)
}

// bigSource returns a directory holding bigSize bytes of random data and a
// few small files, made once per test binary and shared read-only.
func bigSource(t *testing.T) string {
	t.Helper()
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "drym-faults-src-")
		if bigErr != nil {
			return
		}
		f, err := os.Create(filepath.Join(bigDir, "random.bin"))
		if err != nil {
			bigErr = err
			return
		}
		rng := rand.NewChaCha8([32]byte{'d', 'r', 'y', 'm'})
		buf := make([]byte, 1<<20)
		for written := 0; written < bigSize; written += len(buf) {
			_, _ = rng.Read(buf)
			if _, err := f.Write(buf); err != nil {
				bigErr = err
				f.Close()
				return
			}
		}
		if bigErr = f.Close(); bigErr != nil {
			return
		}
		bigErr = os.WriteFile(filepath.Join(bigDir, "small.txt"), []byte("hello\n"), 0o644)
	})
	if bigErr != nil {
		t.Fatalf("cannot make the big source: %v", bigErr)
	}
	return bigDir
}

// smallSource returns a fresh directory with a few small files.
func smallSource(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, body := range []string{"one\n", "two\n", strings.Repeat("x", 10000)} {
		if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i))), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// env is one drym installation in a temp dir: settings, state dir, host key.
type env struct {
	t        *testing.T
	dir      string
	cfgPath  string
	cfg      *config.Config
	environ  []string
	runner   string
	stateDir string
}

// newEnv writes settings for sources and dest and runs `backup_runner init`
// (which creates the host key). extra is added to the environment of every
// drym process (AWS profile files for S3).
func newEnv(t *testing.T, dest config.Remote, environ []string, sources ...string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		t: t, dir: dir, cfgPath: filepath.Join(dir, "etc", "drym.toml"),
		runner: testutil.Binary(t, "backup_runner"), stateDir: filepath.Join(dir, "state"),
	}
	if environ == nil {
		environ = cleanEnv()
	}
	e.environ = environ
	e.cfg = &config.Config{
		Host: host, Sources: sources, StateDir: e.stateDir,
		KeyFile: filepath.Join(dir, "etc", "host-key.asc"), Destination: dest,
	}
	e.writeConfig()
	if r := e.run("init"); r.code != 0 {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return e
}

func (e *env) writeConfig() {
	e.t.Helper()
	data, err := e.cfg.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(e.cfgPath), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// dirDest returns a dir destination in a fresh temp dir, and the directory
// the host's objects land in.
func dirDest(t *testing.T) (config.Remote, string) {
	d := t.TempDir()
	return config.Remote{URL: "dir://" + d}, filepath.Join(d, host)
}

// s3Dest returns the destination of an S3 server: uploads with the
// put-only profile, reads with the read-only one.
func s3Dest(s *testutil.S3Server) config.Remote {
	return config.Remote{
		URL: "s3://" + s.Bucket + "/drym", Endpoint: s.Endpoint, PathStyle: true, Region: "us-east-1",
		Profile: s.PutProfile, ReadProfile: s.ReadProfile,
	}
}

// cleanEnv is the environment without AWS or DRYM settings from the machine.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "DRYM_CONFIG=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// run runs backup_runner with the env's settings and waits (2 minutes at
// most: every fault must end in a verdict, never a hang).
func (e *env) run(args ...string) result {
	e.t.Helper()
	p := e.start(args...)
	return p.wait(2 * time.Minute)
}

// proc is a running drym process.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *bytes.Buffer
	began          time.Time
	done           chan struct{}
	err            error
}

func (e *env) start(args ...string) *proc {
	e.t.Helper()
	return startProc(e.t, e.environ, e.runner, append([]string{"--config", e.cfgPath}, args...)...)
}

func startProc(t *testing.T, environ []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = environ
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.began = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) wait(limit time.Duration) result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("%s did not end within %s\nstdout: %s\nstderr: %s", strings.Join(p.cmd.Args, " "), limit, p.stdout, p.stderr)
	}
	r := result{code: 0, stdout: p.stdout.String(), stderr: p.stderr.String(), took: time.Since(p.began)}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = -int(ws.Signal())
		}
	} else if p.err != nil {
		p.t.Fatalf("wait: %v", p.err)
	}
	return r
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// partialWritten reports whether a .partial file with data exists in dir:
// the dir store has started writing the object.
func partialWritten(dir string) bool {
	ents, _ := os.ReadDir(dir)
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), ".partial") {
			if fi, err := de.Info(); err == nil && fi.Size() > 1<<20 {
				return true
			}
		}
	}
	return false
}

// objects returns the final-named (visible) objects in a dir store's host
// directory, and the leftover hidden .partial files.
func objects(t *testing.T, dir string) (final, partial []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, de := range ents {
		switch {
		case strings.HasSuffix(de.Name(), ".partial"):
			partial = append(partial, de.Name())
		case !strings.HasPrefix(de.Name(), "."):
			final = append(final, de.Name())
		}
	}
	return final, partial
}

// backupStatus reads backup.json as the checks do.
func (e *env) backupStatus() *status.Backup {
	e.t.Helper()
	var b status.Backup
	if err := status.Read(filepath.Join(e.stateDir, status.BackupFile), &b); err != nil {
		e.t.Fatalf("backup.json: %v", err)
	}
	return &b
}

// check runs a check binary and returns its exit code and output.
func check(t *testing.T, environ []string, name string, args ...string) result {
	t.Helper()
	p := startProc(t, environ, checkBinary(t, name), args...)
	return p.wait(time.Minute)
}

// checkBinary builds a check. A check not written yet fails the test in CI
// (every check must exist there) and skips it locally.
func checkBinary(t *testing.T, name string) string {
	t.Helper()
	if m, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "cmd", name, "main.go")); len(m) == 0 {
		testutil.Unable(t, "cmd/%s not written yet", name)
	}
	return testutil.Binary(t, name)
}

// wantState fails unless a check's output starts with state and its exit
// code matches.
func wantState(t *testing.T, r result, state string) {
	t.Helper()
	codes := map[string]int{"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
	if r.code != codes[state] || !strings.HasPrefix(r.stdout, state) {
		t.Fatalf("want %s (exit %d), got exit %d:\n%s%s", state, codes[state], r.code, r.stdout, r.stderr)
	}
}

// oneLine fails unless s is exactly one non-empty line.
func oneLine(t *testing.T, what, s string) {
	t.Helper()
	s = strings.TrimSuffix(s, "\n")
	if s == "" || strings.Contains(s, "\n") {
		t.Fatalf("%s: want one line, got %q", what, s)
	}
}

// mount runs mount(8), failing in CI and skipping locally where the machine
// does not allow it; the mount is undone when the test ends.
func mount(t *testing.T, target string, args ...string) {
	t.Helper()
	out, err := exec.Command("mount", append(args, target)...).CombinedOutput()
	if err != nil {
		testutil.Unable(t, "cannot mount here (%v): %s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = exec.CommandContext(ctx, "umount", "-l", target).Run()
	})
}
