package pluginsd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/testutil"
)

// unitFile is a parsed systemd unit: section → key → values (a key may
// repeat, e.g. After=).
type unitFile map[string]map[string][]string

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// knownKeys are the keys drym's units may use, per section: a misspelt key
// is only a warning to systemd (and the hardening it meant silently absent),
// so the parse test refuses anything not listed.
var knownKeys = map[string][]string{
	"Unit":    {"Description", "Documentation", "Wants", "After", "Requires", "ConditionPathExists"},
	"Install": {"WantedBy"},
	"Timer":   {"OnCalendar", "RandomizedDelaySec", "Persistent", "AccuracySec"},
	"Service": {
		"Type", "ExecStart", "TimeoutStartSec", "Nice", "IOSchedulingClass", "CPUSchedulingPolicy",
		"CapabilityBoundingSet", "AmbientCapabilities", "NoNewPrivileges", "ProtectSystem",
		"ReadWritePaths", "StateDirectory", "StateDirectoryMode", "ProtectHome", "PrivateTmp",
		"PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
		"ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "RestrictNamespaces",
		"RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
		"SystemCallArchitectures", "SystemCallFilter", "RestrictAddressFamilies", "UMask",
	},
}

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if _, ok := knownKeys[section]; !ok {
				t.Errorf("%s:%d: unknown section [%s]", path, n, section)
			}
			u[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s:%d: %q is not key=value in a section", path, n, line)
				continue
			}
			if !slices.Contains(knownKeys[section], key) {
				t.Errorf("%s:%d: unknown key %s in [%s]", path, n, key, section)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	return u
}

// hardening every drym service must carry.
var hardening = map[string]string{
	"ProtectSystem":     "strict",
	"ReadWritePaths":    "/var/lib/drym",
	"PrivateTmp":        "true",
	"NoNewPrivileges":   "true",
	"ProtectHome":       "read-only",
	"Nice":              "19",
	"IOSchedulingClass": "idle",
	"Type":              "oneshot",
	// Status files must stay readable by the nagios user.
	"UMask": "0022",
}

// TestSystemdUnits parses the units (known sections and keys, absolute
// ExecStart, the hardening), checks that the timers fire daily and weekly,
// and runs systemd-analyze verify and security on them when it is installed.
func TestSystemdUnits(t *testing.T) {
	dir := filepath.Join(pluginsDir(t), "systemd")
	units := []struct {
		service, command, capabilities string
		period                         time.Duration
	}{
		{"drym-backup", "backup", "CAP_DAC_READ_SEARCH", 24 * time.Hour},
		{"drym-test-restore", "test-restore", "", 7 * 24 * time.Hour},
	}
	for _, tt := range units {
		t.Run(tt.service, func(t *testing.T) {
			svc := parseUnit(t, filepath.Join(dir, tt.service+".service"))
			execStart := svc.get("Service", "ExecStart")
			argv := strings.Fields(execStart)
			if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
				t.Fatalf("ExecStart=%q: want an absolute path", execStart)
			}
			if argv[0] != "/usr/sbin/backup_runner" || argv[len(argv)-1] != tt.command {
				t.Errorf("ExecStart=%q: want /usr/sbin/backup_runner … %s", execStart, tt.command)
			}
			for k, want := range hardening {
				if got := svc.get("Service", k); got != want {
					t.Errorf("%s=%q, want %q", k, got, want)
				}
			}
			if got := svc.get("Service", "CapabilityBoundingSet"); got != tt.capabilities {
				t.Errorf("CapabilityBoundingSet=%q, want %q", got, tt.capabilities)
			}

			timer := parseUnit(t, filepath.Join(dir, tt.service+".timer"))
			if got := timer.get("Timer", "Persistent"); got != "true" {
				t.Errorf("timer Persistent=%q, want true (catch up a run missed while off)", got)
			}
			if timer.get("Timer", "RandomizedDelaySec") == "" {
				t.Error("timer has no RandomizedDelaySec: a fleet would hit the store at once")
			}
			if got := timer.get("Install", "WantedBy"); got != "timers.target" {
				t.Errorf("timer WantedBy=%q, want timers.target", got)
			}

			// The parse checks above run anywhere; the calendar needs
			// systemd-analyze (skipped locally, and listed; a failure in CI).
			t.Run("calendar", func(t *testing.T) {
				analyze := testutil.Need(t, "systemd-analyze")
				checkCalendar(t, analyze, timer.get("Timer", "OnCalendar"), tt.period)
			})
		})
	}
	t.Run("systemd-analyze", func(t *testing.T) {
		analyze := testutil.Need(t, "systemd-analyze")
		// verify wants ExecStart to exist: point it at a stand-in.
		tmp := t.TempDir()
		stand := filepath.Join(tmp, "backup_runner")
		writeFile(t, stand, []byte("#!/bin/sh\nexit 0\n"), 0o755)
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		var paths []string
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(tmp, filepath.Base(f))
			writeFile(t, p, []byte(strings.ReplaceAll(string(data), "/usr/sbin/backup_runner", stand)), 0o644)
			paths = append(paths, p)
		}
		r := run(t, time.Minute, exec.Command(analyze, append([]string{"verify"}, paths...)...))
		if r.code != 0 || strings.TrimSpace(r.stdout+r.stderr) != "" {
			t.Errorf("systemd-analyze verify exited %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		// Exposure 3.0 or less is what systemd rates "OK" (10 is none).
		for _, p := range paths {
			if !strings.HasSuffix(p, ".service") {
				continue
			}
			r := run(t, time.Minute, exec.Command(analyze, "security", "--offline=true", "--threshold=30", "--no-pager", p))
			if r.code != 0 {
				t.Errorf("systemd-analyze security %s: exposure above 3.0 (exit %d):\n%s%s", filepath.Base(p), r.code, r.stdout, r.stderr)
			}
			if m := regexp.MustCompile(`Overall exposure level for \S+: ([\d.]+)`).FindStringSubmatch(r.stdout); m != nil {
				t.Logf("%s: exposure %s", filepath.Base(p), m[1])
			}
		}
	})
}

// checkCalendar asks systemd-analyze when an OnCalendar= expression elapses
// and requires successive elapses to be exactly period apart.
func checkCalendar(t *testing.T, analyze, expr string, period time.Duration) {
	t.Helper()
	cmd := exec.Command(analyze, "calendar", "--iterations=4", expr)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	r := run(t, time.Minute, cmd)
	if r.code != 0 {
		t.Fatalf("systemd-analyze calendar %q exited %d:\n%s%s", expr, r.code, r.stdout, r.stderr)
	}
	var times []time.Time
	for _, m := range regexp.MustCompile(`(?m)(?:Next elapse|Iter\. #\d+): (.+)$`).FindAllStringSubmatch(r.stdout, -1) {
		ts, err := time.Parse("Mon 2006-01-02 15:04:05 MST", strings.TrimSpace(m[1]))
		if err != nil {
			t.Fatalf("systemd-analyze calendar: %v", err)
		}
		times = append(times, ts)
	}
	if len(times) != 4 {
		t.Fatalf("systemd-analyze calendar %q: want 4 elapses:\n%s", expr, r.stdout)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap != period {
			t.Errorf("OnCalendar=%s elapses %v apart, want %v", expr, gap, period)
		}
	}
}
