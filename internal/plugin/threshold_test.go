package plugin

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"90m", 90 * time.Minute, false},
		{"26h", 26 * time.Hour, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"1w2d", 9 * 24 * time.Hour, false},
		{"1w2d3h4m5s", 9*24*time.Hour + 3*time.Hour + 4*time.Minute + 5*time.Second, false},
		{"1.5h", 90 * time.Minute, false},
		{"500ms", 500 * time.Millisecond, false},
		{"3600", time.Hour, false},
		{"0", 0, false},
		{"2.5", 2500 * time.Millisecond, false},
		{" 10s ", 10 * time.Second, false},
		{"", 0, true},
		{"-5", 0, true},
		{"-5m", 0, true},
		{"h", 0, true},
		{"5", 5 * time.Second, false},
		{"5x", 0, true},
		{"5d3", 0, true},
		{"1..5h", 0, true},
		{"NaN", 0, true},
		{"inf", 0, true},
		{"1e300", 0, true},
		{"100000000w", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseDuration(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	type probe struct {
		v     float64
		alert bool
	}
	tests := []struct {
		in      string
		wantErr bool
		perf    string
		probes  []probe
	}{
		{"10", false, "10", []probe{{-1, true}, {0, false}, {10, false}, {10.5, true}}},
		{"10:", false, "10:", []probe{{9.9, true}, {10, false}, {1e9, false}}},
		{"~:10", false, "~:10", []probe{{-1e9, false}, {10, false}, {11, true}}},
		{"10:20", false, "10:20", []probe{{9, true}, {10, false}, {20, false}, {21, true}}},
		{"@10:20", false, "@10:20", []probe{{9, false}, {10, true}, {15, true}, {20, true}, {21, false}}},
		{"@~:5", false, "@~:5", []probe{{-100, true}, {5, true}, {5.1, false}}},
		{"@5", false, "@0:5", []probe{{-1, false}, {0, true}, {5, true}, {6, false}}},
		{"@10:", false, "@10:", []probe{{9, false}, {10, true}}},
		{"~:", false, "~:", []probe{{-1e9, false}, {1e9, false}}},
		{"@~:", false, "@~:", []probe{{0, true}}},
		{"-10:-5", false, "-10:-5", []probe{{-11, true}, {-7, false}, {0, true}}},
		{"0:0", false, "0", []probe{{0, false}, {0.1, true}}},
		{"1.5:2.5", false, "1.5:2.5", []probe{{2, false}, {3, true}}},
		{"~", true, "", nil},
		{"@~", true, "", nil},
		{"", true, "", nil},
		{"@", true, "", nil},
		{":10", true, "", nil},
		{"20:10", true, "", nil},
		{"a:b", true, "", nil},
		{"10:~", true, "", nil},
		{"1:2:3", true, "", nil},
		{"nan", true, "", nil},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRange(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if tt.wantErr {
			if r.IsSet() {
				t.Errorf("ParseRange(%q) failed but returned a set range", tt.in)
			}
			continue
		}
		if got := r.Perf(); got != tt.perf {
			t.Errorf("ParseRange(%q).Perf() = %q, want %q", tt.in, got, tt.perf)
		}
		for _, p := range tt.probes {
			if got := r.Alert(p.v); got != p.alert {
				t.Errorf("ParseRange(%q).Alert(%v) = %v, want %v", tt.in, p.v, got, p.alert)
			}
		}
	}
}

func TestZeroRangeNeverAlerts(t *testing.T) {
	var r Range
	for _, v := range []float64{-1, 0, 1e12} {
		if r.Alert(v) {
			t.Errorf("zero Range alerts on %v", v)
		}
	}
	if r.Perf() != "" {
		t.Errorf("zero Range Perf = %q", r.Perf())
	}
}

func TestDurationRange(t *testing.T) {
	tests := []struct {
		in       string
		perf     string
		describe string
		age      time.Duration
		alert    bool
	}{
		{"26h", "93600", "older than 26h", 25 * time.Hour, false},
		{"26h", "93600", "older than 26h", 26*time.Hour + time.Second, true},
		{"93600", "93600", "older than 93600", 26 * time.Hour, false},
		{"1w2d", "777600", "older than 1w2d", 8 * 24 * time.Hour, false},
		{"1h:2h", "3600:7200", "not between 1h and 2h old", 30 * time.Minute, true},
		{"@1h:2h", "@3600:7200", "between 1h and 2h old", 90 * time.Minute, true},
		{"@~:30m", "@~:1800", "at most 30m old", 10 * time.Minute, true},
		{"~:30m", "~:1800", "older than 30m", 31 * time.Minute, true},
		{"1h:", "3600:", "younger than 1h", 59 * time.Minute, true},
		{"0:26h", "93600", "older than 1d2h", 27 * time.Hour, true},
	}
	for _, tt := range tests {
		var a AgeRange
		if err := a.UnmarshalText([]byte(tt.in)); err != nil {
			t.Errorf("AgeRange(%q): %v", tt.in, err)
			continue
		}
		if got := a.Perf(); got != tt.perf {
			t.Errorf("AgeRange(%q).Perf() = %q, want %q", tt.in, got, tt.perf)
		}
		if got := a.Describe(); got != tt.describe {
			t.Errorf("AgeRange(%q).Describe() = %q, want %q", tt.in, got, tt.describe)
		}
		if got := a.AlertAge(tt.age); got != tt.alert {
			t.Errorf("AgeRange(%q).AlertAge(%v) = %v, want %v", tt.in, tt.age, got, tt.alert)
		}
	}
	for _, bad := range []string{"", "26x", "2h:1h", "-1h", "~", ":1h"} {
		var a AgeRange
		if err := a.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("AgeRange(%q) accepted", bad)
		}
	}
}

func TestPercent(t *testing.T) {
	for in, want := range map[string]float64{"50%": 50, "50": 50, "0": 0, "100%": 100, "12.5%": 12.5} {
		var p Percent
		if err := p.UnmarshalText([]byte(in)); err != nil || float64(p) != want {
			t.Errorf("Percent(%q) = %v, %v; want %v", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "101%", "x", "NaN"} {
		var p Percent
		if err := p.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("Percent(%q) accepted", bad)
		}
	}
}

func TestHuman(t *testing.T) {
	durs := map[time.Duration]string{
		0:                               "0s",
		250 * time.Millisecond:          "250ms",
		45 * time.Second:                "45s",
		4*time.Minute + 10*time.Second:  "4m10s",
		3*time.Hour + 12*time.Minute:    "3h12m",
		3 * time.Hour:                   "3h",
		26 * time.Hour:                  "1d2h",
		10 * 24 * time.Hour:             "10d",
		-90 * time.Second:               "-1m30s",
		2*time.Hour + 59*time.Second:    "2h",
		59*time.Minute + 59*time.Second: "59m59s",
	}
	for d, want := range durs {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
