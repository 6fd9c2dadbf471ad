// Package plugin is the plumbing every drym check shares: flag parsing that
// exits 3 on bad flags, thresholds (durations with days and weeks, Nagios
// ranges), the -t deadline, worst-state-wins results, and rendering through
// go-nagios within the limits Nagios, Icinga and NRPE put on plugin output.
//
// A check is a pure core and a thin shell (docs/ARCHITECTURE.md):
//
//	type args struct {
//		plugin.Common                // -t, --config, --state-dir, -v, --version
//		Warning plugin.AgeRange `arg:"-w,--warning" default:"26h" help:"…"`
//	}
//
//	func main() {
//		var a args
//		plugin.Check{Name: "check_x", Args: &a, Run: func(ctx context.Context) plugin.Result {
//			facts := gather(ctx, &a)          // all I/O; bounded by -t
//			return evaluate(facts, a, time.Now()) // pure; table-tested
//		}}.Main()
//	}
//
// Check.Main parses the flags (bad flag → "UNKNOWN: …" + usage, exit 3;
// -h/--help and --version → exit 0), runs Run in a goroutine under the -t
// deadline (a Run stuck in read(2) on a hung mount still ends in
// "UNKNOWN: timed out after …"), and renders the Result. Inside Run,
// Doing(ctx, …) names the current step for the timeout message and -v, and
// Common.Settings finds the config and state directory ("not set up" when
// there is neither).
package plugin

import (
	"bytes"
	"fmt"
	"strings"

	nagios "github.com/atc0005/go-nagios"
)

// State is a Nagios service state; its value is the plugin exit code.
type State int

// The four Nagios states.
const (
	OK       State = 0
	Warning  State = 1
	Critical State = 2
	Unknown  State = 3
)

func (s State) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// ExitCode is the plugin exit code for s.
func (s State) ExitCode() int { return int(s) }

// severity orders states for worst-of: CRITICAL > UNKNOWN > WARNING > OK.
// UNKNOWN outranks WARNING (as Icinga ranks them): a check that could not
// vouch for something says less than one that found a known, minor fault.
func (s State) severity() int {
	switch s {
	case OK:
		return 0
	case Warning:
		return 1
	case Critical:
		return 3
	}
	return 2
}

// Worse reports whether s is more severe than t.
func (s State) Worse(t State) bool { return s.severity() > t.severity() }

// Worst returns the most severe of states (OK for none).
func Worst(states ...State) State {
	w := OK
	for _, s := range states {
		if s.Worse(w) {
			w = s
		}
	}
	return w
}

// Result is what a check found: its state, the first line (without the
// "OK: " prefix, which Render adds), detail lines and perfdata.
type Result struct {
	State State
	// Summary is the first line: what is wrong and the command that fixes
	// it, or for OK the facts that prove it.
	Summary string
	// Also holds the other non-OK findings, each prefixed with its state;
	// Render lists them first in the long output.
	Also []string
	// Long holds detail lines (facts, paths, thresholds).
	Long []string
	// Perfdata is emitted after the output; use Seconds, Bytes and Count.
	Perfdata []nagios.PerformanceData
}

// Raise records a finding. The worst finding becomes State and Summary (the
// first of equal severity wins); the others move to Also. An OK Summary set
// before the first Raise is discarded, so set the OK line last:
//
//	if r.State == plugin.OK { r.Summary = "last backup 3h ago …" }
func (r *Result) Raise(s State, summary string) {
	if s == OK {
		return
	}
	hadProblem := r.State != OK
	switch {
	case !hadProblem || s.Worse(r.State):
		if hadProblem {
			r.Also = append([]string{r.State.String() + ": " + r.Summary}, r.Also...)
		}
		r.State, r.Summary = s, summary
	default:
		r.Also = append(r.Also, s.String()+": "+summary)
	}
}

// Addf appends a detail line.
func (r *Result) Addf(format string, a ...any) {
	r.Long = append(r.Long, fmt.Sprintf(format, a...))
}

// Output limits. Nagios 4 keeps 8 KiB of plugin output and NRPE 4 passes
// more, but older NRPE and the notification paths truncate, so the whole
// output stays within MaxOutput with the first line first.
const (
	MaxOutput    = 4096
	maxFirstLine = 1000
	maxLongLine  = 500
	// MaxWord bounds one word (a path, an object name, a key) on the first
	// line: a 4 KiB path must not push the fix, which ends the line, out
	// of what Nagios shows.
	MaxWord = 160
)

// FirstLine is the first line as printed: "STATE: summary", one line, with
// '|' (the perfdata separator) replaced, every word of more than MaxWord
// bytes shortened in its middle, at most maxFirstLine bytes.
func (r Result) FirstLine() string {
	words := strings.Fields(r.Summary)
	for i, w := range words {
		words[i] = Shorten(w, MaxWord)
	}
	s := clean(strings.Join(words, " "), maxFirstLine-40)
	if s == "" {
		s = "no result (this is a bug in drym: please report it)"
	}
	if n := len(r.Also); n > 0 {
		s += fmt.Sprintf(" (+%d more below)", n)
	}
	return r.State.String() + ": " + s
}

// Shorten returns s if it has at most max bytes, else its start and end
// around "…" in max bytes or fewer (a path keeps its file name), without
// splitting a UTF-8 sequence.
func Shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	keep := max - len("…")
	head, tail := keep/2, keep-keep/2
	for head > 0 && (s[head]&0xC0) == 0x80 {
		head--
	}
	from := len(s) - tail
	for from < len(s) && (s[from]&0xC0) == 0x80 {
		from++
	}
	return s[:head] + "…" + s[from:]
}

// clean makes s safe as one line of plugin output.
func clean(s string, max int) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "|", "/")), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && (s[cut]&0xC0) == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Render copies r into p (ServiceOutput, LongServiceOutput, exit code,
// perfdata), keeping the whole output within MaxOutput: detail lines that do
// not fit are replaced by a count.
func Render(p *nagios.Plugin, r Result) {
	p.ExitStatusCode = r.State.ExitCode()
	p.ServiceOutput = r.FirstLine()

	perfLen := len(" |") + len(" 'time'=99999ms;;;;") + len(nagios.CheckOutputEOL)
	var perf []nagios.PerformanceData
	for _, pd := range r.Perfdata {
		if err := pd.Validate(); err != nil {
			// A bug, not the admin's problem: say so rather than emit
			// perfdata graphers would choke on.
			r.Also = append(r.Also, fmt.Sprintf("UNKNOWN: perfdata %q dropped (drym bug): %v", pd.Label, err))
			continue
		}
		perf = append(perf, pd)
		perfLen += len(pd.String())
	}

	lines := make([]string, 0, len(r.Also)+len(r.Long))
	for _, l := range r.Also {
		lines = append(lines, clean(l, maxLongLine))
	}
	for _, l := range r.Long {
		lines = append(lines, clean(l, maxLongLine))
	}
	eol := nagios.CheckOutputEOL
	budget := MaxOutput - len(p.ServiceOutput) - perfLen - 3*len(eol) - 64
	var long strings.Builder
	for i, l := range lines {
		if long.Len()+len(l)+len(eol) > budget {
			fmt.Fprintf(&long, "… %d more lines not shown (output limit %d bytes)", len(lines)-i, MaxOutput)
			break
		}
		if i > 0 {
			long.WriteString(eol)
		}
		long.WriteString(l)
	}
	p.LongServiceOutput = long.String()
	if len(perf) > 0 {
		_ = p.AddPerfData(true, perf...) // validated above
	}
}

// Format renders r exactly as a check prints it, except that go-nagios'
// measured "time" perfdata is fixed at 0ms so the text is reproducible (for
// golden files and docs/GALLERY.md).
func Format(r Result) string {
	var buf bytes.Buffer
	p := nagios.NewPlugin()
	p.SkipOSExit()
	p.SetOutputTarget(TrimmedLines(&buf))
	Render(p, r)
	_ = p.AddPerfData(true, nagios.PerformanceData{Label: "time", Value: "0", UnitOfMeasurement: "ms"})
	p.ReturnCheckResults()
	return buf.String()
}

// Seconds is perfdata for an age or duration in seconds, with the
// thresholds in seconds and a minimum of 0.
func Seconds(label string, secs float64, warn, crit Range) nagios.PerformanceData {
	return nagios.PerformanceData{
		Label: label, Value: fmt.Sprintf("%.0f", secs), UnitOfMeasurement: "s",
		Warn: warn.Perf(), Crit: crit.Perf(), Min: "0",
	}
}

// Bytes is perfdata for a size in bytes.
func Bytes(label string, n int64) nagios.PerformanceData {
	return nagios.PerformanceData{Label: label, Value: fmt.Sprint(n), UnitOfMeasurement: "B", Min: "0"}
}

// Count is perfdata for a plain count.
func Count(label string, n int64) nagios.PerformanceData {
	return nagios.PerformanceData{Label: label, Value: fmt.Sprint(n), Min: "0"}
}
