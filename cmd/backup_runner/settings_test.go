package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Source paths written by hand with a trailing slash, "//" or "/./" mean the
// same directory: the backup's member names come out clean, so test-restore
// verifies and restore finds a path given as on the host. (They once gave
// backups that test-restore failed for ever, or restored as 0 files.)
func TestSourcePathsAsWritten(t *testing.T) {
	for _, form := range []string{"%s/", "%s//", "%s/./", "/.%s"} {
		t.Run(strings.ReplaceAll(form, "%s", "SRC"), func(t *testing.T) {
			r := newRig(t, "", "", nil)
			written := strings.Replace(form, "%s", r.src, 1)
			if form == "/.%s" {
				written = "/." + r.src
			}
			r.setSources(written)
			r.mustRun("backup")
			if out, errs, code := r.run("test-restore"); code != 0 {
				t.Fatalf("test-restore: exit %d\n%s%s", code, out, errs)
			}
			to := filepath.Join(r.dir, "to")
			out := r.mustRun("restore", "--to", to, r.src+"/etc/hosts")
			if !strings.Contains(out, "restored ") || strings.Contains(out, ": 0 files") {
				t.Errorf("restore of %s: %s", r.src+"/etc/hosts", out)
			}
			if _, err := os.Stat(filepath.Join(to, strings.TrimPrefix(r.src, "/"), "etc", "hosts")); err != nil {
				t.Errorf("restored file missing: %v", err)
			}
		})
	}
}

// Settings that would make a backup that cannot be restored as meant, or
// that leave out nothing while seeming to, are refused before anything is
// written: exit 2, naming the line.
func TestSettingsRefused(t *testing.T) {
	r := newRig(t, "", "", nil)
	good, err := os.ReadFile(r.cfg)
	must(t, err)
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"dotdot source", `sources = [`, `sources = ["/srv/../etc", `, `sources: "/srv/../etc" holds ".."`},
		{"nested sources", `sources = [`, `sources = ["` + r.src + `/sub", `, `is inside`},
		{"exclude with trailing slash", "state_dir", "exclude = [\"/var/cache/\"]\nstate_dir", `write "/var/cache"`},
		{"exclude relative path", "state_dir", "exclude = [\"var/cache\"]\nstate_dir", `a pattern with "/" is matched against absolute paths`},
		{"exclude double star", "state_dir", "exclude = [\"/home/**/cache\"]\nstate_dir", `"**" is not supported`},
		{"unknown table", "[destination]", "[destinaton]\nurl = \"/x\"\n[destination]", `unknown table [destinaton]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, os.WriteFile(r.cfg, []byte(strings.Replace(string(good), tc.old, tc.new, 1)), 0o644))
			defer os.WriteFile(r.cfg, good, 0o644)
			before, _ := os.ReadFile(filepath.Join(r.state, "backup.json"))
			out, errs, code := r.run("backup")
			if code != 2 || !strings.Contains(errs, tc.want) || !strings.Contains(errs, r.cfg+":") {
				t.Errorf("exit %d, want 2 naming %s:line and %q\n%s%s", code, r.cfg, tc.want, out, errs)
			}
			after, _ := os.ReadFile(filepath.Join(r.state, "backup.json"))
			if string(before) != string(after) {
				t.Error("backup.json changed")
			}
		})
	}
}
