package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func s(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }

// TestJudge: each speed target is met exactly at its bound, not
// below; a missing figure is never met.
func TestJudge(t *testing.T) {
	base := func(kind, mode string) shapeResult {
		return shapeResult{tree: "t", kind: kind, mode: mode, bytes: 1 << 30,
			backup: meas{wall: s(1), rssKB: 60 << 10}, stockBackup: meas{wall: s(1.4)},
			verify: meas{wall: s(1), rssKB: 40 << 10}, stockVerify: meas{wall: s(1)},
			resticCheck: meas{wall: s(3)}, size: 1000, stockSize: 1000}
	}
	find := func(ts []target, prefix string) target {
		for _, x := range ts {
			if strings.HasPrefix(x.what, prefix) {
				return x
			}
		}
		t.Fatalf("no target %q", prefix)
		return target{}
	}
	for _, c := range []struct {
		name   string
		edit   func(*shapeResult)
		kind   string
		mode   string
		target string
		met    bool
	}{
		{"large warm at 1.4", nil, kindLarge, "warm", "backup ≥ 1.4×", true},
		{"large warm at 1.39", func(r *shapeResult) { r.stockBackup.wall = s(1.39) }, kindLarge, "warm", "backup ≥ 1.4×", false},
		{"server warm is a large-file tree", func(r *shapeResult) { r.stockBackup.wall = s(1.2) }, kindServer, "warm", "backup ≥ 1.4×", false},
		{"small warm at 1.0", func(r *shapeResult) { r.stockBackup.wall = s(1) }, kindSmall, "warm", "backup ≥ 1.0× stock (many", true},
		{"small warm at 0.99", func(r *shapeResult) { r.stockBackup.wall = s(0.99) }, kindSmall, "warm", "backup ≥ 1.0× stock (many", false},
		{"cold at 1.0", func(r *shapeResult) { r.stockBackup.wall = s(1) }, kindLarge, "cold", "backup ≥ 1.0× stock (cold)", true},
		{"backup not taken", func(r *shapeResult) { r.backup = meas{} }, kindLarge, "cold", "backup ≥ 1.0× stock (cold)", false},
		{"size +3 %", func(r *shapeResult) { r.size = 1030 }, kindLarge, "warm", "stored size", true},
		{"size +3.1 %", func(r *shapeResult) { r.size = 1031 }, kindLarge, "warm", "stored size", false},
		{"size -3.1 %", func(r *shapeResult) { r.size = 969 }, kindLarge, "warm", "stored size", false},
		{"size missing", func(r *shapeResult) { r.stockSize = 0 }, kindLarge, "warm", "stored size", false},
		{"verify equal to stock", nil, kindSmall, "cold", "test-restore ≥ 1.0×", true},
		{"verify slower than stock", func(r *shapeResult) { r.verify.wall = s(1.01) }, kindSmall, "cold", "test-restore ≥ 1.0×", false},
		{"verify as fast as restic is not faster", func(r *shapeResult) { r.resticCheck.wall = s(1) }, kindSmall, "cold", "test-restore faster than restic", false},
		{"restic missing", func(r *shapeResult) { r.resticCheck = meas{} }, kindSmall, "cold", "test-restore faster than restic", false},
		{"RSS 64 MiB", func(r *shapeResult) { r.backup.rssKB = 64 << 10 }, kindSmall, "warm", "peak RSS ≤ 64 MiB, backup", true},
		{"RSS over 64 MiB on one core", func(r *shapeResult) { r.backup1 = meas{wall: s(2), rssKB: 64<<10 + 1} }, kindSmall, "warm", "peak RSS ≤ 64 MiB, backup", false},
		{"RSS of test-restore", func(r *shapeResult) { r.verify.rssKB = 65 << 10 }, kindSmall, "warm", "peak RSS ≤ 64 MiB, test-restore", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := base(c.kind, c.mode)
			if c.edit != nil {
				c.edit(&r)
			}
			got := find(judge([]shapeResult{r}), c.target)
			if got.met != c.met {
				t.Errorf("%s: met = %v (measured %s), want %v", got.what, got.met, got.measured, c.met)
			}
		})
	}
}

// TestTables: the tables have a row per figure, the columns line up, and
// what was not measured shows as a dash, never as 0 or NaN.
func TestTables(t *testing.T) {
	r := shapeResult{tree: "100k small files", kind: kindSmall, mode: "warm", bytes: 1 << 30,
		backup: meas{wall: s(2), cpu: s(3), rssKB: 50 << 10}, stockBackup: meas{wall: s(3), cpu: s(4.5), rssKB: 10 << 10},
		backup1: meas{wall: s(4)}, stockBackup1: meas{wall: s(4)},
		verify: meas{wall: s(1), cpu: s(2), rssKB: 30 << 10}, stockVerify: meas{wall: s(1.5), cpu: s(1), rssKB: 8 << 10},
		restic: meas{wall: s(10), cpu: s(12), rssKB: 200 << 10}, size: 500e6, stockSize: 505e6, resticSize: 520e6}
	cold := r
	cold.mode, cold.backup1, cold.stockBackup1 = "cold", meas{}, meas{}
	tab := shapeTable([]shapeResult{r, cold})
	lines := strings.Split(strings.TrimSpace(tab), "\n")
	if want := 2 + 8 + 7; len(lines) != want {
		t.Errorf("%d lines, want %d:\n%s", len(lines), want, tab)
	}
	for _, l := range lines {
		if n := strings.Count(l, "|"); n != 9 {
			t.Errorf("%d bars in %q", n, l)
		}
	}
	for _, want := range []string{
		"| 100k small files | warm | backup, 2 cores | 537 MB/s (2.00 s) | 358 MB/s (3.00 s) | 1.50× | 10.00 s | — |",
		"| 100k small files | warm | backup, 1 core | 268 MB/s (4.00 s) | 268 MB/s (4.00 s) | 1.00× |  |  |",
		"| backup CPU (user+sys) | 3.00 s/GiB | 4.50 s/GiB | 1.50× | 12.00 s/GiB | — |",
		"| verify CPU (user+sys) | 2.00 s/GiB | 1.00 s/GiB | 0.50× | — | — |",
		"| peak RSS, backup | 50.0 MiB | 10.0 MiB |  | 200.0 MiB | — |",
		"| stored size | 500 MB | 505 MB | 1.01× | 520 MB | — |",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if strings.Contains(tab, "NaN") || strings.Contains(tab, "Inf") || strings.Contains(tab, "| 0 ") || strings.Contains(tab, " 0.0 ") {
		t.Errorf("a missing figure shows as a number:\n%s", tab)
	}
	tt := targetTable([]target{{"a", "t", "warm", "1.5×", true}, {"b", "t", "cold", "0.9×", false}})
	for _, want := range []string{"| a | t | warm | 1.5× | met |", "| b | t | cold | 0.9× | **not met** |", "1 of 2 met."} {
		if !strings.Contains(tt, want) {
			t.Errorf("target table lacks %q:\n%s", want, tt)
		}
	}
}

func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want meas
		ok   bool
	}{
		{"1.50 0.70 0.30 51234\n", meas{wall: s(1.5), cpu: s(1), rssKB: 51234}, true},
		{"Command exited with non-zero status 1\n0.01 0.00 0.00 2000\n", meas{wall: s(0.01), rssKB: 2000}, true},
		{"", meas{}, false},
		{"x y z w", meas{}, false},
	} {
		got, ok := parseTime(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("parseTime(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// digest is a hash of every path, mode, mtime and content of a tree.
func digest(t *testing.T, dir string) string {
	h := sha256.New()
	var paths []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		return nil
	})
	sort.Strings(paths)
	for _, p := range paths {
		fi, _ := os.Lstat(p)
		rel, _ := filepath.Rel(dir, p)
		mtime := fi.ModTime().Unix()
		if fi.Mode()&os.ModeSymlink != 0 {
			mtime = 0 // a symlink's own mtime is not fixed (nor archived by tar -h)
		}
		fmt.Fprintf(h, "%s %v %d %d\n", rel, fi.Mode(), mtime, fi.Size())
		if fi.Mode().IsRegular() {
			f, _ := os.Open(p)
			io.Copy(h, f)
			f.Close()
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestGeneratorsDeterministic: each tree generator makes the same bytes,
// names and mtimes twice over, and the sizes it promises.
func TestGeneratorsDeterministic(t *testing.T) {
	for _, c := range []struct {
		name     string
		gen      func(string) (int64, error)
		min, max int64
	}{
		{"small", func(d string) (int64, error) { return generateSmall(d, 1200) }, 1200 * 200, 1200 * 6000},
		{"large", func(d string) (int64, error) { return generateLarge(d, 1) }, 4 << 20, 4 << 20},
		{"server", func(d string) (int64, error) { return generate(d, 1, 64) }, 1, 64 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && c.name == "server" {
				t.Skip("-short")
			}
			root := t.TempDir()
			var sums []string
			for i := range 2 {
				d := filepath.Join(root, fmt.Sprint(i))
				n, err := c.gen(d)
				if err != nil {
					t.Fatal(err)
				}
				if n < c.min || n > c.max {
					t.Errorf("%d bytes, want %d to %d", n, c.min, c.max)
				}
				sums = append(sums, digest(t, d))
			}
			if sums[0] != sums[1] {
				t.Error("two runs made different trees")
			}
			// A complete tree (marker present) is reused, not rewritten.
			d := filepath.Join(root, "0")
			os.WriteFile(filepath.Join(d, "extra"), []byte("x"), 0o644)
			if _, err := c.gen(d); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(d, "extra")); err != nil {
				t.Error("a complete tree was regenerated")
			}
		})
	}
}
