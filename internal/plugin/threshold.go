package plugin

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a flag value for ages and timeouts: a Go duration extended
// with days and weeks ("90m", "26h", "7d", "1w2d", "1.5h") or plain seconds
// ("3600"). Monitoring configs are written by people who think in days;
// time.ParseDuration stops at hours.
type Duration time.Duration

// ParseDuration parses the Duration syntax. Negative, empty, NaN and
// overflowing values are errors.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration (write e.g. 26h, 7d, 1w2d or seconds)")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsToDuration(f, s)
	}
	var total float64 // nanoseconds
	rest := s
	for rest != "" {
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i == 0 {
			return 0, fmt.Errorf("bad duration %q: expected a number before %q (write e.g. 26h, 7d, 1w2d or seconds)", s, rest)
		}
		if i < 0 {
			return 0, fmt.Errorf("bad duration %q: missing unit after %q (w, d, h, m, s or ms; a bare number means seconds)", s, rest)
		}
		num := rest[:i]
		rest = rest[i:]
		j := strings.IndexFunc(rest, func(r rune) bool { return (r >= '0' && r <= '9') || r == '.' })
		if j < 0 {
			j = len(rest)
		}
		unit := rest[:j]
		rest = rest[j:]
		var mult time.Duration
		switch unit {
		case "w":
			mult = 7 * 24 * time.Hour
		case "d":
			mult = 24 * time.Hour
		case "h":
			mult = time.Hour
		case "m":
			mult = time.Minute
		case "s":
			mult = time.Second
		case "ms":
			mult = time.Millisecond
		default:
			return 0, fmt.Errorf("bad duration %q: unknown unit %q (use w, d, h, m, s or ms)", s, unit)
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: %q is not a number", s, num)
		}
		total += f * float64(mult)
	}
	if total >= float64(math.MaxInt64) { // float64(MaxInt64) rounds up to 2^63
		return 0, fmt.Errorf("bad duration %q: too long", s)
	}
	return time.Duration(total), nil
}

func secondsToDuration(f float64, s string) (time.Duration, error) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, fmt.Errorf("bad duration %q: not a number of seconds", s)
	case f < 0:
		return 0, fmt.Errorf("bad duration %q: negative", s)
	case f*float64(time.Second) >= float64(math.MaxInt64):
		return 0, fmt.Errorf("bad duration %q: too long", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// UnmarshalText lets go-arg parse a Duration flag.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders d the way HumanDuration does (go-arg shows it in help).
func (d Duration) String() string { return HumanDuration(time.Duration(d)) }

// Range is a Nagios threshold range
// (https://nagios-plugins.org/doc/guidelines.html#THRESHOLDFORMAT):
//
//	10      alert if v < 0 or v > 10
//	10:     alert if v < 10
//	~:10    alert if v > 10
//	10:20   alert if v < 10 or v > 20
//	@10:20  alert if 10 ≤ v ≤ 20
//
// Endpoints are inclusive. drym parses ranges itself because go-nagios'
// ParseRangeString mishandles "@~:5" and bare "~". Bare "~" and an empty
// start (":10") are rejected rather than guessed at.
type Range struct {
	Start, End     float64
	NoStart, NoEnd bool // -∞ / +∞
	Inside         bool // '@': alert inside the range instead of outside
	raw            string
	isSet          bool
}

// ParseRange parses a Range of plain numbers.
func ParseRange(s string) (Range, error) {
	return parseRange(s, func(e string) (float64, error) {
		f, err := strconv.ParseFloat(e, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a number", e)
		}
		return f, nil
	})
}

// ParseDurationRange parses a Range whose endpoints are Durations ("26h",
// "1h:2h", "@~:30m", or seconds); endpoints are stored in seconds, so the
// range is compared with ages in seconds, and "26h" alerts when an age is
// over 26 hours.
func ParseDurationRange(s string) (Range, error) {
	return parseRange(s, func(e string) (float64, error) {
		d, err := ParseDuration(e)
		if err != nil {
			return 0, err
		}
		return d.Seconds(), nil
	})
}

func parseRange(s string, num func(string) (float64, error)) (Range, error) {
	raw := strings.TrimSpace(s)
	r := Range{raw: raw, isSet: true}
	bad := func(format string, a ...any) (Range, error) {
		return Range{}, fmt.Errorf("bad threshold %q: %s (Nagios range syntax: 10, 10:, ~:10, 10:20, @10:20)", raw, fmt.Sprintf(format, a...))
	}
	body := raw
	if strings.HasPrefix(body, "@") {
		r.Inside = true
		body = body[1:]
	}
	if body == "" {
		return bad("empty")
	}
	start, end, colon := strings.Cut(body, ":")
	if !colon {
		start, end = "0", body
	}
	switch start {
	case "~":
		r.NoStart = true
	case "":
		return bad("no start before ':' (write 0:%s or ~:%s)", end, end)
	default:
		v, err := num(start)
		if err != nil {
			return bad("start: %v", err)
		}
		r.Start = v
	}
	switch {
	case end == "" && colon:
		r.NoEnd = true
	case end == "~":
		return bad("'~' only stands for the start (~:10)")
	default:
		v, err := num(end)
		if err != nil && !colon {
			return bad("%v", err)
		}
		if err != nil {
			return bad("end: %v", err)
		}
		r.End = v
	}
	if !r.NoStart && !r.NoEnd && r.Start > r.End {
		return bad("start is greater than end")
	}
	return r, nil
}

// IsSet reports whether r was parsed from a threshold (the zero Range is
// "no threshold" and never alerts).
func (r Range) IsSet() bool { return r.isSet }

// Alert reports whether v crosses the threshold.
func (r Range) Alert(v float64) bool {
	if !r.isSet {
		return false
	}
	in := (r.NoStart || v >= r.Start) && (r.NoEnd || v <= r.End)
	if r.Inside {
		return in
	}
	return !in
}

// String returns the threshold as the user wrote it.
func (r Range) String() string { return r.raw }

// Perf renders r in numeric form for perfdata (durations in seconds), "" when
// unset.
func (r Range) Perf() string {
	if !r.isSet {
		return ""
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	var b strings.Builder
	if r.Inside {
		b.WriteByte('@')
	}
	if !r.Inside && !r.NoStart && r.Start == 0 && !r.NoEnd {
		b.WriteString(f(r.End))
		return b.String()
	}
	if r.NoStart {
		b.WriteByte('~')
	} else {
		b.WriteString(f(r.Start))
	}
	b.WriteByte(':')
	if !r.NoEnd {
		b.WriteString(f(r.End))
	}
	return b.String()
}

// AgeRange is a flag value: a Range with Duration endpoints (see
// ParseDurationRange), for -w/-c on age checks.
type AgeRange struct{ Range }

// UnmarshalText lets go-arg parse an AgeRange flag.
func (a *AgeRange) UnmarshalText(b []byte) error {
	r, err := ParseDurationRange(string(b))
	if err != nil {
		return err
	}
	a.Range = r
	return nil
}

// AlertAge reports whether an age crosses the threshold.
func (a AgeRange) AlertAge(age time.Duration) bool { return a.Alert(age.Seconds()) }

// Describe says in words what crossing the threshold means, for messages:
// "older than 26h", "between 1h and 2h old".
func (a AgeRange) Describe() string {
	r := a.Range
	h := func(v float64) string { return HumanDuration(time.Duration(v * float64(time.Second))) }
	switch {
	case !r.isSet:
		return "no threshold"
	case r.Inside && r.NoStart && r.NoEnd:
		return "any age"
	case r.Inside && r.NoStart:
		return "at most " + h(r.End) + " old"
	case r.Inside && r.NoEnd:
		return "at least " + h(r.Start) + " old"
	case r.Inside:
		return "between " + h(r.Start) + " and " + h(r.End) + " old"
	case r.NoStart && r.NoEnd:
		return "never"
	case r.NoStart:
		return "older than " + h(r.End)
	case r.NoEnd:
		return "younger than " + h(r.Start)
	case r.Start == 0 && !strings.ContainsAny(r.raw, ":@"):
		return "older than " + r.raw // as the admin wrote it: "26h", not "1d2h"
	case r.Start == 0:
		return "older than " + h(r.End)
	default:
		return "not between " + h(r.Start) + " and " + h(r.End) + " old"
	}
}

// NumRange is a flag value: a Range of plain numbers.
type NumRange struct{ Range }

// UnmarshalText lets go-arg parse a NumRange flag.
func (n *NumRange) UnmarshalText(b []byte) error {
	r, err := ParseRange(string(b))
	if err != nil {
		return err
	}
	n.Range = r
	return nil
}

// Percent is a flag value: "50%" or "50", from 0 to 100.
type Percent float64

// UnmarshalText lets go-arg parse a Percent flag.
func (p *Percent) UnmarshalText(b []byte) error {
	s := strings.TrimSuffix(strings.TrimSpace(string(b)), "%")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
		return fmt.Errorf("bad percentage %q (write e.g. 50%% or 50, from 0 to 100)", string(b))
	}
	*p = Percent(f)
	return nil
}

// String renders the percentage ("50%").
func (p Percent) String() string { return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%" }

// HumanDuration renders d with its two largest units: "45s", "4m10s",
// "3h12m", "2d4h", "26h" stays "1d2h".
func HumanDuration(d time.Duration) string {
	if d < 0 {
		return "-" + HumanDuration(-d)
	}
	if d < time.Second {
		if d == 0 {
			return "0s"
		}
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	d = d.Round(time.Second)
	units := []struct {
		d time.Duration
		s string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units {
		if d < u.d {
			continue
		}
		out := fmt.Sprintf("%d%s", d/u.d, u.s)
		if i+1 < len(units) {
			if rest := (d % u.d) / units[i+1].d; rest > 0 {
				out += fmt.Sprintf("%d%s", rest, units[i+1].s)
			}
		}
		return out
	}
	return "0s"
}
