package main

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/escrow/escrowtest"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/testutil"
)

// installation is a drym host in temp dirs, set up by the real backup_runner.
type installation struct {
	t                                *testing.T
	root, cfg, key, state, src, drop string
	env                              []string
}

func install(t *testing.T, extra ...string) *installation {
	t.Helper()
	root := t.TempDir()
	in := &installation{t: t, root: root, cfg: filepath.Join(root, "etc/drym.toml"), key: filepath.Join(root, "etc/host-key.asc"),
		state: filepath.Join(root, "state"), src: filepath.Join(root, "src"), drop: filepath.Join(root, "drop")}
	os.MkdirAll(in.src, 0o755)
	os.WriteFile(filepath.Join(in.src, "file"), []byte("data\n"), 0o644)
	in.env = []string{"DRYM_CONFIG=" + in.cfg}
	args := append([]string{"init", "--source", in.src, "--dest", "dir://" + filepath.Join(root, "dest"),
		"--state-dir", in.state, "--key-file", in.key, "--host", "web1"}, extra...)
	in.runner(args...)
	return in
}

func (in *installation) runner(args ...string) string {
	in.t.Helper()
	cmd := exec.Command(testutil.Binary(in.t, "backup_runner"), args...)
	cmd.Env = append(os.Environ(), in.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		in.t.Fatalf("backup_runner %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// owner is the --key-owner that matches files this test creates.
func owner(t *testing.T) []string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--key-owner", u.Username}
}

func (in *installation) check(argv ...string) plugintest.Result {
	in.t.Helper()
	return plugintest.Run(in.t, "check_key_escrow", in.env, append(owner(in.t), argv...)...)
}

// zip returns the one escrow zip in the drop dir (not its public record).
func (in *installation) zip() (string, []byte) {
	in.t.Helper()
	ents, err := os.ReadDir(in.drop)
	if err != nil {
		in.t.Fatal(err)
	}
	var found []string
	for _, e := range ents {
		if _, ok := escrow.ParseName("web1", e.Name()); ok {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		in.t.Fatalf("want one zip in %s, found %v", in.drop, found)
	}
	p := filepath.Join(in.drop, found[0])
	b, err := os.ReadFile(p)
	if err != nil {
		in.t.Fatal(err)
	}
	return p, b
}

func mustState(t *testing.T, r plugintest.Result, code int, want string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.First(), want) {
		t.Fatalf("exit %d, want %d with %q:\n%s%s", r.Code, code, want, r.Stdout, r.Stderr)
	}
	if r.Stderr != "" {
		t.Errorf("stderr without -v: %s", r.Stderr)
	}
}

// After init with --escrow dir://…, OK.
func TestOKAfterInit(t *testing.T) {
	in := install(t, "--escrow", "dir://"+filepath.Join(t.TempDir(), "drop"))
	cfg, _ := config.Load(in.cfg)
	in.drop = strings.TrimPrefix(cfg.Escrow.URL, "dir://")
	r := in.check()
	mustState(t, r, 0, "OK: escrow zip drym-escrow-web1-")
	if !strings.Contains(r.First(), "the secret key file") || !strings.Contains(r.Stdout, "'zip_age'=") {
		t.Fatalf("output:\n%s", r.Stdout)
	}
	p, _ := in.zip()
	mustState(t, in.check("--zip", p), 0, "OK: ")

	// After a backup its key is compared too; after a test restore, the
	// keys read from the object's packets as well, each ID once.
	in.runner("backup")
	r = in.check()
	mustState(t, r, 0, "the last backup's key")
	in.runner("test-restore")
	r = in.check()
	mustState(t, r, 0, "the last backup's key")
	if !regexp.MustCompile(`encrypted to [0-9A-F]{16}, every one escrowed`).MatchString(r.Stdout) {
		t.Errorf("the backup's one key ID is not listed once:\n%s", r.Stdout)
	}
}

func TestNotSetUpAndNoEscrow(t *testing.T) {
	r := plugintest.Run(t, "check_key_escrow", []string{"DRYM_CONFIG=" + filepath.Join(t.TempDir(), "none.toml")})
	mustState(t, r, 2, "CRITICAL: not set up: run backup_runner init")
	in := install(t)
	mustState(t, in.check(), 2, "CRITICAL: no escrow configured")
	mustState(t, in.check("--zip", filepath.Join(t.TempDir(), "missing.zip")), 2, "CRITICAL: no escrow zip for web1")
}

// Broken zips are never OK; the bombs stay within 64 MiB RSS
// and 2 s.
func TestBrokenZipsNeverOK(t *testing.T) {
	in := install(t, "--escrow", "dir://"+filepath.Join(t.TempDir(), "drop"))
	cfg, _ := config.Load(in.cfg)
	in.drop = strings.TrimPrefix(cfg.Escrow.URL, "dir://")
	_, good := in.zip()

	otherKey, err := crypt.Generate("web1")
	if err != nil {
		t.Fatal(err)
	}
	opub, _ := crypt.ArmorPublic(otherKey)
	osec, _ := crypt.ArmorSecret(otherKey)
	dbKey, _ := crypt.Generate("db2")
	dbCfg := *cfg
	dbCfg.Host = "db2"
	other, err := escrow.Build(escrow.Params{Config: &dbCfg, Key: dbKey, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	cases := escrowtest.Bad(t, good, other.Data, opub, osec)
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.Name, " ", "_")+".zip")
			if err := os.WriteFile(p, c.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			r, rss := runMeasured(t, in, "--zip", p)
			if r.Code == 0 || strings.HasPrefix(r.Stdout, "OK") || r.Code > 3 {
				t.Fatalf("exit %d:\n%s", r.Code, r.Stdout)
			}
			if r.Code != 2 {
				t.Errorf("exit %d, want 2 (CRITICAL): %s", r.Code, r.First())
			}
			if !strings.Contains(r.First(), "backup_runner escrow") {
				t.Errorf("first line does not name the fix: %s", r.First())
			}
			if rss > 64<<20 || r.Took > 2*time.Second {
				t.Errorf("RSS %d MiB, took %s (limits 64 MiB, 2 s)", rss>>20, r.Took)
			}
			t.Logf("%s (RSS %d MiB, %s)", r.First(), rss>>20, r.Took.Round(time.Millisecond))
		})
	}
}

// runMeasured runs the check binary under /usr/bin/time and returns its
// peak RSS in bytes. (The rusage Go gets for its own child is no good here:
// Go starts children with vfork, and the kernel charges the parent's RSS at
// exec time to the child's maximum.)
func runMeasured(t *testing.T, in *installation, argv ...string) (plugintest.Result, int64) {
	t.Helper()
	timeBin := testutil.Need(t, "time")
	rssFile := filepath.Join(t.TempDir(), "rss")
	cmd := exec.Command(timeBin, append([]string{"-f", "%M", "-o", rssFile, testutil.Binary(t, "check_key_escrow")}, append(owner(t), argv...)...)...)
	cmd.Env = append(os.Environ(), in.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := plugintest.Result{Stdout: out.String(), Stderr: errb.String(), Took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(rssFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	kib, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		t.Fatalf("time -f %%M: %q", b)
	}
	return r, kib * 1024
}

// The host key changes after escrow → CRITICAL (exit 2).
func TestKeyChangedAfterEscrow(t *testing.T) {
	for _, which := range []string{"public", "secret", "both"} {
		t.Run(which, func(t *testing.T) {
			in := install(t, "--escrow", "dir://"+filepath.Join(t.TempDir(), "drop"))
			mustState(t, in.check(), 0, "OK")
			k, _ := crypt.Generate("web1")
			dir := t.TempDir()
			sec, pub := filepath.Join(dir, "k.asc"), filepath.Join(dir, "k.pub.asc")
			if err := crypt.WriteKeyFiles(k, sec, pub); err != nil {
				t.Fatal(err)
			}
			if which != "secret" {
				replace(t, pub, config.PublicKeyPath(in.key))
			}
			if which != "public" {
				replace(t, sec, in.key)
			}
			r := in.check()
			mustState(t, r, 2, "CRITICAL")
			newFP := crypt.Fingerprint(k)[:16]
			if !strings.Contains(r.First(), newFP) || !strings.Contains(r.First(), "backup_runner escrow") {
				t.Fatalf("first line lacks the new fingerprint %s or the fix: %s", newFP, r.First())
			}
			if which == "both" {
				// Shipping a new escrow fixes it.
				in.runner("escrow")
				mustState(t, in.check(), 0, "OK")
			}
		})
	}
}

func replace(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(to)
	if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func TestStaleModeAndOwner(t *testing.T) {
	in := install(t, "--escrow", "dir://"+filepath.Join(t.TempDir(), "drop"))
	cfg, _ := config.Load(in.cfg)
	cfg.Exclude = []string{"*.cache"}
	enc, _ := cfg.Encode()
	os.WriteFile(in.cfg, enc, 0o644)
	mustState(t, in.check(), 1, "WARNING: escrow is stale: the escrowed settings differ from "+in.cfg+" (exclude): run backup_runner escrow")
	in.runner("escrow")
	mustState(t, in.check(), 0, "OK")

	os.Chmod(in.key, 0o644)
	mustState(t, in.check(), 1, "WARNING: the secret host key "+in.key+" is mode 0644")
	os.Chmod(in.key, 0o600)
	if os.Geteuid() == 0 {
		r := plugintest.Run(t, "check_key_escrow", in.env, "--key-owner", "nobody")
		mustState(t, r, 1, "not nobody: chown nobody")
	}
}

// The check runs as user nagios: no root, the secret key unreadable.
func TestRunsAsNagios(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Unable(t, "needs root to switch to user nagios")
	}
	u, err := user.Lookup("nagios")
	if err != nil {
		testutil.Unable(t, "no user nagios")
	}
	in := install(t, "--escrow", "dir://"+filepath.Join(t.TempDir(), "drop"))
	// Open the temp dirs for traversal, as /etc/drym and /var/lib/drym are.
	for d := in.root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cfg, _ := config.Load(in.cfg)
	drop := strings.TrimPrefix(cfg.Escrow.URL, "dir://")
	for d := drop; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	filepath.Walk(drop, func(p string, _ os.FileInfo, _ error) error { return os.Chmod(p, 0o755) })
	os.Chmod(in.state, 0o755)
	os.Chmod(filepath.Join(in.state, "escrow.json"), 0o644)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(testutil.Binary(t, "check_key_escrow"))
	// The binary lives in a temp dir of root: copy it where nagios can run it.
	bin := filepath.Join(in.root, "check_key_escrow")
	b, _ := os.ReadFile(cmd.Path)
	os.WriteFile(bin, b, 0o755)
	cmd = exec.Command(bin)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "DRYM_CONFIG=" + in.cfg}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "OK: ") || strings.Contains(strings.SplitN(string(out), "\n", 2)[0], "the secret key file") {
		t.Fatalf("as nagios: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "not readable by this user") {
		t.Fatalf("long output should say the secret key was not compared:\n%s", out)
	}
}

// S3:// escrow on each S3 server, found with read credentials.
func TestS3Escrow(t *testing.T) {
	testutil.ForEachS3(t, testS3Escrow)
}

func testS3Escrow(t *testing.T, srv *testutil.S3Server) {
	in := install(t)
	// plugintest.Run starts from os.Environ(): blank the machine's AWS_*
	// settings (a CA bundle breaks the SDK's custom HTTP client).
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); strings.HasPrefix(k, "AWS_") {
			in.env = append(in.env, k+"=")
		}
	}
	in.env = append(in.env, srv.Env()...)
	cfg, _ := config.Load(in.cfg)
	cfg.Escrow.Remote = config.Remote{URL: "s3://" + srv.Bucket + "/escrow", Endpoint: srv.Endpoint, PathStyle: true,
		Profile: srv.PutProfile, ReadProfile: srv.ReadProfile}
	enc, _ := cfg.Encode()
	os.WriteFile(in.cfg, enc, 0o644)
	mustState(t, in.check(), 2, "CRITICAL: no escrow zip for web1 in s3://")
	in.runner("escrow")
	r := in.check()
	mustState(t, r, 0, "OK: escrow zip drym-escrow-web1-")
	if !strings.Contains(r.First(), "s3://"+srv.Bucket+"/escrow") {
		t.Fatalf("first line: %s", r.First())
	}
	// Read credentials that may not read: UNKNOWN, never OK.
	cfg.Escrow.ReadProfile = srv.PutProfile
	enc, _ = cfg.Encode()
	os.WriteFile(in.cfg, enc, 0o644)
	r = in.check()
	if r.Code == 0 || strings.HasPrefix(r.Stdout, "OK") {
		t.Fatalf("put-only read profile: %s", r.Stdout)
	}
	t.Log(r.First())
}
