package testutil

import (
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// envAsUser marks the child process that InChildAs starts.
const envAsUser = "DRYM_TEST_AS_USER"

// InChildAs runs the calling test again in a child process as the given
// user (root must not be the one a permission test runs as: root reads
// everything) and reports whether this process is that child. The parent
// returns false once the child passed (and fails the test if it did not);
// the child returns true and runs the test's body.
//
//	if !testutil.InChildAs(t, "nobody") {
//		return
//	}
//	… the test, as nobody …
//
// Without root (so as the user already), it returns true at once.
func InChildAs(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(envAsUser) == name || os.Geteuid() != 0 {
		return true
	}
	u, err := user.Lookup(name)
	if err != nil {
		Unable(t, "no user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The test binary lives in go's build directory, which only root may
	// enter: the child runs a copy.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "drym-as-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(self))
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envAsUser+"="+name, "TMPDIR=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as user %s: %v\n%s", t.Name(), name, err, out)
	}
	t.Logf("ran as user %s:\n%s", name, out)
	return false
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
