// Package deb tests drym's Debian package the way an admin meets it: `make
// deb` builds it, dpkg-deb shows what it holds, dpkg installs it on this
// machine, the installed check runs, and dpkg removes and purges it again.
package deb

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/drym-backup/drym/internal/testutil"
)

// The package's paths the issue and the docs promise.
var wantPaths = []string{
	"/usr/sbin/backup_runner",
	"/usr/lib/nagios/plugins/check_backup_age",
	"/usr/lib/nagios/plugins/check_test_restore",
	"/usr/lib/nagios/plugins/check_key_escrow",
	"/usr/lib/nagios/plugins/check_backup_fleet",
	"/etc/nagios/nrpe.d/drym.cfg",
	"/lib/systemd/system/drym-backup.service",
	"/lib/systemd/system/drym-backup.timer",
	"/lib/systemd/system/drym-test-restore.service",
	"/lib/systemd/system/drym-test-restore.timer",
	"/usr/share/doc/drym/README.md",
	"/usr/share/doc/drym/copyright",
	"/usr/share/doc/drym/docs/REFERENCE.md",
	"/usr/share/doc/drym/docs/SETUP.md",
	"/usr/share/doc/drym/examples/icinga2/drym-commands.conf",
	"/usr/share/doc/drym/examples/icinga2/drym-services.conf",
	"/usr/share/doc/drym/examples/nagios/drym-commands.cfg",
	"/usr/share/doc/drym/examples/nagios/drym-templates.cfg",
	"/usr/share/doc/drym/examples/s3/monitoring-server-read-only-policy.json",
}

var debNameRe = regexp.MustCompile(`^drym_[0-9][A-Za-z0-9.+~]*_amd64\.deb$`)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildOut  []byte
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildDeb runs `make deb` once, into a temp dir (not the tree's bin/, whose
// binaries other tests may be running), and returns the package path.
func buildDeb(t *testing.T) string {
	t.Helper()
	testutil.Need(t, "make")
	root := testutil.RepoRoot(t)
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "drym-deb-"); buildErr != nil {
			return
		}
		cmd := exec.Command("make", "deb", "BIN="+filepath.Join(buildDir, "bin"), "DIST="+filepath.Join(buildDir, "dist"))
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("make deb: %v\n%s", buildErr, buildOut)
	}
	debs, _ := filepath.Glob(filepath.Join(buildDir, "dist", "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v, want one .deb", debs)
	}
	if !debNameRe.MatchString(filepath.Base(debs[0])) {
		t.Errorf("package name %s, want drym_<Debian version>_amd64.deb", filepath.Base(debs[0]))
	}
	return debs[0]
}

// contents lists the paths in the package, as absolute paths.
func contents(t *testing.T, deb string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(run(t, "dpkg-deb", "-c", deb)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		paths[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0]
	}
	return paths
}

func TestPackageContents(t *testing.T) {
	testutil.Need(t, "dpkg-deb")
	deb := buildDeb(t)
	paths := contents(t, deb)
	for _, p := range wantPaths {
		mode, ok := paths[p]
		if !ok {
			t.Errorf("package lacks %s", p)
			continue
		}
		exe := strings.HasPrefix(p, "/usr/sbin/") || strings.HasPrefix(p, "/usr/lib/nagios/plugins/")
		if exe && mode != "-rwxr-xr-x" || !exe && mode != "-rw-r--r--" {
			t.Errorf("%s has mode %s", p, mode)
		}
	}
	if got := run(t, "dpkg-deb", "-I", deb, "conffiles"); strings.TrimSpace(got) != "/etc/nagios/nrpe.d/drym.cfg" {
		t.Errorf("conffiles = %q, want the NRPE snippet only", got)
	}
	for field, want := range map[string]string{
		"Package": "drym", "Architecture": "amd64", "Recommends": "gnupg, zstd", "Depends": "libc6",
	} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	// The plugins start on every Nagios run: they are static (no cgo, no
	// dynamic loader); only backup_runner links libc, for libzstd.
	tree := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, tree)
	for _, p := range wantPaths {
		if !strings.HasPrefix(p, "/usr/sbin/") && !strings.HasPrefix(p, "/usr/lib/nagios/plugins/") {
			continue
		}
		f, err := elf.Open(filepath.Join(tree, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if want := p == "/usr/sbin/backup_runner"; dynamic != want {
			t.Errorf("%s: dynamically linked %v, want %v", p, dynamic, want)
		}
	}

	version := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, "Version"))
	if !strings.Contains(filepath.Base(deb), "_"+version+"_") {
		t.Errorf("file name %s does not carry the version %s", filepath.Base(deb), version)
	}

	// Every program the packaged units, cron example and NRPE snippet start
	// must be where the package puts it: a unit pointing at /usr/bin when
	// the package installs /usr/sbin fails only on the first night.
	root := testutil.RepoRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "plugins.d", "systemd", "*.service"))
	files = append(files, filepath.Join(root, "plugins.d", "nrpe", "drym.cfg"), filepath.Join(root, "plugins.d", "cron", "drym"))
	progRe := regexp.MustCompile(`(/usr/(?:s?bin|lib/nagios/plugins)/(?:backup_runner|check_[a-z_]+))\b`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, m := range progRe.FindAllStringSubmatch(string(data), -1) {
			if _, ok := paths[m[1]]; !ok {
				t.Errorf("%s runs %s, which the package does not install", strings.TrimPrefix(f, root+"/"), m[1])
			}
		}
	}
}

// TestInstall installs the package with dpkg on this machine (CI runs as
// root), runs the installed check, and removes and purges it. Installing a
// package on the developer's own machine is not something a test does
// unasked: it runs in CI, or where DRYM_TEST_INSTALL=1 says it may.
func TestInstall(t *testing.T) {
	if !testutil.InCI() && os.Getenv("DRYM_TEST_INSTALL") != "1" {
		t.Skip("installs the package on this machine: set DRYM_TEST_INSTALL=1 to allow it (CI does)")
	}
	testutil.Need(t, "dpkg")
	if os.Geteuid() != 0 {
		testutil.Unable(t, "dpkg -i needs root")
	}
	if testing.Short() {
		t.Skip("installs a package")
	}
	if err := exec.Command("dpkg-query", "-W", "drym").Run(); err == nil {
		t.Fatal("drym is installed on this machine already; this test installs and purges it (dpkg -r drym first)")
	}
	if _, err := os.Stat("/etc/nagios/nrpe.d/drym.cfg"); err == nil {
		t.Fatal("/etc/nagios/nrpe.d/drym.cfg exists and belongs to no package; move it away before this test")
	}
	deb := buildDeb(t)
	_, etcExisted := os.Stat("/etc/drym")
	_, stateExisted := os.Stat("/var/lib/drym")
	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", "drym").Run()
		// postrm keeps /etc/drym (it would hold the host key); this one the
		// test made, empty.
		if etcExisted != nil {
			os.Remove("/etc/drym")
		}
		if stateExisted != nil {
			os.Remove("/var/lib/drym")
		}
	})

	out := run(t, "dpkg", "-i", deb)
	if !strings.Contains(out, "backup_runner init") && etcExisted != nil {
		t.Errorf("postinst did not say how to set drym up:\n%s", out)
	}
	ver := run(t, "/usr/lib/nagios/plugins/check_backup_age", "--version")
	if !strings.Contains(ver, "check_backup_age") {
		t.Errorf("installed check_backup_age --version: %q", ver)
	}
	for _, p := range []string{"/usr/sbin/backup_runner", "/usr/lib/nagios/plugins/check_test_restore", "/usr/lib/nagios/plugins/check_key_escrow"} {
		run(t, p, "--version")
	}
	if got := run(t, "dpkg-query", "-W", "-f", "${Status}", "drym"); got != "install ok installed" {
		t.Errorf("dpkg status %q", got)
	}

	// The directories postinst made: 0750, group nagios when it exists.
	group := "root"
	if _, err := user.LookupGroup("nagios"); err == nil {
		group = "nagios"
	}
	for _, d := range []string{"/etc/drym", "/var/lib/drym"} {
		if d == "/etc/drym" && etcExisted == nil || d == "/var/lib/drym" && stateExisted == nil {
			continue // not made by this install
		}
		got := strings.TrimSpace(run(t, "stat", "-c", "%a %U %G", d))
		if want := "750 root " + group; got != want {
			t.Errorf("%s: %s, want %s", d, got, want)
		}
	}

	// Not set up yet: the installed check must say so, never OK.
	cmd := exec.Command("/usr/lib/nagios/plugins/check_backup_age")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	if err == nil || stdout.Len() == 0 {
		t.Errorf("installed check_backup_age on a host not set up: %v, output %q; want a non-OK state", err, stdout.String())
	}

	run(t, "dpkg", "-r", "drym")
	for _, p := range []string{"/usr/sbin/backup_runner", "/usr/lib/nagios/plugins/check_backup_age", "/lib/systemd/system/drym-backup.timer"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after dpkg -r", p)
		}
	}
	if _, err := os.Stat("/etc/nagios/nrpe.d/drym.cfg"); err != nil {
		t.Errorf("dpkg -r removed the conffile (it is purge's job): %v", err)
	}
	run(t, "dpkg", "--purge", "drym")
	if _, err := os.Stat("/etc/nagios/nrpe.d/drym.cfg"); err == nil {
		t.Error("conffile left after dpkg --purge")
	}
	if etcExisted != nil {
		if _, err := os.Stat("/etc/drym"); err != nil {
			t.Errorf("purge removed /etc/drym, where the host key lives: %v", err)
		}
	}
}
