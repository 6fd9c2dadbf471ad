package deb

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drym-backup/drym/internal/testutil"
)

// TestDebVersion: git describe output becomes a valid Debian version that
// sorts like the releases it names (checked with dpkg's own comparison).
func TestDebVersion(t *testing.T) {
	script := filepath.Join(testutil.RepoRoot(t), "packaging", "deb-version.sh")
	tests := []struct{ describe, want string }{
		{"v1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0"},
		{"v1.2.0-3-gabc1234", "1.2.0+3.gabc1234"},
		{"v1.2.0-3-gabc1234-dirty", "1.2.0+3.gabc1234.dirty"},
		{"v1.2.0-rc1", "1.2.0~rc1"},
		{"abc1234", "0.0.0~gitabc1234"},
		{"6f8c175-dirty", "0.0.0~git6f8c175.dirty"}, // a hash that starts with a digit is no version
		{"dev", "0.0.0~gitdev"},
	}
	got := map[string]string{}
	for _, tt := range tests {
		out, err := exec.Command("sh", script, tt.describe).CombinedOutput()
		if err != nil {
			t.Fatalf("deb-version.sh %s: %v\n%s", tt.describe, err, out)
		}
		got[tt.describe] = strings.TrimSpace(string(out))
		if got[tt.describe] != tt.want {
			t.Errorf("deb-version.sh %s = %q, want %q", tt.describe, got[tt.describe], tt.want)
		}
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		return
	}
	// Each is older than the next, as dpkg sees it.
	order := []string{"abc1234", "v1.2.0-rc1", "v1.2.0", "v1.2.0-3-gabc1234", "v1.2.0-3-gabc1234-dirty"}
	for i := 1; i < len(order); i++ {
		a, b := got[order[i-1]], got[order[i]]
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg: %s is not older than %s", a, b)
		}
	}
}
