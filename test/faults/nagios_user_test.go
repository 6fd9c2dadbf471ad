package faults

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/drym-backup/drym/internal/testutil"
)

// TestChecksAsNagiosAfterUmask077: root sets drym up with umask 077 (a
// common hardening), then the checks run as Debian's nagios user, as NRPE
// runs them. Every file the checks need must be readable by nagios, out of
// the box, and the secret key must not be.
func TestChecksAsNagiosAfterUmask077(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		testutil.Unable(t, "needs root to run as root and as nagios")
	}
	u, err := user.Lookup("nagios")
	if err != nil {
		testutil.Unable(t, "no nagios user: %v (.ci/run installs nagios4)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// t.TempDir's parent is 0700: nagios could not even reach the files.
	base, err := os.MkdirTemp("", "drym-umask-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	etc, state, dest, drop := filepath.Join(base, "etc", "drym"), filepath.Join(base, "state"), filepath.Join(base, "dest"), filepath.Join(base, "escrow")
	cfg := filepath.Join(etc, "drym.toml")
	runner := testutil.Binary(t, "backup_runner")
	asRoot := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", `umask 077; exec "$@"`, "sh", runner)
		cmd.Args = append(cmd.Args, append([]string{"--config", cfg}, args...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("backup_runner %s (umask 077): %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	asRoot("init", "--source", smallSource(t), "--dest", "dir://"+dest, "--escrow", "dir://"+drop,
		"--state-dir", state, "--key-file", filepath.Join(etc, "host-key.asc"), "--host", host)
	asRoot("backup")
	asRoot("test-restore")

	for _, check := range []string{"check_backup_age", "check_test_restore", "check_key_escrow"} {
		cmd := exec.Command(checkBinary(t, check), "--config", cfg)
		cmd.Env = cleanEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "OK: ") {
			t.Errorf("%s as nagios after a umask 077 setup: %v\n%s", check, err, out)
		}
	}
	// Whatever else, nagios never reads the bare secret key: not the key
	// file, not an escrow zip in the drop.
	zips, _ := filepath.Glob(filepath.Join(drop, "drym-escrow-*.zip"))
	if len(zips) == 0 {
		t.Fatal("no escrow zip shipped")
	}
	for _, p := range append(zips, filepath.Join(etc, "host-key.asc")) {
		cmd := exec.Command("cat", p)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("user nagios can read %s (%d bytes): it holds the bare secret key", p, len(out))
		}
	}
}

// TestStateDirBelongsToOneHost: two settings files sharing one state dir
// would write each other's status files, and one host's failure would read
// as the other's success. The second host is refused (exit 2), before it
// writes anything, by init and by every job.
func TestStateDirBelongsToOneHost(t *testing.T) {
	t.Parallel()
	dest, _ := dirDest(t)
	e := newEnv(t, dest, nil, smallSource(t))
	if r := e.run("backup"); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	before, err := os.ReadFile(filepath.Join(e.stateDir, "backup.json"))
	if err != nil {
		t.Fatal(err)
	}
	// A second settings file, another host, the same (default-like) state dir.
	other := *e
	other.cfgPath = filepath.Join(e.dir, "etc", "other.toml")
	c := *e.cfg
	c.Host = "db7"
	c.KeyFile = filepath.Join(e.dir, "etc", "other-key.asc")
	other.cfg = &c
	other.writeConfig()
	for _, job := range []string{"init", "backup", "test-restore", "escrow"} {
		r := other.run(job)
		if r.code != 2 || !strings.Contains(r.stderr, `belongs to host "`+host+`"`) || !strings.Contains(r.stderr, `for host "db7"`) {
			t.Errorf("%s with another host's state dir: exit %d, stderr %q", job, r.code, r.stderr)
		}
	}
	after, _ := os.ReadFile(filepath.Join(e.stateDir, "backup.json"))
	if string(before) != string(after) {
		t.Error("backup.json of the first host was rewritten")
	}
	if _, err := os.Stat(c.KeyFile); err == nil {
		t.Error("init of the second host created a key before refusing")
	}
}
