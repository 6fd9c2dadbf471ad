package plugin

import (
	"math"
	"testing"
	"time"
)

var durationSeeds = []string{
	"26h", "7d", "1w2d", "1.5h", "90m", "3600", "0", "0.5", "250ms", "1w1d1h1m1s1ms",
	"", " ", "-1", "-1h", "1x", "h", "1h-", "NaN", "Inf", "+Inf", "1e400", "1e18", "0x10",
	"9223372036.854775807", "9223372036.854775807s", "106751d23h47m16.854775807s", "15251w",
	"1..2h", ".h", "1.h", "١h",
}

// FuzzParseDuration: -t, --max-runtime and every age threshold go through
// ParseDuration. Whatever it accepts is a non-negative duration: a negative
// or wrapped-around value would turn "older than a week" into "always" or a
// timeout into "give up at once".
func FuzzParseDuration(f *testing.F) {
	for _, s := range durationSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("ParseDuration(%q) = %v with error %v", s, d, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative (overflow?): compare with >= float64(math.MaxInt64), which rounds to 2^63", s, d)
		}
	})
}

var rangeSeeds = []string{
	"10", "10:", "~:10", "10:20", "@10:20", "@~:5", "@10:", "@~:", "~:", "0", "0:0", "@0:0",
	"", "@", "~", ":10", "20:10", "10:~", "@@1", "1:2:3", "NaN", "1e400", "-5:-1", "-1", "inf", " 5 ",
	"26h", "1h:2h", "@~:30m", "7d:", "2h:1h", "1w2d", "3600:7200",
}

// FuzzParseRange: the Nagios range parser behind every -w/-c. An accepted
// range has finite, ordered endpoints; Alert agrees with the range's
// definition at and around its endpoints; and the perfdata form Perf()
// parses back to a range that alerts exactly alike, so what Nagios graphs
// is what the check judged.
func FuzzParseRange(f *testing.F) {
	for _, s := range rangeSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, durations bool) {
		parse := ParseRange
		if durations {
			parse = ParseDurationRange
		}
		r, err := parse(s)
		if err != nil {
			if r.IsSet() {
				t.Fatalf("parse(%q) returned a set range with error %v", s, err)
			}
			return
		}
		if !r.IsSet() {
			t.Fatalf("parse(%q) accepted but the range is not set", s)
		}
		for _, v := range []float64{r.Start, r.End} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("parse(%q): endpoint %v", s, v)
			}
		}
		if !r.NoStart && !r.NoEnd && r.Start > r.End {
			t.Fatalf("parse(%q): start %v > end %v", s, r.Start, r.End)
		}
		if durations && ((!r.NoStart && r.Start < 0) || (!r.NoEnd && r.End < 0)) {
			t.Fatalf("parse(%q): negative age %v:%v", s, r.Start, r.End)
		}
		probes := []float64{0, -1, 1, math.MaxFloat64, -math.MaxFloat64}
		for _, e := range []float64{r.Start, r.End} {
			probes = append(probes, e, math.Nextafter(e, math.Inf(1)), math.Nextafter(e, math.Inf(-1)))
		}
		back, err := ParseRange(r.Perf())
		if err != nil {
			t.Fatalf("parse(%q).Perf() = %q does not parse: %v", s, r.Perf(), err)
		}
		for _, v := range probes {
			in := (r.NoStart || v >= r.Start) && (r.NoEnd || v <= r.End)
			if want := in == r.Inside; r.Alert(v) != want {
				t.Fatalf("parse(%q).Alert(%v) = %v, want %v", s, v, r.Alert(v), want)
			}
			if back.Alert(v) != r.Alert(v) {
				t.Fatalf("parse(%q) and its perfdata form %q disagree at %v", s, r.Perf(), v)
			}
		}
		if durations {
			// AgeRange.AlertAge goes through Seconds(); it must not panic.
			_ = AgeRange{r}.AlertAge(time.Duration(r.End * float64(time.Second)))
			_ = AgeRange{r}.Describe()
		}
	})
}
