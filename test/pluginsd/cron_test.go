package pluginsd

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cronEntry is one job line of a cron.d file.
type cronEntry struct {
	fields  [5]string // minute hour day-of-month month day-of-week
	user    string
	command string
}

var (
	cronEnvRe  = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)
	cronNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// cronRanges bound each time field (day of week 7 is Sunday too).
var cronRanges = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}

// validCronField accepts *, numbers, ranges, lists and steps within bounds.
func validCronField(f string, lo, hi int) bool {
	for _, part := range strings.Split(f, ",") {
		base, step, hasStep := strings.Cut(part, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 {
				return false
			}
		}
		if base == "*" {
			continue
		}
		a, b, isRange := strings.Cut(base, "-")
		nums := []string{a}
		if isRange {
			nums = append(nums, b)
		}
		for _, s := range nums {
			n, err := strconv.Atoi(s)
			if err != nil || n < lo || n > hi {
				return false
			}
		}
	}
	return true
}

func parseCron(t *testing.T, data string) (entries []cronEntry, comments int) {
	t.Helper()
	for n, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			comments++
		case cronEnvRe.MatchString(line):
		default:
			f := strings.Fields(line)
			if len(f) < 7 {
				t.Errorf("line %d: %q: want 5 time fields, a user and a command", n+1, line)
				continue
			}
			var e cronEntry
			copy(e.fields[:], f[:5])
			for i, field := range e.fields {
				if !validCronField(field, cronRanges[i][0], cronRanges[i][1]) {
					t.Errorf("line %d: time field %d %q is not valid cron", n+1, i+1, field)
				}
			}
			e.user, e.command = f[5], strings.Join(f[6:], " ")
			entries = append(entries, e)
		}
	}
	return entries, comments
}

// TestCron parses cron/drym as cron.d reads it: a valid file name, a final
// newline, a comment, and exactly a daily backup and a weekly test restore,
// as root, through the installed runner.
func TestCron(t *testing.T) {
	path := filepath.Join(pluginsDir(t), "cron", "drym")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data := string(raw)
	// cron skips cron.d files whose names have dots or other characters, and
	// ignores a last line without a newline.
	if !cronNameRe.MatchString(filepath.Base(path)) {
		t.Errorf("%s: cron.d ignores this file name", filepath.Base(path))
	}
	if !strings.HasSuffix(data, "\n") {
		t.Error("no final newline: cron would ignore the last line")
	}
	entries, comments := parseCron(t, data)
	if comments == 0 {
		t.Error("no comment saying what the file is")
	}
	want := map[string]func(f [5]string) bool{
		// daily: a fixed minute and hour, every day.
		"backup": func(f [5]string) bool {
			return isNumber(f[0]) && isNumber(f[1]) && f[2] == "*" && f[3] == "*" && f[4] == "*"
		},
		// weekly: a fixed minute, hour and weekday.
		"test-restore": func(f [5]string) bool {
			return isNumber(f[0]) && isNumber(f[1]) && f[2] == "*" && f[3] == "*" && isNumber(f[4])
		},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d jobs, want %d: %+v", len(entries), len(want), entries)
	}
	for _, e := range entries {
		argv := strings.Fields(e.command)
		job := argv[len(argv)-1]
		schedule, ok := want[job]
		if !ok {
			t.Errorf("unexpected job %q", e.command)
			continue
		}
		delete(want, job)
		if !schedule(e.fields) {
			t.Errorf("%s: schedule %v is not the expected one", job, e.fields)
		}
		if e.user != "root" {
			t.Errorf("%s runs as %s, want root (it reads every file)", job, e.user)
		}
		if !strings.Contains(e.command, " /usr/sbin/backup_runner ") {
			t.Errorf("%s: %q does not run /usr/sbin/backup_runner by absolute path", job, e.command)
		}
	}
	for job := range want {
		t.Errorf("no %s job", job)
	}
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// TestCronFieldParser proves the field validator rejects what cron would.
func TestCronFieldParser(t *testing.T) {
	tests := []struct {
		field  string
		lo, hi int
		ok     bool
	}{
		{"*", 0, 59, true}, {"17", 0, 59, true}, {"1-5", 0, 7, true}, {"*/15", 0, 59, true},
		{"1,2,3", 0, 23, true}, {"60", 0, 59, false}, {"0", 1, 31, false}, {"x", 0, 59, false},
		{"*/0", 0, 59, false}, {"5-", 0, 59, false}, {"", 0, 59, false},
	}
	for _, tt := range tests {
		if got := validCronField(tt.field, tt.lo, tt.hi); got != tt.ok {
			t.Errorf("validCronField(%q, %d, %d) = %v, want %v", tt.field, tt.lo, tt.hi, got, tt.ok)
		}
	}
}
