package plugin

import (
	"strings"
	"testing"
)

func TestWorst(t *testing.T) {
	tests := []struct {
		in   []State
		want State
	}{
		{nil, OK},
		{[]State{OK, OK}, OK},
		{[]State{OK, Warning}, Warning},
		{[]State{Warning, Unknown}, Unknown},
		{[]State{Unknown, Critical, Warning}, Critical},
		{[]State{Critical, Unknown}, Critical},
	}
	for _, tt := range tests {
		if got := Worst(tt.in...); got != tt.want {
			t.Errorf("Worst(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRaise(t *testing.T) {
	var r Result
	r.Raise(OK, "ignored")
	r.Raise(Warning, "w1")
	r.Raise(Critical, "c1")
	r.Raise(Warning, "w2")
	r.Raise(Critical, "c2")
	r.Raise(Unknown, "u1")
	if r.State != Critical || r.Summary != "c1" {
		t.Fatalf("got %v %q, want CRITICAL c1", r.State, r.Summary)
	}
	want := []string{"WARNING: w1", "WARNING: w2", "CRITICAL: c2", "UNKNOWN: u1"}
	if strings.Join(r.Also, ",") != strings.Join(want, ",") {
		t.Errorf("Also = %q, want %q", r.Also, want)
	}
	if got := r.FirstLine(); got != "CRITICAL: c1 (+4 more below)" {
		t.Errorf("FirstLine = %q", got)
	}
}

func TestFormat(t *testing.T) {
	r := Result{State: Warning, Summary: "a | b\nc", Long: []string{"x", "y|z"},
		Perfdata: append([]nagiosPD{}, Count("files", 3), Bytes("size", 10))}
	got := Format(r)
	want := "WARNING: a / b c\n\nx\ny/z\n | 'files'=3;;;0; 'size'=10B;;;0; 'time'=0ms;;;;\n"
	if got != want {
		t.Errorf("Format =\n%q\nwant\n%q", got, want)
	}
	ok := Format(Result{State: OK, Summary: "fine", Perfdata: []nagiosPD{Seconds("age", 5, Range{}, Range{})}})
	if ok != "OK: fine | 'age'=5s;;;0; 'time'=0ms;;;;\n" {
		t.Errorf("Format OK = %q", ok)
	}
}

func TestRenderBadPerfdataIsReported(t *testing.T) {
	out := Format(Result{State: OK, Summary: "fine", Perfdata: []nagiosPD{{Label: "bad'label", Value: "x"}}})
	if !strings.Contains(out, "dropped (drym bug)") || strings.Contains(out, "bad'label'=") {
		t.Errorf("bad perfdata not reported: %q", out)
	}
}

func TestOutputLimit(t *testing.T) {
	r := Result{State: Critical, Summary: strings.Repeat("s", 5000)}
	for i := 0; i < 200; i++ {
		r.Long = append(r.Long, strings.Repeat("long line ", 80))
		r.Raise(Warning, strings.Repeat("w", 300))
	}
	for i := 0; i < 20; i++ {
		r.Perfdata = append(r.Perfdata, Count(strings.Repeat("p", 10)+string(rune('a'+i)), int64(i)))
	}
	out := Format(r)
	if len(out) > MaxOutput {
		t.Errorf("output is %d bytes, limit %d", len(out), MaxOutput)
	}
	first, _, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(first, "CRITICAL: sss") || !strings.Contains(first, "…") {
		t.Errorf("first line not truncated properly: %.80q", first)
	}
	if !strings.Contains(out, "more lines not shown") {
		t.Errorf("no truncation note")
	}
	if !strings.Contains(out, "'ppppppppppt'=19;;;0;") {
		t.Errorf("perfdata lost in truncation")
	}
}

func TestCleanKeepsUTF8(t *testing.T) {
	s := clean(strings.Repeat("é", 100), 51)
	if !strings.HasSuffix(s, "…") || strings.ContainsRune(s, '\uFFFD') {
		t.Errorf("clean split a rune: %q", s)
	}
	for _, r := range s {
		if r == '\uFFFD' {
			t.Fatal("invalid UTF-8")
		}
	}
}

// A long path on the first line is shortened in its middle so the fix at
// the end of the line survives.
func TestFirstLineKeepsTheFix(t *testing.T) {
	long := "/srv/" + strings.Repeat("deep/", 800) + "file.txt"
	r := Result{State: Warning, Summary: "cannot read " + long + ": permission denied: fix it and run backup_runner backup"}
	first := r.FirstLine()
	if !strings.HasSuffix(first, "run backup_runner backup") || len(first) > 300 {
		t.Fatalf("%d bytes: %s", len(first), first)
	}
	if !strings.Contains(first, "/srv/deep/") || !strings.Contains(first, "/file.txt: permission") {
		t.Fatalf("the path lost its start or its file name: %s", first)
	}
}

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"0123456789abcdef", 10, "012…cdef"},
		{"ééééééééééé", 10, "é…éé"},
	} {
		got := Shorten(tc.in, tc.max)
		if got != tc.want || len(got) > tc.max {
			t.Errorf("Shorten(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
