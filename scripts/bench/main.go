// Command bench is `make bench`: it measures drym side by side with the
// stock tools on the same data, with the same host key, in the same run, and
// writes BENCHMARKS.md. Every figure is a ratio to its reference (best of
// -runs runs each, the runs interleaved so drift on a shared machine hits
// both sides alike).
//
//	go run ./scripts/bench -bin bin -out BENCHMARKS.md
//	go run ./scripts/bench -bin bin -quick          (a few minutes, report in $TMPDIR)
//	go run ./scripts/bench profile TREE KEYFILE OUTDIR [STAGE]   (CPU profiles)
//	go run ./scripts/bench gen DIR SCALE                          (just the tree)
//
// The data (≈ 1 GiB and ≈ 4 GiB server-like trees, 168,000 small files,
// 1 GiB of large files; -quick: far smaller ones) is generated once,
// outside the repository, in -dir (default $DRYM_BENCH_DIR or
// /var/tmp/drym-bench), and reused by later runs. Each tree is measured
// WARM (copied into tmpfs, -shm) and COLD (on disk, caches dropped before
// every run; needs root), against the stock pipeline and the peers restic
// and borg (shapes.go).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drym-backup/drym/internal/crypt"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "gen" {
		s, _ := strconv.Atoi(os.Args[3])
		t := time.Now()
		n, err := generate(os.Args[2], s, 1)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("%d bytes in %s\n", n, time.Since(t).Round(time.Millisecond))
		return
	}
	if len(os.Args) >= 5 && os.Args[1] == "profile" {
		only := ""
		if len(os.Args) > 5 {
			only = os.Args[5]
		}
		if err := profileRun(os.Args[2], os.Args[3], os.Args[4], only); err != nil {
			fatal(err)
		}
		return
	}
	def := os.Getenv("DRYM_BENCH_DIR")
	if def == "" {
		def = "/var/tmp/drym-bench"
	}
	b := &bench{}
	flag.StringVar(&b.dir, "dir", def, "work directory for the data, keys, stores (outside the repository)")
	flag.StringVar(&b.bin, "bin", "bin", "directory of the built drym binaries (make build)")
	flag.StringVar(&b.out, "out", "", "report to write (default BENCHMARKS.md; with -quick $TMPDIR/drym-bench-quick.md)")
	flag.StringVar(&b.shm, "shm", "/dev/shm/drym-bench", "tmpfs directory for the WARM runs")
	flag.IntVar(&b.runs, "runs", 2, "runs of each drym / stock figure (best counts)")
	flag.IntVar(&b.checkRuns, "check-runs", 40, "runs of each check (median counts)")
	scales := flag.String("scales", "1,4", "server tree sizes in GiB to measure (with -quick: none unless given)")
	flag.BoolVar(&b.skipS3, "no-s3", false, "skip the S3 and fleet figures")
	flag.BoolVar(&b.quick, "quick", false, "smoke test: small trees, 1 run, no S3 or fleet (unless -no-s3=false), report outside the repository")
	flag.Parse()
	scalesGiven := false
	flag.Visit(func(f *flag.Flag) { scalesGiven = scalesGiven || f.Name == "scales" })
	noS3Given := false
	flag.Visit(func(f *flag.Flag) { noS3Given = noS3Given || f.Name == "no-s3" })
	if b.quick {
		b.runs, b.checkRuns = 1, 5
		b.skipS3 = b.skipS3 || !noS3Given // -quick -no-s3=false takes them too
		if !scalesGiven {
			*scales = ""
		}
	}
	if b.out == "" {
		b.out = "BENCHMARKS.md"
		if b.quick {
			b.out = filepath.Join(os.TempDir(), "drym-bench-quick.md")
		}
	}
	for _, s := range strings.Split(*scales, ",") {
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-scales: %q is not a size in GiB", s))
		}
		b.scales = append(b.scales, n)
	}
	var err error
	if b.bin, err = filepath.Abs(b.bin); err != nil {
		fatal(err)
	}
	if err := b.run(); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

type bench struct {
	dir, bin, out   string
	runs, checkRuns int
	scales          []int
	skipS3, quick   bool
	shm             string // tmpfs for the WARM runs
	restic, borg    string // the peers' binaries
	checkCfg        string // the settings the checks are timed with
	s3Tree          string // the tree of the S3 figures (the first server tree)
	s3Bytes         int64
	shapeList       []*shape
	results         []shapeResult
	keyFile, fp     string
	gnupg           string
	started         time.Time
	loadStart       string
	rows            []row
	notes           []string
	s3              *s3Server
}

// kindText says what a tree of each kind holds.
var kindText = map[string]string{
	kindServer: "config and site text, logs, incompressible media and archives; about half compressible",
	kindSmall:  "text files of 200 B to 6 KB, 500 to a directory",
	kindLarge:  "two compressible logs and two incompressible disk images",
}

// howTaken is the report's "How each figure is taken": it says what the
// code above does, so it is generated with it, not written by hand.
func howTaken(shm string) string {
	return "## How each figure is taken\n\n" +
		"- WARM: the tree is copied into tmpfs (" + "`" + shm + "`" + ") and the stores, the stock output and the peers' repositories are written there too, so the page cache cannot be reclaimed under a run (this machine's kernel reclaims it between runs). " +
		"COLD: the tree, stores and repositories are on disk, and `sync; echo 3 > /proc/sys/vm/drop_caches` runs before every measured command (root only; without root there are no COLD rows and the notes say so).\n" +
		"- Backup: `backup_runner backup` (dir store: writes a `.partial`, starts writeback every 8 MiB, **fsyncs**, links) vs `tar -cf - | zstd -1 | gpg -z0 -e -r KEY > file` (no fsync), same host key (Curve25519, AES-256 SEIPDv1); drym and stock runs interleaved, best of -runs.\n" +
		"- 1 core: the same commands under `taskset -c 0` (WARM only).\n" +
		"- CPU: user + sys seconds from `/usr/bin/time` (a pipeline's children included), per GiB of files in the tree.\n" +
		"- Verify: `backup_runner test-restore` (read, decrypt, decompress, SHA-256 of every file against the manifest) vs `gpg -d | zstd -d | tar -t`.\n" +
		"- restic 0.18.1: `restic init`, then `restic backup TREE` (default compression, a fresh repository and cache: a first full backup) and `restic check --read-data`.\n" +
		"- borg 1.2: `borg init -e repokey-blake2`, then `borg create -C zstd,1` (a fresh repository and cache) and `borg extract --dry-run` (reads, decrypts and decompresses every chunk).\n" +
		"- Stored size: the backup object, the stock output file, the whole restic or borg repository.\n" +
		"- Peak RSS: `/usr/bin/time` maximum resident set size (of a pipeline: its largest process).\n" +
		"- S3: versitygw (posix backend) and SeaweedFS (`weed server`: master, volume server, filer and S3 gateway) on 127.0.0.1, each against the same pipeline into `aws s3 cp - s3://…`, on the first server tree.\n" +
		"- Requests of `check_backup_age --remote`: counted by a reverse proxy on 127.0.0.1 in front of versitygw.\n\n"
}

// row is one line of the report.
type row struct {
	figure, drym, ref, ratio, target, verdict string
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	fmt.Printf("  %-46s %-14s %-14s %-8s %s %s\n", r.figure, r.drym, r.ref, r.ratio, r.target, r.verdict)
}

func (b *bench) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.notes = append(b.notes, s)
	fmt.Println("  note:", s)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func (b *bench) run() error {
	b.started = time.Now()
	b.loadStart = loadAvg()
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	for _, tool := range []string{"tar", "zstd", "gpg", "/usr/bin/time", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed: apt-get install tar zstd gnupg time util-linux", tool)
		}
	}
	if err := b.peerTools(); err != nil {
		return err
	}
	if err := b.keys(); err != nil {
		return err
	}
	if err := b.measureShapes(); err != nil { // shapes.go
		return err
	}
	if !b.skipS3 {
		for _, engine := range s3Engines {
			if err := b.s3Figures(engine); err != nil {
				return err
			}
		}
	}
	if err := b.checks(); err != nil {
		return err
	}
	b.binarySizes()
	return b.write()
}

// keys creates the host key once (with backup_runner init, so it is a real
// drym key) and imports it into a private gpg home for the stock pipeline.
func (b *bench) keys() error {
	kd := filepath.Join(b.dir, "keys")
	os.MkdirAll(kd, 0o700)
	b.keyFile = filepath.Join(kd, "host-key.asc")
	b.gnupg = filepath.Join(b.dir, "gnupg")
	if _, err := os.Stat(b.keyFile); err != nil {
		cfg := filepath.Join(kd, "init.toml")
		os.Remove(cfg)
		if out, err := exec.Command(b.binary("backup_runner"), "--config", cfg, "init", "--source", b.dir,
			"--dest", "dir://"+filepath.Join(kd, "unused"), "--state-dir", filepath.Join(kd, "state"),
			"--key-file", b.keyFile, "--host", "bench").CombinedOutput(); err != nil {
			return fmt.Errorf("backup_runner init: %v\n%s", err, out)
		}
		os.RemoveAll(b.gnupg)
	}
	keys, err := crypt.ReadKeyFile(b.keyFile)
	if err != nil {
		return err
	}
	b.fp = crypt.Fingerprint(keys[0])
	if _, err := os.Stat(b.gnupg); err != nil {
		os.MkdirAll(b.gnupg, 0o700)
		if out, err := exec.Command("gpg", "--homedir", b.gnupg, "--batch", "--quiet", "--import", b.keyFile).CombinedOutput(); err != nil {
			return fmt.Errorf("gpg --import: %v\n%s", err, out)
		}
	}
	return nil
}

func (b *bench) binary(name string) string { return filepath.Join(b.bin, name) }

// config writes a drym settings file and returns its path.
func (b *bench) config(name string, sources []string, dest string, s3 *s3Server, endpoint string) string {
	d := filepath.Join(b.dir, "cfg-"+name)
	os.MkdirAll(d, 0o755)
	var buf bytes.Buffer
	q := strconv.Quote
	fmt.Fprintf(&buf, "host = \"bench\"\nsources = [")
	for i, s := range sources {
		if i > 0 {
			buf.WriteString(", ")
		}
		buf.WriteString(q(s))
	}
	fmt.Fprintf(&buf, "]\nstate_dir = %s\nkey_file = %s\n\n[destination]\nurl = %s\n", q(filepath.Join(d, "state")), q(b.keyFile), q(dest))
	if s3 != nil {
		fmt.Fprintf(&buf, "endpoint = %s\nregion = \"us-east-1\"\npath_style = true\n", q(endpoint))
	}
	fmt.Fprintf(&buf, "\n[escrow]\nurl = %s\n", q("dir://"+filepath.Join(d, "escrow")))
	os.MkdirAll(filepath.Join(d, "state"), 0o755)
	p := filepath.Join(d, "drym.toml")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		fatal(err)
	}
	return p
}

// measure runs argv under /usr/bin/time: wall time (our clock), CPU
// (user + sys, the children it waited for included) and peak RSS.
func (b *bench) measure(env []string, argv ...string) (meas, error) {
	tf := filepath.Join(b.dir, ".time")
	os.Remove(tf) // no figure from an earlier run
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%e %U %S %M", "-o", tf}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t := time.Now()
	err := cmd.Run()
	wall := time.Since(t)
	// A command that fails still has its time and peak RSS (a check
	// exits non-zero for WARNING or CRITICAL).
	raw, _ := os.ReadFile(tf)
	m, _ := parseTime(string(raw))
	m.wall = wall
	if err != nil {
		return m, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(stderr.String()))
	}
	return m, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

func (b *bench) gpgEnv() []string { return []string{"GNUPGHOME=" + b.gnupg} }

func (b *bench) stockEncrypt() string {
	return fmt.Sprintf("gpg --batch --quiet --trust-model always -z0 -e -r %s", b.fp)
}

func gb(n int64, d time.Duration) string {
	return fmt.Sprintf("%.0f MB/s", float64(n)/1e6/d.Seconds())
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// median runs argv n times and returns the median wall time. Exit codes
// are the check's business (a WARNING is still a timing).
func median(n int, env []string, argv ...string) (time.Duration, string, error) {
	var ds []time.Duration
	var last string
	for range n {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		t := time.Now()
		out, err := cmd.Output()
		ds = append(ds, time.Since(t))
		last = strings.SplitN(string(out), "\n", 2)[0]
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			return 0, "", err
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2], last, nil
}

// checks: median wall time of each check vs check_file_age on the same
// status file.
func (b *bench) checks() error {
	cfg := b.checkCfg
	if cfg == "" {
		cfg = filepath.Join(b.dir, "cfg-warm-"+b.shapeList[0].key, "drym.toml")
	}
	state := filepath.Join(filepath.Dir(cfg), "state")
	if out, err := exec.Command(b.binary("backup_runner"), "--config", cfg, "-q", "escrow").CombinedOutput(); err != nil {
		b.note("backup_runner escrow failed (%v: %s): check_key_escrow is timed on its failure path", err, strings.TrimSpace(string(out)))
	}
	ref := "/usr/lib/nagios/plugins/check_file_age"
	fmt.Printf("checks (median of %d runs)\n", b.checkRuns)
	refD, _, err := median(b.checkRuns, nil, ref, "-w", "93600", "-c", "180000", "-f", filepath.Join(state, "backup.json"))
	if err != nil {
		return fmt.Errorf("%s: %w (apt-get install monitoring-plugins-basic)", ref, err)
	}
	b.floors(refD)
	for _, c := range []struct {
		name   string
		args   []string
		target string
		ok     func(d time.Duration) bool
	}{
		{"check_backup_age", nil, "≤ 0.33", func(d time.Duration) bool { return d.Seconds() <= refD.Seconds()/3 }},
		{"check_test_restore", nil, "≤ 0.33", func(d time.Duration) bool { return d.Seconds() <= refD.Seconds()/3 }},
		{"check_key_escrow", nil, "≤ 50 ms", func(d time.Duration) bool { return d <= 50*time.Millisecond }},
	} {
		bin := b.binary(c.name)
		if _, err := os.Stat(bin); err != nil {
			b.note("%s is not built: no figure", c.name)
			continue
		}
		d, first, err := median(b.checkRuns, nil, append([]string{bin, "--config", cfg}, c.args...)...)
		if err != nil {
			return err
		}
		b.add(row{c.name + ": median wall", fmt.Sprintf("%.1f ms", ms(d)), fmt.Sprintf("%.1f ms (check_file_age)", ms(refD)),
			fmt.Sprintf("%.2f×", d.Seconds()/refD.Seconds()), c.target, verdict(c.ok(d))})
		b.note("%s said: %s", c.name, first)
	}
	return nil
}

// floors times what no check can beat on this machine, timed the same way
// as the checks: starting a process that does nothing (/bin/true), and one
// that starts the Go runtime and does nothing (an empty main, built here).
// They are there so that a start-up row is read against them.
func (b *bench) floors(refD time.Duration) {
	progs := [][]string{{"/bin/true", "/bin/true"}}
	dir, err := os.MkdirTemp(b.dir, "empty-go-")
	if err == nil {
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "empty")
		os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "main.go")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GO111MODULE=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.note("empty Go program not built (%v: %s): no Go start-up floor", err, strings.TrimSpace(string(out)))
		} else {
			progs = append(progs, []string{"empty Go program", bin})
		}
	}
	for _, p := range progs {
		d, _, err := median(b.checkRuns, nil, p[1])
		if err != nil {
			b.note("%s: %v: no floor figure", p[0], err)
			continue
		}
		b.add(row{"floor: " + p[0] + ": median wall", fmt.Sprintf("%.1f ms", ms(d)), fmt.Sprintf("%.1f ms (check_file_age)", ms(refD)),
			fmt.Sprintf("%.2f×", d.Seconds()/refD.Seconds()), "info", ""})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (b *bench) binarySizes() {
	var ref int64
	for _, t := range []string{"tar", "zstd", "gpg"} {
		if p, err := exec.LookPath(t); err == nil {
			if fi, err := os.Stat(p); err == nil {
				ref += fi.Size()
			}
		}
	}
	fa, _ := os.Stat("/usr/lib/nagios/plugins/check_file_age")
	for _, name := range []string{"backup_runner", "check_backup_age", "check_test_restore", "check_key_escrow"} {
		fi, err := os.Stat(b.binary(name))
		if err != nil {
			continue
		}
		strip := "stripped"
		if out, err := exec.Command("file", b.binary(name)).Output(); err == nil && strings.Contains(string(out), "not stripped") {
			strip = "NOT stripped"
		}
		refS, r := "", ""
		if name == "backup_runner" && ref > 0 {
			refS = fmt.Sprintf("%.1f MiB (tar+zstd+gpg)", float64(ref)/(1<<20))
			r = fmt.Sprintf("%.2f×", float64(fi.Size())/float64(ref))
		} else if fa != nil {
			refS = fmt.Sprintf("%.1f KiB (check_file_age)", float64(fa.Size())/1024)
			r = fmt.Sprintf("%.0f×", float64(fi.Size())/float64(fa.Size()))
		}
		b.add(row{"binary size: " + name, fmt.Sprintf("%.1f MiB (%s)", float64(fi.Size())/(1<<20), strip), refS, r, "info", ""})
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func cmdLine(name string, args ...string) string {
	out, err := exec.CommandContext(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func (b *bench) write() error {
	var w bytes.Buffer
	fmt.Fprintf(&w, "# drym benchmarks\n\n")
	fmt.Fprintf(&w, "Generated by `make bench` (scripts/bench) on %s. Do not edit: re-run it.\n\n", b.started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "- Machine: %d cores (%s), %s, Go %s\n", runtime.NumCPU(), cpuModel(), cmdLine("uname", "-r"), strings.TrimPrefix(runtime.Version(), "go"))
	fmt.Fprintf(&w, "- Load average at start / end: %s / %s (the machine may be shared: every ratio compares runs interleaved in the same minutes)\n", b.loadStart, loadAvg())
	zv := "zstd ?"
	for _, f := range strings.Fields(cmdLine("zstd", "--version")) {
		if strings.HasPrefix(f, "v") {
			zv = "zstd " + strings.TrimSuffix(f, ",")
			break
		}
	}
	fmt.Fprintf(&w, "- Reference tools: %s; %s; %s\n", cmdLine("tar", "--version"), zv, cmdLine("gpg", "--version"))
	for _, sh := range b.shapeList {
		fmt.Fprintf(&w, "- Data: %s, %.2f GB in %d files (%s), generated deterministically in %s\n",
			sh.title, float64(sh.bytes)/1e9, sh.files, kindText[sh.kind], sh.path)
	}
	fmt.Fprintf(&w, "- drym and stock figures: best of %d interleaved runs each; restic and borg: one first full backup each; check timings: median of %d runs.\n", b.runs, b.checkRuns)
	if b.quick {
		fmt.Fprintf(&w, "- **-quick run**: small trees, one run, no S3 or fleet figures: a smoke test, not figures to quote.\n")
	}
	fmt.Fprintf(&w, "\n## Speed targets\n\n%s\n", targetTable(judge(b.results)))
	fmt.Fprintf(&w, "## Every shape of data, warm and cold\n\n%s\n", shapeTable(b.results))
	fmt.Fprintf(&w, "Ratios: stock / drym: wall time or CPU seconds of the reference over drym's (higher is better); stored size: stock / drym.\n\n")
	fmt.Fprintf(&w, "## Other figures\n\n| figure | drym | reference | ratio | target | |\n|---|---|---|---|---|---|\n")
	for _, r := range b.rows {
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s |\n", r.figure, r.drym, r.ref, r.ratio, r.target, r.verdict)
	}
	fmt.Fprintf(&w, "\nRatios: throughput = reference time / drym time (higher is better); RSS, check times, sizes = drym / reference (lower is better).\n\n")
	w.WriteString(howTaken(b.shm))
	if len(b.notes) > 0 {
		fmt.Fprintf(&w, "## Notes from this run\n\n")
		for _, n := range b.notes {
			fmt.Fprintf(&w, "- %s\n", n)
		}
		w.WriteString("\n")
	}
	if data, err := os.ReadFile("scripts/bench/NOTES.md"); err == nil { // make bench runs in the repository

		w.Write(data)
	}
	fmt.Printf("wrote %s\n", b.out)
	return os.WriteFile(b.out, w.Bytes(), 0o644)
}
