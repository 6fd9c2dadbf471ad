package status

import (
	"encoding/json"
	"strings"
	"testing"
)

// The verdict over every combination that matters: who may delete what,
// whether overwrites are refused, and what keeps old bytes.
func TestAppendOnlyVerdict(t *testing.T) {
	const (
		d, a, u = ProbeDenied, ProbeAllowed, ProbeUnknown
		r, i    = ProbeRefused, ProbeIgnored
		on, off = ProbeEnabled, ProbeOff
	)
	tests := []struct {
		name                                 string
		del, delVersion, over, vers, lock    string
		holds, canDelete, canOverwrite, kept bool
	}{
		{"put-only, If-None-Match honoured", d, d, r, off, off, true, false, false, false},
		{"put-only, bucket settings unreadable", d, d, r, u, u, true, false, false, false},
		{"may delete, nothing keeps versions", a, d, r, off, off, false, true, false, false},
		{"may delete versions", d, a, r, off, off, false, true, false, false},
		{"may delete, versioning keeps them", a, d, r, on, off, true, false, false, true},
		{"may delete and delete versions, versioning on", a, a, r, on, off, false, true, false, false},
		{"overwrite ignored, nothing keeps the bytes", d, d, i, off, off, false, false, true, false},
		{"overwrite ignored, versioning keeps them", d, d, i, on, off, true, false, false, true},
		{"overwrite ignored, versioning unknown", d, d, i, u, u, false, false, true, false},
		{"Object Lock keeps everything", a, a, i, on, on, true, false, false, true},
		{"delete unknown", u, d, r, off, off, false, false, false, false},
		{"version delete unknown", d, u, r, off, off, false, false, false, false},
		{"overwrite unknown", d, d, u, off, off, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ao := AppendOnly{Delete: tt.del, DeleteVersion: tt.delVersion, Overwrite: tt.over, Versioning: tt.vers, ObjectLock: tt.lock}
			if got := ao.Holds(); got != tt.holds {
				t.Errorf("Holds %v, want %v", got, tt.holds)
			}
			if got := ao.CanDelete(); got != tt.canDelete {
				t.Errorf("CanDelete %v, want %v", got, tt.canDelete)
			}
			if got := ao.CanOverwrite(); got != tt.canOverwrite {
				t.Errorf("CanOverwrite %v, want %v", got, tt.canOverwrite)
			}
			if got := ao.VersionsKept(); got != tt.kept {
				t.Errorf("VersionsKept %v, want %v", got, tt.kept)
			}
			if tt.holds && (tt.canDelete || tt.canOverwrite) {
				t.Error("a promise that holds cannot be broken")
			}
		})
	}
}

// append_only is additive: a backup.json without it parses (AppendOnly
// nil), and one with it keeps every field.
func TestAppendOnlyInBackupJSON(t *testing.T) {
	const old = `{"schema":1,"job":"backup","host":"web1","version":"1","pid":1,"state":"ok","started":"2026-03-10T08:00:00Z","finished":"2026-03-10T08:01:00Z","destination":"s3://b/p"}`
	var b Backup
	if err := Parse([]byte(old), &b); err != nil || b.AppendOnly != nil {
		t.Fatalf("old file: %v, append_only %+v", err, b.AppendOnly)
	}
	withAO := strings.Replace(old, `}`, `,"append_only":{"checked":"2026-03-10T08:01:00Z","delete":"denied","delete_version":"denied","overwrite":"refused","versioning":"off","object_lock":"unknown","held":true}}`, 1)
	if err := Parse([]byte(withAO), &b); err != nil {
		t.Fatal(err)
	}
	ao := b.AppendOnly
	if ao == nil || ao.Delete != ProbeDenied || ao.DeleteVersion != ProbeDenied || ao.Overwrite != ProbeRefused ||
		ao.Versioning != ProbeOff || ao.ObjectLock != ProbeUnknown || !ao.Held || ao.Checked.IsZero() {
		t.Fatalf("append_only %+v", ao)
	}
	out, err := json.Marshal(b)
	if err != nil || !strings.Contains(string(out), `"append_only":{"checked":"2026-03-10T08:01:00Z","delete":"denied","delete_version":"denied"`) {
		t.Fatalf("round trip: %v %s", err, out)
	}
}
