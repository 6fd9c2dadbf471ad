package main

// The pure half of the per-shape figures: the measurements of one tree in
// one cache mode, the markdown table they make, and the judgement of issue
// 16's targets. No I/O here (report_test.go covers it).

import (
	"fmt"
	"strings"
	"time"
)

// meas is one measured run: wall time, CPU (user + sys, children
// included) and peak RSS.
type meas struct {
	wall  time.Duration
	cpu   time.Duration
	rssKB int64
}

func (m meas) ok() bool { return m.wall > 0 }

// best keeps the faster of two runs (peak RSS: the larger of them).
func (m meas) best(n meas) meas {
	if !m.ok() {
		return n
	}
	out := m
	if n.ok() && n.wall < m.wall {
		out = n
	}
	out.rssKB = max(m.rssKB, n.rssKB)
	return out
}

// Tree kinds: what the targets distinguish.
const (
	kindServer = "server"
	kindSmall  = "small"
	kindLarge  = "large"
)

// shapeResult is every figure of one tree in one mode (warm or cold).
type shapeResult struct {
	tree, kind, mode string
	bytes            int64
	files            int
	// drym and the stock pipeline, on both cores and on core 0 alone
	// (the one-core runs are taken warm only)
	backup, stockBackup, backup1, stockBackup1 meas
	verify, stockVerify, verify1, stockVerify1 meas
	// the peers: first full backup, verify every byte
	restic, resticCheck, borg, borgExtract meas
	size, stockSize, resticSize, borgSize  int64
}

// speedup is the reference's wall time over drym's (higher is better); 0
// when either is missing.
func speedup(drym, ref meas) float64 {
	if !drym.ok() || !ref.ok() {
		return 0
	}
	return ref.wall.Seconds() / drym.wall.Seconds()
}

func cpuPerGiB(m meas, bytes int64) float64 {
	if !m.ok() || bytes <= 0 {
		return 0
	}
	return m.cpu.Seconds() / (float64(bytes) / (1 << 30))
}

func fmtWall(m meas, bytes int64) string {
	if !m.ok() {
		return "—"
	}
	return fmt.Sprintf("%.0f MB/s (%.2f s)", float64(bytes)/1e6/m.wall.Seconds(), m.wall.Seconds())
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", r)
}

func fmtRSS(m meas) string {
	if !m.ok() {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(m.rssKB)/1024)
}

func fmtSize(n int64) string {
	if n <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

func fmtCPU(m meas, bytes int64) string {
	if !m.ok() {
		return "—"
	}
	return fmt.Sprintf("%.2f s/GiB", cpuPerGiB(m, bytes))
}

// shapeTable renders the per-shape table: one block of rows per tree and
// mode, drym beside the stock pipeline and the two peers.
func shapeTable(rs []shapeResult) string {
	var w strings.Builder
	w.WriteString("| tree | cache | figure | drym | stock pipeline | stock / drym | restic 0.18 | borg 1.2 |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		line := func(fig, d, s, ratio, restic, borg string) {
			fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.tree, r.mode, fig, d, s, ratio, restic, borg)
		}
		secs := func(m meas) string {
			if !m.ok() {
				return "—"
			}
			return fmt.Sprintf("%.2f s", m.wall.Seconds())
		}
		line("backup, 2 cores", fmtWall(r.backup, r.bytes), fmtWall(r.stockBackup, r.bytes), fmtRatio(speedup(r.backup, r.stockBackup)), secs(r.restic), secs(r.borg))
		if r.backup1.ok() {
			line("backup, 1 core", fmtWall(r.backup1, r.bytes), fmtWall(r.stockBackup1, r.bytes), fmtRatio(speedup(r.backup1, r.stockBackup1)), "", "")
		}
		line("backup CPU (user+sys)", fmtCPU(r.backup, r.bytes), fmtCPU(r.stockBackup, r.bytes),
			fmtRatio(ratioOf(cpuPerGiB(r.stockBackup, r.bytes), cpuPerGiB(r.backup, r.bytes))), fmtCPU(r.restic, r.bytes), fmtCPU(r.borg, r.bytes))
		line("verify, 2 cores", fmtWall(r.verify, r.bytes), fmtWall(r.stockVerify, r.bytes), fmtRatio(speedup(r.verify, r.stockVerify)), secs(r.resticCheck), secs(r.borgExtract))
		if r.verify1.ok() {
			line("verify, 1 core", fmtWall(r.verify1, r.bytes), fmtWall(r.stockVerify1, r.bytes), fmtRatio(speedup(r.verify1, r.stockVerify1)), "", "")
		}
		line("verify CPU (user+sys)", fmtCPU(r.verify, r.bytes), fmtCPU(r.stockVerify, r.bytes),
			fmtRatio(ratioOf(cpuPerGiB(r.stockVerify, r.bytes), cpuPerGiB(r.verify, r.bytes))), fmtCPU(r.resticCheck, r.bytes), fmtCPU(r.borgExtract, r.bytes))
		line("peak RSS, backup", fmtRSS(r.backup), fmtRSS(r.stockBackup), "", fmtRSS(r.restic), fmtRSS(r.borg))
		line("peak RSS, verify", fmtRSS(r.verify), fmtRSS(r.stockVerify), "", fmtRSS(r.resticCheck), fmtRSS(r.borgExtract))
		line("stored size", fmtSize(r.size), fmtSize(r.stockSize), fmtRatio(ratioOf(float64(r.stockSize), float64(r.size))), fmtSize(r.resticSize), fmtSize(r.borgSize))
	}
	return w.String()
}

func ratioOf(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// target is one judged line of drym's speed targets.
type target struct {
	what, tree, mode, measured string
	met                        bool
}

const rssCeilingKB = 64 << 10

// judge holds every result against drym's speed targets. A figure that was
// not taken is judged not met: a target is never met by omission.
func judge(rs []shapeResult) []target {
	var ts []target
	add := func(r shapeResult, what, measured string, met bool) {
		ts = append(ts, target{what, r.tree, r.mode, measured, met})
	}
	for _, r := range rs {
		sp := speedup(r.backup, r.stockBackup)
		switch {
		case r.mode == "warm" && r.kind == kindSmall:
			add(r, "backup ≥ 1.0× stock (many small files, warm)", fmtRatio(sp), sp >= 1.0)
		case r.mode == "warm":
			add(r, "backup ≥ 1.4× stock (large-file tree, warm)", fmtRatio(sp), sp >= 1.4)
		default:
			add(r, "backup ≥ 1.0× stock (cold)", fmtRatio(sp), sp >= 1.0)
		}
		dev := 0.0
		if r.size > 0 && r.stockSize > 0 {
			dev = float64(r.size)/float64(r.stockSize) - 1
		}
		diff := r.size - r.stockSize
		add(r, "stored size within 3 % of stock", fmt.Sprintf("%+.1f %%", 100*dev), r.size > 0 && r.stockSize > 0 && 100*max(diff, -diff) <= 3*r.stockSize)
		vs := speedup(r.verify, r.stockVerify)
		add(r, "test-restore ≥ 1.0× gpg -d \\| zstd -d \\| tar -t", fmtRatio(vs), vs >= 1.0)
		vr := speedup(r.verify, r.resticCheck)
		add(r, "test-restore faster than restic check --read-data", fmtRatio(vr), vr > 1.0)
		for _, j := range []struct {
			name string
			m    meas
		}{{"backup", r.backup.best(r.backup1)}, {"test-restore", r.verify.best(r.verify1)}} {
			add(r, "peak RSS ≤ 64 MiB, "+j.name, fmtRSS(j.m), j.m.ok() && j.m.rssKB <= rssCeilingKB)
		}
	}
	return ts
}

func targetTable(ts []target) string {
	var w strings.Builder
	w.WriteString("| speed target | tree | cache | measured | |\n|---|---|---|---|---|\n")
	met := 0
	for _, t := range ts {
		v := "**not met**"
		if t.met {
			v, met = "met", met+1
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s |\n", t.what, t.tree, t.mode, t.measured, v)
	}
	fmt.Fprintf(&w, "\n%d of %d met.\n", met, len(ts))
	return w.String()
}
