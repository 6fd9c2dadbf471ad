// Package docs holds the repository's documentation to what is true: the
// README's set-up matches what CI installs, its links lead somewhere, and
// nothing points at documents outside the repository.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/drym-backup/drym/internal/testutil"
)

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// aptPackages returns the packages of the first `apt-get install` command
// in text (continued over lines ending in a backslash).
func aptPackages(t *testing.T, text, where string) []string {
	t.Helper()
	i := strings.Index(text, "apt-get install")
	if i < 0 {
		t.Fatalf("%s has no apt-get install", where)
	}
	var words []string
	for _, line := range strings.Split(text[i+len("apt-get install"):], "\n") {
		cont := strings.HasSuffix(strings.TrimSpace(line), "\\")
		for _, w := range strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), "\\")) {
			if strings.HasPrefix(w, "-") || strings.HasPrefix(w, ">") {
				continue
			}
			words = append(words, w)
		}
		if !cont {
			break
		}
	}
	slices.Sort(words)
	return words
}

// The packages the README tells a user to install are those CI installs.
func TestReadmePackagesMatchCI(t *testing.T) {
	readme := aptPackages(t, read(t, "README.md"), "README.md")
	ci := aptPackages(t, read(t, ".ci/run"), ".ci/run")
	if !slices.Equal(readme, ci) {
		t.Errorf("README.md installs %v, .ci/run %v", readme, ci)
	}
}

var linkRe = regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)

// Every relative link in README.md and docs/ leads to a file or directory
// of the repository.
func TestLinksResolve(t *testing.T) {
	root := testutil.RepoRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "plugins.d", "README.md"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkRe.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				rel, _ := filepath.Rel(root, f)
				t.Errorf("%s links to %s, which does not exist", rel, target)
			}
		}
	}
}

// Code, tests and docs speak of drym alone: no pointer to a design
// document outside the repository, no issue or acceptance numbers.
func TestNoOutsideReferences(t *testing.T) {
	root := testutil.RepoRoot(t)
	bad := regexp.MustCompile(`DESIGN(\.md| §)|STYLE\.md|\b[Ii]ssue [0-9]+|\b[Aa]cceptance [0-9]+`)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if name == ".git" || name == "bin" || name == "dist" || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(name) {
		case ".go", ".md", ".sh", ".cfg", ".conf", ".json", ".tmpl", ".yaml", ".service", ".timer", "":
		default:
			return nil
		}
		if p == filepath.Join(root, "test", "docs", "docs_test.go") {
			return nil // this file names what it looks for
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if bad.MatchString(line) {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s:%d: %s", rel, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
