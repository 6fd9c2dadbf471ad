// Command testsum is the end of `make test`: it reads `go test -json` on
// stdin and prints what `go test` would (a line per package, the output of
// every failing test), then one line naming every test that skipped and
// why. A run that skipped its integration tests (no versitygw installed,
// not root) must not look as green as one that ran them.
//
// It exits 1 when a test or a build failed, or when the input held no test
// results at all.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type key struct{ pkg, test string }

type summary struct {
	out      io.Writer
	output   map[key][]string // output of running tests, dropped when they pass
	skipped  map[string][]string
	failed   int
	packages int
}

func main() {
	s := &summary{out: os.Stdout, output: map[key][]string{}, skipped: map[string][]string{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(1)
	}
	os.Exit(s.finish())
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event: a build error printed by go itself.
			fmt.Fprintln(s.out, string(line))
			continue
		}
		s.event(e)
	}
	return sc.Err()
}

func (s *summary) event(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output", "build-output":
		s.output[k] = append(s.output[k], e.Output)
	case "build-fail":
		s.failed++
		fmt.Fprint(s.out, strings.Join(s.output[k], ""))
		delete(s.output, k)
	case "pass":
		if e.Test == "" {
			s.packages++
			fmt.Fprintf(s.out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(s.output, k)
	case "skip":
		if e.Test != "" {
			reason := skipReason(s.output[k])
			s.skipped[reason] = append(s.skipped[reason], e.Package[strings.LastIndex(e.Package, "/")+1:]+"."+e.Test)
		}
		delete(s.output, k)
	case "fail":
		s.failed++
		fmt.Fprint(s.out, strings.Join(s.output[k], ""))
		if e.Test == "" {
			s.packages++
			fmt.Fprintf(s.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(s.output, k)
	}
}

// skipReason is the message a test gave t.Skip: the last "file.go:NN: msg"
// line of its output (go test prints it just before "--- SKIP"), without
// the file:line prefix.
func skipReason(output []string) string {
	reason := "no reason given"
	for _, l := range strings.Split(strings.Join(output, ""), "\n") {
		if m := skipLine.FindStringSubmatch(l); m != nil {
			reason = m[1]
		}
	}
	return reason
}

var skipLine = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: (.+)$`)

func (s *summary) finish() int {
	if s.packages == 0 && s.failed == 0 {
		fmt.Fprintln(s.out, "testsum: no test results (did go test run?)")
		return 1
	}
	var n int
	var parts []string
	// Most skipped first; reasons skipped as often in the order of their
	// text, so that two runs print the same line.
	reasons := slices.SortedFunc(maps.Keys(s.skipped), func(a, b string) int {
		return cmp.Or(cmp.Compare(len(s.skipped[b]), len(s.skipped[a])), strings.Compare(a, b))
	})
	for _, r := range reasons {
		tests := s.skipped[r]
		n += len(tests)
		slices.Sort(tests)
		parts = append(parts, fmt.Sprintf("%d × %s (%s)", len(tests), r, strings.Join(tests, ", ")))
	}
	if n == 0 {
		fmt.Fprintln(s.out, "skipped: none")
	} else {
		fmt.Fprintf(s.out, "skipped: %d tests did not run: %s\n", n, strings.Join(parts, "; "))
	}
	if s.failed > 0 {
		fmt.Fprintf(s.out, "FAIL: %d failures\n", s.failed)
		return 1
	}
	return 0
}
