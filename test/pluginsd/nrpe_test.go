package pluginsd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/testutil"
)

const (
	pluginDir = "/usr/lib/nagios/plugins"
	checkNRPE = pluginDir + "/check_nrpe"
)

// nrpeCommand is one command[name]=line of an NRPE config.
type nrpeCommand struct {
	name, line string
}

var nrpeCommandRe = regexp.MustCompile(`^command\[([^\]]+)\]=(.+)$`)

// readNRPEConfig parses plugins.d/nrpe/drym.cfg strictly: comments, blank
// lines and command definitions only.
func readNRPEConfig(t *testing.T) []nrpeCommand {
	t.Helper()
	f, err := os.Open(filepath.Join(pluginsDir(t), "nrpe", "drym.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []nrpeCommand
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := nrpeCommandRe.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("drym.cfg:%d: %q is not a command[name]=… line (the file only adds commands)", n, line)
		}
		cmds = append(cmds, nrpeCommand{name: m[1], line: m[2]})
	}
	return cmds
}

// monitoringServerOnly are checks that judge hosts from the store on the
// monitoring server: never run on a host, so never an NRPE command.
var monitoringServerOnly = []string{"check_backup_fleet"}

// builtChecks lists the host checks that exist as commands in cmd/ (a
// main.go): those NRPE serves.
func builtChecks(t *testing.T) []string {
	t.Helper()
	mains, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "cmd", "check_*", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mains {
		if name := filepath.Base(filepath.Dir(m)); !slices.Contains(monitoringServerOnly, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// TestNRPEConfig holds drym.cfg to NRPE's safe shape: one command per check,
// named after it, running the installed binary with fixed arguments, and no
// dont_blame_nrpe (no argument ever comes from the network). The names are
// the ones the Nagios and Icinga 2 NRPE services ask for.
func TestNRPEConfig(t *testing.T) {
	cmds := readNRPEConfig(t)
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
		fields := strings.Fields(c.line)
		if want := pluginDir + "/" + c.name; fields[0] != want {
			t.Errorf("command[%s] runs %s, want %s", c.name, fields[0], want)
		}
		if strings.ContainsAny(c.line, "$`;|&<>") {
			t.Errorf("command[%s]: %q: fixed arguments only, no macros or shell", c.name, c.line)
		}
	}
	want := []string{"check_backup_age", "check_key_escrow", "check_test_restore"}
	sort.Strings(names)
	if !slices.Equal(names, want) {
		t.Errorf("commands %v, want %v", names, want)
	}
	for _, check := range builtChecks(t) {
		if !slices.Contains(names, check) {
			t.Errorf("cmd/%s exists but drym.cfg has no command[%s]", check, check)
		}
	}
	data, err := os.ReadFile(filepath.Join(pluginsDir(t), "nrpe", "drym.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "dont_blame_nrpe") {
			t.Errorf("drym.cfg sets %q: arguments are fixed, leave it to the stock nrpe.cfg (0)", line)
		}
	}

	// The commands the monitoring side asks NRPE for must all be defined;
	// a side that asks for none (its file renamed, its syntax changed) fails.
	asked := map[string][]string{}
	nagios, err := os.ReadFile(filepath.Join(pluginsDir(t), "nagios", "drym-commands.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`check_nrpe .* -c (\S+)`).FindAllStringSubmatch(string(nagios), -1) {
		asked["nagios"] = append(asked["nagios"], m[1])
	}
	icinga, err := os.ReadFile(filepath.Join(pluginsDir(t), "icinga2", "drym-services.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`vars\.nrpe_command = "([^"]+)"`).FindAllStringSubmatch(string(icinga), -1) {
		asked["icinga2"] = append(asked["icinga2"], m[1])
	}
	for _, side := range []string{"nagios", "icinga2"} {
		list := asked[side]
		sort.Strings(list)
		if !slices.Equal(list, want) {
			t.Errorf("%s asks NRPE for %v, want %v", side, list, want)
		}
	}
}

// scenario is a state dir the round trip runs every check against.
type scenario struct {
	name string
	// setup fills the state dir.
	setup func(t *testing.T, dir string, now time.Time)
	// want is the exit code each check must give; a check not listed may
	// give any code, as long as NRPE passes it on unchanged.
	want map[string]int
}

var scenarios = []scenario{
	{name: "ok", setup: writeGoodStatus, want: map[string]int{"check_backup_age": 0, "check_test_restore": 0}},
	{name: "unset", setup: func(*testing.T, string, time.Time) {}, want: map[string]int{"check_backup_age": 2, "check_test_restore": 2, "check_key_escrow": 2}},
	{name: "corrupt", setup: writeCorruptStatus, want: map[string]int{"check_backup_age": 3, "check_test_restore": 3}},
}

// writeGoodStatus writes status files of a healthy host: a backup four
// hours old, a test restore of it, an escrow shipped. Whole hours: the
// checks print ages to the second below an hour, and the NRPE run and the
// local run of a check must read the same.
func writeGoodStatus(t *testing.T, dir string, now time.Time) {
	t.Helper()
	now = now.UTC().Truncate(time.Second)
	const host = "drym-test"
	object := host + "/" + now.Add(-4*time.Hour-5*time.Minute).Format("20060102T150405Z") + "-0123456789abcdef0123456789abcdef.tar.zst.gpg"
	sum := strings.Repeat("ab", 32)
	fpr := strings.Repeat("0123456789ABCDEF", 3)[:40]

	b := status.Backup{
		Common:      status.Common{Schema: status.Schema, Job: status.JobBackup, Host: host, Version: "test", PID: 1, State: status.OK, Started: now.Add(-4*time.Hour - 5*time.Minute), Finished: now.Add(-4 * time.Hour)},
		Destination: "dir:///srv/drym", Object: object,
		BytesIn: 1 << 30, BytesOut: 600 << 20, Files: 12345, Dirs: 678, SHA256: sum, Fingerprint: fpr,
	}
	run := b.Run()
	b.LastSuccess = &run
	b.History = status.AddHistory(nil, run)
	tr := status.TestRestore{
		Common:      status.Common{Schema: status.Schema, Job: status.JobTestRestore, Host: host, Version: "test", PID: 1, State: status.OK, Started: now.Add(-3*time.Hour - 5*time.Minute), Finished: now.Add(-3 * time.Hour)},
		Destination: "dir:///srv/drym", Backup: object, BackupTime: now.Add(-4*time.Hour - 5*time.Minute),
		Files: 12345, Bytes: 1 << 30, ObjectBytes: 600 << 20, ObjectSHA256: sum, SHA256Checked: true,
		Fingerprint: fpr, Verified: true, LastSuccess: now.Add(-3 * time.Hour),
	}
	e := status.Escrow{
		Common: status.Common{Schema: status.Schema, Job: status.JobEscrow, Host: host, Version: "test", PID: 1, State: status.OK, Started: now.Add(-2 * time.Hour), Finished: now.Add(-2 * time.Hour)},
		Zip:    "drym-escrow-" + host + "-" + fpr[24:] + "-" + now.Format("20060102") + ".zip", SHA256: sum, Fingerprint: fpr, Destination: "dir:///srv/escrow",
	}
	for name, v := range map[string]any{status.BackupFile: &b, status.TestRestoreFile: &tr, status.EscrowFile: &e} {
		path := filepath.Join(dir, name)
		if err := status.Write(path, v); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeCorruptStatus writes status files that are not JSON.
func writeCorruptStatus(t *testing.T, dir string, _ time.Time) {
	t.Helper()
	for _, name := range []string{status.BackupFile, status.TestRestoreFile, status.EscrowFile} {
		writeFile(t, filepath.Join(dir, name), []byte("{\"schema\": 1, \"state\": \"ok\", trunc"), 0o644)
	}
}

// TestNRPERoundTrip starts the real NRPE on 127.0.0.1, running as user
// nagios, with the commands of plugins.d/nrpe/drym.cfg pointed at freshly
// built checks, and asks it for each check through check_nrpe: the output
// and exit code must be exactly those of the same check run locally as user
// nagios, in every scenario (healthy, not set up, corrupt).
func TestNRPERoundTrip(t *testing.T) {
	nrpe := testutil.Need(t, "nrpe")
	client := testutil.Need(t, checkNRPE)
	needRoot(t)
	uid, gid := nagiosUser(t)
	checks := builtChecks(t)
	if len(checks) == 0 {
		t.Fatal("no cmd/check_*/main.go: nothing to call through NRPE")
	}
	root := publicDir(t)
	bin := filepath.Join(root, "bin")
	for _, c := range checks {
		copyFile(t, testutil.Binary(t, c), filepath.Join(bin, c), 0o755)
	}

	// One config and state dir per scenario, each readable by nagios only
	// through group/other bits, as on a real host.
	now := time.Now()
	var lines []string
	cfgs := map[string]string{}
	for _, sc := range scenarios {
		dir := filepath.Join(root, sc.name)
		state := filepath.Join(dir, "state")
		if err := os.MkdirAll(state, 0o755); err != nil {
			t.Fatal(err)
		}
		sc.setup(t, state, now)
		c := config.Config{
			Host: "drym-test", Sources: []string{"/etc"}, StateDir: state,
			KeyFile:     filepath.Join(dir, "host-key.asc"),
			Destination: config.Remote{URL: "dir://" + filepath.Join(dir, "dest")},
		}
		data, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		cfgs[sc.name] = filepath.Join(dir, "drym.toml")
		writeFile(t, cfgs[sc.name], data, 0o644)
	}
	// The shipped command lines, binary moved and pointed at each scenario;
	// the healthy one keeps the shipped name.
	local := map[string][]string{} // nrpe command name → argv
	for _, c := range readNRPEConfig(t) {
		if !slices.Contains(checks, c.name) {
			t.Fatalf("drym.cfg has command[%s], but there is no cmd/%s: every command must run a real check", c.name, c.name)
		}
		argv := strings.Fields(strings.Replace(c.line, pluginDir+"/", bin+"/", 1))
		for _, sc := range scenarios {
			name := c.name
			if sc.name != "ok" {
				name += "_" + sc.name
			}
			a := append(slices.Clone(argv), "--config", cfgs[sc.name], "--state-dir", filepath.Join(filepath.Dir(cfgs[sc.name]), "state"))
			local[name] = a
			lines = append(lines, fmt.Sprintf("command[%s]=%s", name, strings.Join(a, " ")))
		}
	}

	port := freePort(t)
	logFile := filepath.Join(root, "nrpe.log")
	writeFile(t, logFile, nil, 0o644)
	if err := os.Chown(logFile, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "nrpe.cfg")
	writeFile(t, cfg, []byte(strings.Join(append([]string{
		"server_address=127.0.0.1",
		"server_port=" + strconv.Itoa(port),
		"nrpe_user=nagios",
		"nrpe_group=nagios",
		"allowed_hosts=127.0.0.1",
		"dont_blame_nrpe=0",
		"command_timeout=60",
		"connection_timeout=60",
		"log_file=" + logFile,
	}, lines...), "\n")+"\n"), 0o644)

	// NRPE's children inherit its environment; the local runs get the same.
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	daemon := exec.Command(nrpe, "-c", cfg, "-f", "-n")
	daemon.Env, daemon.Dir = env, "/"
	if err := daemon.Start(); err != nil {
		t.Fatalf("start nrpe: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	t.Cleanup(func() {
		_ = daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = daemon.Process.Kill()
			<-exited
		}
	})
	waitNRPE(t, client, port, exited, logFile)

	viaNRPE := func(name string) result {
		return run(t, time.Minute, exec.Command(client, "-n", "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "30:UNKNOWN", "-c", name))
	}
	asNagios := func(argv []string) result {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env, cmd.Dir = env, "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
		return run(t, time.Minute, cmd)
	}

	for _, sc := range scenarios {
		for _, check := range checks {
			name := check
			if sc.name != "ok" {
				name += "_" + sc.name
			}
			argv, ok := local[name]
			if !ok {
				continue
			}
			t.Run(sc.name+"/"+check, func(t *testing.T) {
				// The output holds ages in seconds: a local run on each side
				// of the NRPE call brackets any tick of the clock.
				before := asNagios(argv)
				remote := viaNRPE(name)
				after := asNagios(argv)
				if before.stderr != "" {
					t.Errorf("%s wrote to stderr without -v: %q", check, before.stderr)
				}
				if !sameAnswer(remote, before) && !sameAnswer(remote, after) {
					t.Fatalf("through NRPE: exit %d\n%s\nlocally as nagios: exit %d\n%s",
						remote.code, remote.stdout, before.code, before.stdout)
				}
				first, _, _ := strings.Cut(remote.stdout, "\n")
				if word := stateWords[remote.code]; word == "" || !strings.HasPrefix(first, word+":") {
					t.Errorf("exit %d but the first line is %q", remote.code, first)
				}
				if want, ok := sc.want[check]; ok && remote.code != want {
					t.Errorf("exit %d, want %d: %s", remote.code, want, first)
				}
				t.Logf("exit %d: %s", remote.code, first)
			})
		}
	}
}

var stateWords = map[int]string{0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}

// runtimePerf is the perfdata go-nagios adds with the check's own run time,
// which no two runs need share.
var runtimePerf = regexp.MustCompile(`'time'=\d+ms`)

// sameAnswer compares what Nagios sees: exit code and output, but for the
// run time. check_nrpe ends the output with exactly one newline whatever the
// check printed.
func sameAnswer(a, b result) bool {
	norm := func(s string) string {
		return runtimePerf.ReplaceAllString(strings.TrimRight(s, "\n"), "'time'=Nms")
	}
	return a.code == b.code && norm(a.stdout) == norm(b.stdout)
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitNRPE waits until NRPE answers a version query, or fails with its log.
func waitNRPE(t *testing.T, client string, port int, exited <-chan error, logFile string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := run(t, 10*time.Second, exec.Command(client, "-n", "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "2"))
		if r.code == 0 && strings.HasPrefix(r.stdout, "NRPE v") {
			return
		}
		log, _ := os.ReadFile(logFile)
		select {
		case err := <-exited:
			t.Fatalf("nrpe exited before answering: %v\nlog:\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nrpe on 127.0.0.1:%d does not answer: %s%s\nlog:\n%s", port, r.stdout, r.stderr, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
