package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/testutil"
)

// kit is one drym host in temp dirs, for the runner's end-to-end tests: a
// settings file, a host key, a source tree, a destination directory and an
// escrow drop, and the built backup_runner to drive them. The three ways to
// make one differ only in the tree and in how far they set it up:
//
//   - newFixture: the full tree (buildTree), not initialised (call init);
//   - newHost: a small tree (smallTree), not initialised;
//   - newRig: the full tree, settings written as a file for host "h1", and
//     init run.
type kit struct {
	t                                     *testing.T
	bin, dir, cfg, src, dest, drop, state string
	key                                   string // the host secret key file
	env                                   []string
}

func newKit(t *testing.T) *kit {
	t.Helper()
	dir := t.TempDir()
	return &kit{
		t: t, bin: testutil.Binary(t, "backup_runner"), dir: dir,
		cfg: filepath.Join(dir, "etc", "drym.toml"), src: filepath.Join(dir, "src"),
		dest: filepath.Join(dir, "dest"), drop: filepath.Join(dir, "escrow-drop"),
		state: filepath.Join(dir, "state"), key: filepath.Join(dir, "etc", "host-key.asc"),
	}
}

// newFixture is a kit with the full tree (the things backups get wrong),
// not yet initialised.
func newFixture(t *testing.T) *kit {
	t.Helper()
	k := newKit(t)
	buildTree(t, k.src)
	return k
}

// newHost is a kit with a small tree, not yet initialised.
func newHost(t *testing.T) *kit {
	t.Helper()
	k := newKit(t)
	smallTree(t, k.src)
	return k
}

// newRig is a kit with the full tree and settings for host "h1" (extra is
// appended to the settings file; env, when set, is the runner's
// environment), initialised.
func newRig(t *testing.T, destURL string, extra string, env []string) *kit {
	t.Helper()
	k := newKit(t)
	k.env = env
	if destURL == "" {
		destURL = "dir://" + k.dest
	}
	buildTree(t, k.src)
	toml := fmt.Sprintf("host = \"h1\"\nsources = [%q]\nstate_dir = %q\nkey_file = %q\n\n[destination]\nurl = %q\n%s",
		k.src, k.state, k.key, destURL, extra)
	must(t, os.MkdirAll(filepath.Dir(k.cfg), 0o755))
	must(t, os.WriteFile(k.cfg, []byte(toml), 0o644))
	k.mustRun("init")
	return k
}

// run runs backup_runner with the kit's settings (5 minutes at most) and
// returns stdout, stderr and the exit code.
func (k *kit) run(args ...string) (stdout, stderr string, code int) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--config", k.cfg}, args...)...)
	cmd.Env = k.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		k.t.Fatalf("backup_runner %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// check runs a real check binary with the kit's settings, as Nagios
// would, and returns its stdout and exit code.
func (k *kit) check(name string, args ...string) (string, int) {
	k.t.Helper()
	res := plugintest.Run(k.t, name, k.env, append([]string{"--config", k.cfg}, args...)...)
	return res.Stdout, res.Code
}

// mustRun runs backup_runner, fails the test unless it exits 0, and
// returns its stdout.
func (k *kit) mustRun(args ...string) string {
	k.t.Helper()
	out, errs, code := k.run(args...)
	if code != 0 {
		k.t.Fatalf("backup_runner %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// combined runs backup_runner and returns its exit code and its stdout and
// stderr together.
func (k *kit) combined(args ...string) (int, string) {
	k.t.Helper()
	out, errs, code := k.run(args...)
	return code, out + errs
}

// init runs `backup_runner init` for host web1 with dest and the flags in
// extra, and returns its stdout.
func (k *kit) init(dest string, extra ...string) string {
	k.t.Helper()
	return k.mustRun(append([]string{"init", "--source", k.src, "--dest", dest, "--state-dir", k.state,
		"--key-file", k.key, "--host", "web1"}, extra...)...)
}

func (k *kit) backupStatus() status.Backup {
	k.t.Helper()
	var b status.Backup
	must(k.t, status.Read(filepath.Join(k.state, status.BackupFile), &b))
	return b
}

func (k *kit) testRestoreStatus() status.TestRestore {
	k.t.Helper()
	var tr status.TestRestore
	must(k.t, status.Read(filepath.Join(k.state, status.TestRestoreFile), &tr))
	return tr
}

// smallTree is a few files, a nested directory and a symlink: what the
// escrow's restore drills restore.
func smallTree(t *testing.T, src string) {
	t.Helper()
	files := map[string]string{
		"etc/app.conf":         "listen 8080\n",
		"etc/nested/deep/file": strings.Repeat("drym ", 1000),
		"www/index.html":       "<h1>hello</h1>\n",
		"www/empty":            "",
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(data), 0o640))
	}
	must(t, os.Symlink("app.conf", filepath.Join(src, "etc/link")))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
