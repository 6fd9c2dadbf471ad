package plugintest

import "testing"

func TestNamesFix(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"CRITICAL: no backup yet: run backup_runner backup", true},
		{"UNKNOWN: clock ahead; fix the clock (timedatectl status)", true},
		{"UNKNOWN: bad command line: x (see check_backup_age --help)", true},
		{"UNKNOWN: bad command line: x (see --help)", true},
		{"UNKNOWN: --remote-verify: reading failed: unexpected EOF", false},
		{"UNKNOWN: reading failed (check the destination, or raise -t for a large backup)", true},
		{"CRITICAL: something is wrong", false},
		{"WARNING: --shrink-warning 50% exceeded", false},
		{"UNKNOWN: needs the settings file: pass --config or set DRYM_CONFIG", true},
		{"UNKNOWN: pass --verbose to see more", false},
		{"UNKNOWN: pass --", false},
	} {
		if got := NamesFix(tc.line); got != tc.want {
			t.Errorf("NamesFix(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}
