package main

import (
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/status"
)

// appendOnly is a probe record from the backup that finished 3h before now.
func appendOnly(del, delVersion, overwrite, versioning, lock string) *status.AppendOnly {
	a := &status.AppendOnly{
		Checked: now.Add(-3 * time.Hour), Delete: del, DeleteVersion: delVersion,
		Overwrite: overwrite, Versioning: versioning, ObjectLock: lock,
	}
	a.Held = a.Holds()
	return a
}

// TestEvaluateAppendOnly: what the last backup's probes found about the
// destination's append-only promise, judged by the check.
func TestEvaluateAppendOnly(t *testing.T) {
	const (
		denied, allowed, unknown = status.ProbeDenied, status.ProbeAllowed, status.ProbeUnknown
		refused, ignored         = status.ProbeRefused, status.ProbeIgnored
		on, off                  = status.ProbeEnabled, status.ProbeOff
	)
	tests := []struct {
		name  string // also the golden file
		ao    *status.AppendOnly
		state plugin.State
		first string // substring of the first line
		long  string // substring of the long output
	}{
		{"ok_append_only", appendOnly(denied, denied, refused, off, off), plugin.OK,
			"last backup 3h ago", "append-only: holds (probed 2026-03-10T09:00:00Z: delete denied, version delete denied, overwrite refused, versioning off, object lock off)"},
		{"ok_append_only_versions_kept", appendOnly(allowed, denied, ignored, on, off), plugin.OK,
			"last backup 3h ago", "a delete only hides a backup behind a delete marker"},
		{"critical_append_only_delete", appendOnly(allowed, allowed, refused, off, off), plugin.Critical,
			"this host can delete its backups in s3://backups/drym: its credentials may delete object versions for good", "append-only: does not hold"},
		{"critical_append_only_delete_unversioned", appendOnly(allowed, denied, refused, off, off), plugin.Critical,
			"its credentials may delete objects and nothing keeps old versions", "delete allowed"},
		{"warning_append_only_overwrite", appendOnly(denied, denied, ignored, off, off), plugin.Warning,
			"s3://backups/drym ignores If-None-Match and neither versioning nor Object Lock protects the bucket", "overwrite ignored"},
		{"warning_append_only_unverified", func() *status.AppendOnly {
			a := appendOnly(denied, denied, unknown, unknown, unknown)
			a.Error = "s3://backups/drym/web1/drym-append-only-probe: PutObject: timed out"
			return a
		}(), plugin.Warning, "cannot confirm that s3://backups/drym is append-only for this host (a probe could not tell: s3://backups/drym/web1/drym-append-only-probe: PutObject: timed out", "overwrite unknown"},
		{"ok_append_only_locked", appendOnly(allowed, allowed, ignored, on, on), plugin.OK, "last backup 3h ago", "append-only: holds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backup(3 * time.Hour)
			b.AppendOnly = tt.ao
			r := evaluate(ok(b), defaults(t), now)
			plugintest.Judge(t, tt.name, r, plugintest.Verdict{State: tt.state, First: tt.first, Long: tt.long})
		})
	}
	// No record (a dir:// destination, an older runner): nothing said.
	r := evaluate(ok(backup(3*time.Hour)), defaults(t), now)
	if out := plugin.Format(r); r.State != plugin.OK || strings.Contains(out, "append-only") {
		t.Errorf("without a record: %v\n%s", r.State, out)
	}
}
