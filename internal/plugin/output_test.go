package plugin

import (
	"bytes"
	"strings"
	"testing"
)

func TestTrimmedLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"nagios EOL", []string{"OK: fine \n \nlong line \n | 'a'=1;;;;\n"}, "OK: fine\n\nlong line\n | 'a'=1;;;;\n"},
		{"inner blanks kept", []string{"a  b\tc \n"}, "a  b\tc\n"},
		{"blanks split across writes", []string{"a ", " \n", "b ", "c"}, "a\nb c"},
		{"trailing blanks at the end dropped", []string{"x  \t"}, "x"},
		{"empty", []string{""}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := TrimmedLines(&buf)
			for _, s := range tc.writes {
				n, err := w.Write([]byte(s))
				if err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if buf.String() != tc.want {
				t.Errorf("got %q, want %q", buf.String(), tc.want)
			}
		})
	}
}

// Format is what the golden files and the gallery hold: no line of it may
// end in a blank.
func TestFormatHasNoTrailingBlanks(t *testing.T) {
	out := Format(Result{State: Warning, Summary: "w", Also: []string{"CRITICAL: x"}, Long: []string{"a", "b"},
		Perfdata: nil})
	for i, l := range strings.Split(out, "\n") {
		if strings.TrimRight(l, " \t") != l {
			t.Errorf("line %d ends in a blank: %q", i+1, l)
		}
	}
	if !strings.Contains(out, "\n\n") {
		t.Errorf("no empty separator line between the first line and the long output:\n%q", out)
	}
}
