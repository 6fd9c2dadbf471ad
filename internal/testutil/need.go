// Package testutil starts the real servers and tools drym's tests use (S3 on
// 127.0.0.1, gpg, zstd, tar) and builds fixtures.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// InCI reports whether the tests run in CI, where a missing tool is a failure,
// never a skip: an integration test that silently skips proves nothing.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need returns the path of a command the test needs. Locally a missing command
// skips the test; in CI it fails it.
func Need(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range toolDirs() {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if InCI() {
		t.Fatalf("%s is required in CI but not installed (.ci/run installs it)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// toolDirs are where Go-installed test tools (versitygw) are cached, outside
// the repo.
func toolDirs() []string {
	var dirs []string
	if d := os.Getenv("DRYM_TOOLS"); d != "" {
		dirs = append(dirs, d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "drym-tools", "bin"))
	}
	return append(dirs, "/root/.cache/drym-tools/bin")
}

// RepoRoot returns the repository root (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary returns the path of a drym binary built by `make build` (DRYM_BIN),
// or builds it once per test process into a world-readable temp dir (tests
// run binaries as user nagios and nobody too).
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("DRYM_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "drym-bin-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
		binDir = d
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

// RemoveBinaries deletes what Binary built (call it from TestMain).
func RemoveBinaries() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
		binDir, built = "", map[string]string{}
	}
}

var (
	binMu  sync.Mutex
	binDir string
	built  = map[string]string{}
)

// Unable is t.Skipf for a test this machine cannot run (not root, no user
// nagios, no tmpfs), and t.Fatalf in CI: CI provides all of them, and a test
// that skips there has proved nothing.
func Unable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("cannot run in CI: "+format, args...)
	}
	t.Skipf(format, args...)
}
