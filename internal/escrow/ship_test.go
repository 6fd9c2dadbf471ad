package escrow

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/drym-backup/drym/internal/store"
)

// A setting changed and changed back the same day: the newest zip (-2)
// holds the changed settings, so the check judges the escrow stale until a
// zip with the current settings is the newest. Shipping must make it so
// (-3), never answer "already shipped" because the older -1 matches.
func TestShipRevertSameDayShipsNewest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := store.NewDir(dir)
	k := key(t, "web1")
	orig := build(t, "web1", k, nil)
	changedCfg := testConfig("web1")
	changedCfg.Exclude = []string{"*.tmp"}
	changed, err := Build(Params{Config: changedCfg, Key: k, Now: day})
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		z        *Zip
		wantName string
		already  bool
	}{
		{orig, orig.Name(1), false},
		{changed, orig.Name(2), false},
		{orig, orig.Name(3), false}, // reverted: the newest must be these settings
		{orig, orig.Name(3), true},  // and now it is
	} {
		got, err := Ship(ctx, s, s, step.z)
		if err != nil || got.Name != step.wantName || got.Already != step.already {
			t.Fatalf("step %d: %+v, %v; want %s, already %v", i+1, got, err, step.wantName, step.already)
		}
		latest, err := Latest(ctx, s, "web1")
		if err != nil || latest.Name != step.wantName {
			t.Fatalf("step %d: Latest = %+v, %v", i+1, latest, err)
		}
	}
}

// Every shipped zip has its public record beside it; in a drop directory
// the zip is private (it holds the bare secret key) and the record is not.
func TestShipWritesPublicRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := store.NewDir(dir)
	k := key(t, "web1")
	z := build(t, "web1", k, nil)
	got, err := Ship(ctx, s, s, z)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, RecordName(got.Name)))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ParseRecord(data, got.Name)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Host != "web1" || rec.ZipSHA256 != z.SHA256 || rec.ZipSize != int64(len(z.Data)) || rec.Fingerprint != z.Fingerprint ||
		len(rec.EncryptionKeyIDs) != 1 || rec.SecretEncrypted || rec.PublicKey == "" || rec.SettingsSHA256 == "" {
		t.Fatalf("record %+v", rec)
	}
	if want := EncryptionKeyIDs(k, true); rec.EncryptionKeyIDs[0] != want[0] {
		t.Errorf("record key IDs %v, want %v", rec.EncryptionKeyIDs, want)
	}
	for name, want := range map[string]os.FileMode{got.Name: 0o600, RecordName(got.Name): 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", name, fi.Mode(), err, want)
		}
	}
	// A zip shipped before records existed gets its record on the next run.
	if err := os.Remove(filepath.Join(dir, RecordName(got.Name))); err != nil {
		t.Fatal(err)
	}
	again, err := Ship(ctx, s, s, build(t, "web1", k, nil))
	if err != nil || !again.Already {
		t.Fatalf("again: %+v, %v", again, err)
	}
	if _, err := os.Stat(filepath.Join(dir, RecordName(got.Name))); err != nil {
		t.Errorf("record not written for the zip already there: %v", err)
	}
	// Records are not zips: Latest never picks one.
	latest, err := Latest(ctx, s, "web1")
	if err != nil || latest.Name != got.Name {
		t.Errorf("Latest = %+v, %v", latest, err)
	}
}
