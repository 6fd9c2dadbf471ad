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
