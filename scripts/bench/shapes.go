package main

// Every shape of data, side by side: the server-like trees, the
// many-small-files tree and the large-file tree, each WARM (tree, stores
// and repositories in tmpfs, so the page cache cannot be reclaimed under
// the runs) and COLD (on disk, every cache dropped before each run). On
// each: drym and the stock pipeline (backup and verify, best of -runs,
// interleaved; on one core too, warm), and the peers restic and borg
// (first full backup and a verify of every byte).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// shape is one tree to measure.
type shape struct {
	key, title, kind string
	gen              func(dir string) (int64, error)
	path             string
	bytes            int64
	files            int
}

// shapes lists the trees of a full run, or of -quick.
func (b *bench) shapes() []*shape {
	var ss []*shape
	if b.quick {
		ss = append(ss, &shape{key: "tree-q4", title: "server ¼ GiB", kind: kindServer,
			gen: func(d string) (int64, error) { return generate(d, 1, 4) }})
	}
	for _, s := range b.scales {
		ss = append(ss, &shape{key: fmt.Sprintf("tree-%dg", s), title: fmt.Sprintf("server %d GiB", s), kind: kindServer,
			gen: func(d string) (int64, error) { return generate(d, s, 1) }})
	}
	small, each := 168000, 256
	if b.quick {
		small, each = 20000, 32
	}
	ss = append(ss,
		&shape{key: fmt.Sprintf("small-%dk", small/1000), title: fmt.Sprintf("%dk small files", small/1000), kind: kindSmall,
			gen: func(d string) (int64, error) { return generateSmall(d, small) }},
		&shape{key: fmt.Sprintf("large-%dm", 4*each), title: fmt.Sprintf("large files, %d MiB", 4*each), kind: kindLarge,
			gen: func(d string) (int64, error) { return generateLarge(d, each) }})
	for _, s := range ss {
		s.path = filepath.Join(b.dir, s.key)
	}
	return ss
}

// Seconds per GiB of tree for one run of everything, measured on 2 cores:
// drym + stock on 2 cores and on 1 (backup, verify), warm and cold; and
// the peers (one run each, warm and cold).
const (
	estPairPerGiB  = 40.0  // drym + stock, warm (2 and 1 cores) and cold, one run
	estPeersPerGiB = 80.0  // restic + borg, backup + verify, warm and cold
	estPerKFiles   = 2.5   // every tool, per 1,000 files (the small-files tree: ≈ 7 min)
	estFixed       = 420.0 // S3, fleet, checks
)

func (b *bench) estimate(total int64, files int) time.Duration {
	g := float64(total) / (1 << 30)
	s := g*(estPairPerGiB*float64(b.runs)+estPeersPerGiB) + float64(files)/1000*estPerKFiles + estFixed
	if b.quick || b.skipS3 {
		s -= estFixed * 0.8
	}
	return time.Duration(s) * time.Second
}

// dropCaches writes back and drops the page cache, dentries and inodes.
func dropCaches() error {
	if err := exec.Command("sync").Run(); err != nil {
		return err
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// runOne measures one command (under /usr/bin/time), cold or warm, on both
// cores or on core 0.
func (b *bench) runOne(mode string, oneCore bool, env []string, argv ...string) (meas, error) {
	if mode == "cold" {
		if err := dropCaches(); err != nil {
			return meas{}, fmt.Errorf("drop caches: %w", err)
		}
	}
	if oneCore {
		argv = append([]string{"taskset", "-c", "0"}, argv...)
	}
	return b.measure(env, argv...)
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// measureShape takes every figure of one tree in one mode.
func (b *bench) measureShape(sh *shape, mode string) (shapeResult, error) {
	r := shapeResult{tree: sh.title, kind: sh.kind, mode: mode, bytes: sh.bytes, files: sh.files}
	root := filepath.Join(b.dir, "cold-"+sh.key)
	tree := sh.path
	if mode == "warm" {
		root = filepath.Join(b.shm, sh.key)
		tree = filepath.Join(root, "tree")
	}
	os.RemoveAll(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return r, err
	}
	defer os.RemoveAll(root)
	if mode == "warm" {
		fmt.Printf("  copying the tree into %s\n", tree)
		if out, err := exec.Command("cp", "-a", sh.path, tree).CombinedOutput(); err != nil {
			return r, fmt.Errorf("cp -a %s %s: %v\n%s (is there room in %s?)", sh.path, tree, err, out, b.shm)
		}
	}
	store := filepath.Join(root, "store")
	cfg := b.config(mode+"-"+sh.key, []string{tree}, "dir://"+store, nil, "")
	if mode == "cold" && b.checkCfg == "" {
		b.checkCfg = cfg
	}
	stockOut := filepath.Join(root, "stock.tar.zst.gpg")
	stock := fmt.Sprintf("tar -cf - -C %s %s | zstd -1 -q | %s > %s", filepath.Dir(tree), filepath.Base(tree), b.stockEncrypt(), stockOut)
	stockVerify := fmt.Sprintf("gpg --batch --quiet -d < %s | zstd -d -q | tar -tf - > /dev/null", stockOut)
	drymBackup := []string{b.binary("backup_runner"), "--config", cfg, "-q", "backup"}
	drymVerify := []string{b.binary("backup_runner"), "--config", cfg, "-q", "test-restore"}
	cores := []bool{false}
	if mode == "warm" {
		cores = append(cores, true)
	}
	for i := range b.runs {
		for _, one := range cores {
			os.RemoveAll(store)
			d, err := b.runOne(mode, one, nil, drymBackup...)
			if err != nil {
				return r, err
			}
			s, err := b.runOne(mode, one, b.gpgEnv(), "bash", "-o", "pipefail", "-c", stock)
			if err != nil {
				return r, err
			}
			fmt.Printf("  %s backup run %d%s: drym %s (%d MiB RSS), stock %s\n", mode, i+1, coreNote(one), secs(d.wall), d.rssKB>>10, secs(s.wall))
			if one {
				r.backup1, r.stockBackup1 = r.backup1.best(d), r.stockBackup1.best(s)
			} else {
				r.backup, r.stockBackup = r.backup.best(d), r.stockBackup.best(s)
			}
		}
	}
	r.size = objectSize(store)
	if fi, err := os.Stat(stockOut); err == nil {
		r.stockSize = fi.Size()
	}
	for i := range b.runs {
		for _, one := range cores {
			d, err := b.runOne(mode, one, nil, drymVerify...)
			if err != nil {
				return r, err
			}
			s, err := b.runOne(mode, one, b.gpgEnv(), "bash", "-o", "pipefail", "-c", stockVerify)
			if err != nil {
				return r, err
			}
			fmt.Printf("  %s verify run %d%s: drym %s (%d MiB RSS), stock %s\n", mode, i+1, coreNote(one), secs(d.wall), d.rssKB>>10, secs(s.wall))
			if one {
				r.verify1, r.stockVerify1 = r.verify1.best(d), r.stockVerify1.best(s)
			} else {
				r.verify, r.stockVerify = r.verify.best(d), r.stockVerify.best(s)
			}
		}
	}
	// Room in tmpfs for the peers' repositories (the 4 GiB tree's four
	// copies would not fit in RAM beside it).
	os.RemoveAll(store)
	os.Remove(stockOut)
	if err := b.peers(&r, mode, root, tree); err != nil {
		return r, err
	}
	return r, nil
}

func coreNote(one bool) string {
	if one {
		return " (core 0 only)"
	}
	return ""
}

// objectSize is the size of the backup object in a dir store (the store
// holds one backup: it is emptied before each run).
func objectSize(store string) int64 {
	var n int64
	filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && strings.HasSuffix(p, ".gpg") {
			n = fi.Size()
		}
		return nil
	})
	return n
}

// peers: restic and borg, a first full backup into a fresh repository
// (no cache), then a verify of every byte. One run each: a first full
// backup is what the figure is.
func (b *bench) peers(r *shapeResult, mode, root, tree string) error {
	// restic: default compression (auto), AES-256 + Poly1305.
	rrepo, rcache := filepath.Join(root, "restic"), filepath.Join(root, "restic-cache")
	renv := []string{"RESTIC_PASSWORD=drym-bench", "RESTIC_REPOSITORY=" + rrepo, "RESTIC_CACHE_DIR=" + rcache}
	if out, err := b.runEnv(renv, b.restic, "init", "-q"); err != nil {
		return fmt.Errorf("restic init: %v\n%s", err, out)
	}
	m, err := b.runOne(mode, false, renv, b.restic, "backup", "-q", tree)
	if err != nil {
		return err
	}
	r.restic, r.resticSize = m, dirSize(rrepo)
	if r.resticCheck, err = b.runOne(mode, false, renv, b.restic, "check", "-q", "--read-data"); err != nil {
		return err
	}
	os.RemoveAll(rrepo)
	os.RemoveAll(rcache)
	// borg: repokey-blake2 (AES-256-CTR + BLAKE2b), zstd level 1 like drym.
	brepo := filepath.Join(root, "borg")
	benv := []string{"BORG_PASSPHRASE=drym-bench", "BORG_BASE_DIR=" + filepath.Join(root, "borg-home"),
		"BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes"}
	if out, err := b.runEnv(benv, b.borg, "init", "-e", "repokey-blake2", brepo); err != nil {
		return fmt.Errorf("borg init: %v\n%s", err, out)
	}
	if r.borg, err = b.runOne(mode, false, benv, b.borg, "create", "-C", "zstd,1", brepo+"::first", tree); err != nil {
		return err
	}
	r.borgSize = dirSize(brepo)
	if r.borgExtract, err = b.runOne(mode, false, benv, b.borg, "extract", "--dry-run", brepo+"::first"); err != nil {
		return err
	}
	fmt.Printf("  %s peers: restic %s + check %s, borg %s + extract --dry-run %s\n", mode,
		secs(r.restic.wall), secs(r.resticCheck.wall), secs(r.borg.wall), secs(r.borgExtract.wall))
	return nil
}

// peerTools finds restic and borg, or says how to get them (make
// bench-tools): the peers are never silently left out.
func (b *bench) peerTools() error {
	var err error
	if b.restic, err = tool("restic", "make bench-tools (go install github.com/restic/restic/cmd/restic@v0.18.1)"); err != nil {
		return err
	}
	if b.borg, err = tool("borg", "make bench-tools (apt-get install borgbackup)"); err != nil {
		return err
	}
	b.notes = append(b.notes, "peers: "+cmdLine(b.restic, "version")+"; "+cmdLine(b.borg, "--version"))
	return nil
}

// measureShapes generates the trees and measures each, warm then cold.
func (b *bench) measureShapes() error {
	ss := b.shapes()
	var total int64
	files := 0
	for _, sh := range ss {
		fmt.Printf("tree %s: generating (once) in %s\n", sh.title, sh.path)
		t := time.Now()
		n, err := sh.gen(sh.path)
		if err != nil {
			return fmt.Errorf("generating %s: %w", sh.title, err)
		}
		sh.bytes, sh.files = n, countFiles(sh.path)
		total, files = total+n, files+sh.files
		fmt.Printf("  %.2f GB in %d files, ready in %s\n", float64(n)/1e9, sh.files, time.Since(t).Round(time.Second))
		if sh.kind == kindServer && b.s3Tree == "" {
			b.s3Tree, b.s3Bytes = sh.path, n
		}
	}
	b.shapeList = ss
	fmt.Printf("estimated run time: about %s from here on a quiet 2-core machine (load average now: %s; a busy machine takes longer)\n",
		b.estimate(total, files).Round(time.Minute), loadAvg())
	modes := []string{"warm", "cold"}
	if os.Geteuid() != 0 {
		modes = modes[:1]
		b.note("not root: no COLD figures (dropping the page cache needs root); run `sudo make bench` for them")
	}
	for _, sh := range ss {
		for _, mode := range modes {
			fmt.Printf("%s, %s\n", sh.title, mode)
			r, err := b.measureShape(sh, mode)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", sh.title, mode, err)
			}
			b.results = append(b.results, r)
		}
	}
	return nil
}

func countFiles(dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// parseTime reads /usr/bin/time -f "%e %U %S %M" output: its last line.
func parseTime(raw string) (meas, bool) {
	lines := strings.Split(strings.TrimSpace(raw), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 4 {
		return meas{}, false
	}
	var v [3]float64
	for i := range 3 {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return meas{}, false
		}
		v[i] = x
	}
	kb, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return meas{}, false
	}
	return meas{wall: time.Duration(v[0] * float64(time.Second)), cpu: time.Duration((v[1] + v[2]) * float64(time.Second)), rssKB: kb}, true
}
