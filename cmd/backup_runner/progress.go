package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/units"
)

// progress reports a job's progress on a terminal. It is silent unless
// stderr is a TTY and -q is not given: cron mails and the systemd journal
// must not fill with carriage-return redraws.
//
// The bar counts the bytes of the object (stored by a backup, downloaded by a
// test restore) because they flow continuously; files are counted only once
// each is archived, so one big file would freeze a bar driven by them. The
// total needed for a percentage and an ETA is an estimate: the object size of
// the last successful backup (a pre-walk of the sources would cost as much as
// reading them). Without one, or once it is passed, the line shows bytes,
// rate and elapsed time only, never a made-up ETA.
//
// The library draws the spinner, bytes, rate and elapsed time; the
// percentage and ETA are ours, in the description, because its own
// known-length mode finishes the bar when an estimate turns out too small.
type progress struct {
	label   string
	inVerb  string // what File's bytes are: "read", "verified"
	outVerb string // what Output's bytes are: "stored", "downloaded"
	log     *slog.Logger
	start   time.Time

	files, in, out, total atomic.Int64

	// Set only when drawing on a terminal.
	bar  *progressbar.ProgressBar
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// refresh is how often the bar is redrawn: often enough to look alive, rare
// enough that the hot path (Output, per chunk) only does an atomic add.
const refresh = 200 * time.Millisecond

func newProgress(a *app, label string) *progress {
	p := &progress{label: label, log: a.log, start: time.Now(), inVerb: "in", outVerb: "out"}
	switch label {
	case "backup":
		p.inVerb, p.outVerb = "read", "stored"
	case "test-restore":
		p.inVerb, p.outVerb = "verified", "downloaded"
	}
	switch {
	case a.quiet:
		a.log.Debug("progress: off", "job", label, "reason", "-q")
		return p
	case !isTerminal(a.stderr):
		a.log.Debug("progress: off", "job", label, "reason", "stderr is not a terminal")
		return p
	}
	p.total.Store(estimate(a))
	a.log.Debug("progress: on", "job", label, "estimate_bytes", p.total.Load())
	p.draw(a.stderr)
	return p
}

// isTerminal reports whether w is a terminal (an *os.File on a TTY).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// estimate is the object size of the last successful backup, or 0. Both a
// backup and a test restore (which fetches the latest backup) move about that
// many bytes. Only called on a terminal, so cron never pays for it.
func estimate(a *app) int64 {
	cfg, err := config.Load(a.cfgPath)
	if err != nil {
		return 0
	}
	var b status.Backup
	if err := status.Read(cfg.StatusPath(status.BackupFile), &b); err != nil || b.LastSuccess == nil {
		return 0
	}
	return b.LastSuccess.BytesOut
}

// Expect replaces the estimate of the object's size with a better one (a
// test restore knows the size of the object it downloads).
func (p *progress) Expect(total int64) { p.total.Store(total) }

// draw starts redrawing the bar on w.
func (p *progress) draw(w io.Writer) {
	p.bar = progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(p.describe()),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSpinnerType(14),
		// The library's own redraw goroutine outlives Exit and would keep
		// drawing over what the command prints next; ours stops in Close.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(refresh)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.update()
			}
		}
	}()
}

func (p *progress) describe() string {
	d := fmt.Sprintf("%s: %d files, %s %s", p.label, p.files.Load(), units.Bytes(p.in.Load()), p.inVerb)
	if eta, pct, ok := p.eta(time.Since(p.start)); ok {
		d += fmt.Sprintf(", %d%% ETA %s", pct, eta)
	}
	return d + ", " + p.outVerb
}

// eta estimates the time left from the average rate so far and the
// estimated total; ok is false when there is nothing honest to say.
func (p *progress) eta(elapsed time.Duration) (left time.Duration, pct int, ok bool) {
	out, total := p.out.Load(), p.total.Load()
	if total <= 0 || out <= 0 || out >= total || elapsed <= 0 {
		return 0, 0, false
	}
	rate := float64(out) / elapsed.Seconds()
	left = time.Duration(float64(total-out) / rate * float64(time.Second)).Round(time.Second)
	return left, int(out * 100 / total), true
}

// update redraws the line from the counters.
func (p *progress) update() {
	p.bar.Describe(p.describe())
	_ = p.bar.Set64(p.out.Load())
}

// File is called after each regular file is archived (or verified).
func (p *progress) File(size int64) {
	p.files.Add(1)
	p.in.Add(size)
}

// Output is called as bytes are stored or read.
func (p *progress) Output(n int) { p.out.Add(int64(n)) }

// Close draws the final state, ends the line, and logs the totals at debug
// level. Safe to call more than once.
func (p *progress) Close() {
	p.once.Do(func() {
		if p.bar != nil {
			close(p.stop)
			<-p.done
			p.update()
			_ = p.bar.Exit()
		}
		p.log.Debug("progress: done", "job", p.label, "files", p.files.Load(), "bytes_"+p.inVerb, p.in.Load(),
			"bytes_"+p.outVerb, p.out.Load(), "estimate_bytes", p.total.Load(), "elapsed", time.Since(p.start).Round(time.Millisecond))
	})
}
