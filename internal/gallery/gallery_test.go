package gallery

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/drym-backup/drym/internal/testutil"
)

// TestGallery: docs/GALLERY.md is what the golden files say, byte for byte.
func TestGallery(t *testing.T) {
	root := testutil.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, File))
	if err != nil {
		t.Fatal(err)
	}
	section, err := Section(root)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Splice(readme, section)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(readme) {
		t.Fatalf("%s differs from cmd/check_*/testdata/*.golden: run `make gallery` and commit it\n%s", File, firstDiff(string(readme), string(want)))
	}
	// Every check with golden files is in it, in every state its tests cover.
	for _, check := range []string{"check_backup_age", "check_test_restore", "check_key_escrow"} {
		if _, err := os.Stat(filepath.Join(root, "cmd", check, "testdata")); err != nil {
			continue
		}
		if !strings.Contains(section, "### "+check+"\n") {
			t.Errorf("gallery lacks %s", check)
		}
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "first difference at " + File + " line " + strconv.Itoa(i+1) + ":\n  file:      " + gl + "\n  generated: " + wl
		}
	}
	return ""
}

// TestSection works on a made-up tree: ordering by state, the state read
// from the output, names from the files, trailing blanks dropped.
func TestSection(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"cmd/check_a/testdata/unknown_corrupt.golden":     "UNKNOWN: corrupt | 'time'=0ms;;;; \n",
		"cmd/check_a/testdata/ok.golden":                  "OK: fine \n \nlong line \n",
		"cmd/check_a/testdata/worst_of_several.golden":    "CRITICAL: two things \n",
		"cmd/check_a/testdata/warning_age.golden":         "WARNING: old \n",
		"cmd/check_a/testdata/ok_after.golden":            "OK: also fine \n",
		"cmd/check_b/testdata/critical_not_set_up.golden": "CRITICAL: not set up \n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Section(root)
	if err != nil {
		t.Fatal(err)
	}
	order := []string{
		"### check_a", "5 examples: 2 OK, 1 WARNING, 1 CRITICAL, 1 UNKNOWN",
		"**OK** — typical (exit 0)", "OK: fine\n\nlong line\n```", "**OK** — after (exit 0)",
		"**WARNING** — age (exit 1)", "**CRITICAL** — worst of several (exit 2)", "**UNKNOWN** — corrupt (exit 3)",
		"### check_b", "**CRITICAL** — not set up (exit 2)",
	}
	rest := got
	for _, s := range order {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("gallery lacks %q after the previous part:\n%s", s, got)
		}
		rest = rest[i+len(s):]
	}
	if strings.Contains(got, " \n") {
		t.Errorf("trailing blanks left:\n%q", got)
	}

	readme := []byte("intro\n" + Begin + "\nold\n" + End + "\nafter\n")
	out, err := Splice(readme, "NEW\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + Begin + "\nNEW\n" + End + "\nafter\n"; string(out) != want {
		t.Errorf("Splice = %q, want %q", out, want)
	}
	if _, err := Splice([]byte("no markers"), "x"); err == nil {
		t.Error("Splice without markers succeeded")
	}
}
