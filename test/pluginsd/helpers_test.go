// Package pluginsd proves that plugins.d/ works with the real tools it is
// written for: nagios4 -v and icinga2 daemon -C on Debian's stock configs, a
// real NRPE serving the real checks to check_nrpe, systemd-analyze on the
// units, and aws-cli on the lifecycle rules.
package pluginsd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/testutil"
)

// pluginsDir is plugins.d/ in the repository.
func pluginsDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(testutil.RepoRoot(t), "plugins.d")
}

// publicDir makes a temp dir the nagios user can read and enter. t.TempDir is
// no use for that: its parent is mode 0700, and nagios4, icinga2 and nrpe all
// drop privileges to nagios before they read a file.
func publicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "drym-pluginsd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyFile copies src to dst, readable by everyone.
func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, data, mode)
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile keeps the mode of an existing file and the umask trims a new
	// one: set it for certain.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// result is what a command did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs a command with a deadline and returns its output and exit code;
// it fails the test only when the command cannot run at all.
func run(t testing.TB, timeout time.Duration, cmd *exec.Cmd) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env, c.Dir, c.SysProcAttr = cmd.Env, cmd.Dir, cmd.SysProcAttr
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: timed out after %v\nstdout:\n%s\nstderr:\n%s", c, timeout, stdout.String(), stderr.String())
	}
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", c, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// nagiosUser returns the uid and gid of the nagios user the Debian packages
// create, which NRPE and the checks run as.
func nagiosUser(t testing.TB) (uid, gid uint32) {
	t.Helper()
	u, err := user.Lookup("nagios")
	if err != nil {
		testutil.Unable(t, "user nagios: %v", err)
	}
	id, _ := strconv.ParseUint(u.Uid, 10, 32)
	g, _ := strconv.ParseUint(u.Gid, 10, 32)
	return uint32(id), uint32(g)
}

// needRoot skips (fails in CI) unless the test runs as root: starting NRPE
// as user nagios and running a check as nagios both need it.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	testutil.Unable(t, "not root: cannot switch to user nagios")
}
