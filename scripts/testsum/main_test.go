package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"x/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"x/a","Test":"TestOK","Output":"noise\n"}`,
		`{"Action":"pass","Package":"x/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"x/a","Test":"TestS3","Output":"=== RUN   TestS3\n"}`,
		`{"Action":"output","Package":"x/a","Test":"TestS3","Output":"    need.go:33: versitygw not installed\n"}`,
		`{"Action":"output","Package":"x/a","Test":"TestS3","Output":"--- SKIP: TestS3 (0.00s)\n"}`,
		`{"Action":"skip","Package":"x/a","Test":"TestS3"}`,
		`{"Action":"output","Package":"x/b","Test":"TestS3Too","Output":"--- SKIP: TestS3Too (0.00s)\n    need.go:33: versitygw not installed\n"}`,
		`{"Action":"skip","Package":"x/b","Test":"TestS3Too"}`,
		`{"Action":"pass","Package":"x/a","Elapsed":1.5}`,
		`{"Action":"output","Package":"x/b","Test":"TestBad","Output":"    b_test.go:9: wrong answer\n"}`,
		`{"Action":"fail","Package":"x/b","Test":"TestBad"}`,
		`{"Action":"fail","Package":"x/b","Elapsed":2}`,
	}, "\n")
	var out bytes.Buffer
	s := &summary{out: &out, output: map[key][]string{}, skipped: map[string][]string{}}
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	code := s.finish()
	got := out.String()
	for _, want := range []string{
		"ok  \tx/a\t1.500s\n",
		"wrong answer",
		"FAIL\tx/b\t2.000s\n",
		"skipped: 2 tests did not run: 2 × versitygw not installed (a.TestS3, b.TestS3Too)\n",
		"FAIL: 2 failures\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "noise") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
	if code != 1 {
		t.Errorf("exit %d with failures", code)
	}

	out.Reset()
	s = &summary{out: &out, output: map[key][]string{}, skipped: map[string][]string{}}
	if code := s.finish(); code != 1 || !strings.Contains(out.String(), "no test results") {
		t.Errorf("empty input: exit %d, %q", code, out.String())
	}
}

// TestSkippedLine pins the summary line: most skipped reason first, ties in
// the order of their text, tests in each reason sorted.
func TestSkippedLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		skipped map[string][]string
		want    string
	}{
		{"none", map[string][]string{}, "skipped: none\n"},
		{"one", map[string][]string{"not root": {"a.TestB", "a.TestA"}},
			"skipped: 2 tests did not run: 2 × not root (a.TestA, a.TestB)\n"},
		{"by count", map[string][]string{"zstd not installed": {"a.TestZ"}, "versitygw not installed": {"b.TestS3", "a.TestS3"}},
			"skipped: 3 tests did not run: 2 × versitygw not installed (a.TestS3, b.TestS3); 1 × zstd not installed (a.TestZ)\n"},
		{"ties by text", map[string][]string{"c": {"x.T3"}, "a": {"x.T1"}, "b": {"x.T2"}},
			"skipped: 3 tests did not run: 1 × a (x.T1); 1 × b (x.T2); 1 × c (x.T3)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			s := &summary{out: &out, output: map[key][]string{}, skipped: tc.skipped, packages: 1}
			if code := s.finish(); code != 0 {
				t.Errorf("exit %d without failures", code)
			}
			if got := out.String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
