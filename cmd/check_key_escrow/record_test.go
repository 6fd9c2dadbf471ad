package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/testutil"
)

// writeRecord writes the public record <zip>.json beside a zip, as the
// runner ships it: readable by everyone, unlike the zip.
func writeRecord(t *testing.T, zipPath string) *escrow.Record {
	t.Helper()
	data, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	z, err := escrow.Inspect(strings.NewReader(string(data)), int64(len(data)), escrow.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := evidence.EscrowedKeyIDs(z)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	set := sha256.Sum256(z.Contents[escrow.MemberConfig])
	rec := &escrow.Record{Schema: escrow.RecordSchema, Host: z.Host, Zip: filepath.Base(zipPath), ZipSize: int64(len(data)),
		ZipSHA256: hex.EncodeToString(sum[:]), Fingerprint: z.Fingerprint, SettingsSHA256: hex.EncodeToString(set[:]),
		PublicKey: string(z.Contents[escrow.MemberPublic]), Shipped: time.Now().UTC(), Version: "test"}
	for _, id := range ids {
		rec.EncryptionKeyIDs = append(rec.EncryptionKeyIDs, evidence.FormatID(id))
	}
	out, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zipPath+escrow.RecordSuffix, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return rec
}

// An encryption subkey added to the host key (gpg --quick-add-key … encr,
// exported to the key files) makes new backups unreadable with the
// escrowed key, though its primary fingerprint is unchanged: CRITICAL
// until a new escrow is shipped.
func TestSubkeyAddedAfterEscrow(t *testing.T) {
	gpg := testutil.Need(t, "gpg")
	in := install(t, "--escrow", "dir://"+filepath.Join(t.TempDir(), "drop"))
	mustState(t, in.check(), 0, "OK")

	home := t.TempDir()
	gpgRun := func(args ...string) []byte {
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpgRun("--import", in.key)
	keys, err := crypt.ReadKeyFile(in.key)
	if err != nil {
		t.Fatal(err)
	}
	fpr := crypt.Fingerprint(keys[0])
	gpgRun("--quick-add-key", fpr, "cv25519", "encr")
	sec := gpgRun("--armor", "--export-secret-keys", fpr)
	pub := gpgRun("--armor", "--export", fpr)
	os.WriteFile(in.key, sec, 0o600)
	os.WriteFile(config.PublicKeyPath(in.key), pub, 0o644)
	now, err := crypt.ReadKeyFile(config.PublicKeyPath(in.key))
	if err != nil || len(evidence.EncryptionKeyIDs(now[0])) != 2 || crypt.Fingerprint(now[0]) != fpr {
		t.Fatalf("the host key should have two encryption subkeys and the same fingerprint: %v", err)
	}

	in.runner("backup") // encrypted to the new subkey
	r := in.check()
	mustState(t, r, 2, "CRITICAL: the escrowed key lacks the secret of encryption subkey")
	if !strings.Contains(r.First(), "run backup_runner escrow") {
		t.Fatalf("no fix: %s", r.First())
	}
	in.runner("escrow")
	mustState(t, in.check(), 0, "OK")
}

// The check as user nagios after a root init with umask 077: the zip in the
// directory drop is 0600 (it holds the bare secret key) and nagios must
// not read it. The public record beside it speaks for it; without one the
// check says what to do, never a hint about S3 credentials.
func TestZipUnreadableAsNagios(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Unable(t, "needs root to switch to user nagios")
	}
	u, err := user.Lookup("nagios")
	if err != nil {
		testutil.Unable(t, "no user nagios")
	}
	old := syscall.Umask(0o077)
	in := install(t, "--escrow", "dir://"+filepath.Join(t.TempDir(), "drop"))
	syscall.Umask(old)
	cfg, _ := config.Load(in.cfg)
	in.drop = strings.TrimPrefix(cfg.Escrow.URL, "dir://")
	zipPath, _ := in.zip()
	if fi, err := os.Stat(zipPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the zip should be 0600: %v %v", fi.Mode(), err)
	}
	// The directories are traversable by nagios, as /etc/drym, the drop
	// and /var/lib/drym are; the files keep their modes.
	for _, d := range []string{in.root, in.state, filepath.Dir(in.cfg), in.drop} {
		for ; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
	}
	os.Chmod(in.cfg, 0o644)
	os.Chmod(config.PublicKeyPath(in.key), 0o644)
	os.Chmod(filepath.Join(in.state, "escrow.json"), 0o644)
	bin := filepath.Join(in.root, "check_key_escrow")
	b, _ := os.ReadFile(testutil.Binary(t, "check_key_escrow"))
	os.WriteFile(bin, b, 0o755)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	asNagios := func() (string, int) {
		cmd := exec.Command(bin)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "DRYM_CONFIG=" + in.cfg}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}

	// The runner shipped the public record beside the zip: it says what
	// this check, given the zip, would compute itself.
	recPath := escrow.RecordName(zipPath)
	shipped, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatalf("the runner shipped no record beside the zip: %v", err)
	}
	rec, err := escrow.ParseRecord(shipped, filepath.Base(zipPath))
	if err != nil {
		t.Fatal(err)
	}
	want := writeRecord(t, zipPath)
	if rec.ZipSHA256 != want.ZipSHA256 || rec.SettingsSHA256 != want.SettingsSHA256 || strings.Join(rec.EncryptionKeyIDs, ",") != strings.Join(want.EncryptionKeyIDs, ",") {
		t.Fatalf("the runner's record %+v disagrees with the zip: %+v", rec, want)
	}
	os.WriteFile(recPath, shipped, 0o644)
	out, code := asNagios()
	first, _, _ := strings.Cut(out, "\n")
	if code != 0 || !strings.Contains(first, "is recorded as holding host key") || !strings.Contains(first, "not opened") {
		t.Fatalf("with the record: exit %d:\n%s", code, out)
	}

	// Without its record (a zip shipped by an older drym), the zip cannot
	// be judged as nagios: UNKNOWN, and the fix.
	os.Remove(recPath)
	out, code = asNagios()
	first, _, _ = strings.Cut(out, "\n")
	if code != 3 || !strings.Contains(first, "is not readable by this user (as intended for a bare secret key) and there is no public record") ||
		!strings.Contains(first, "run backup_runner escrow") || strings.Contains(first, "read_profile") {
		t.Fatalf("no record: exit %d:\n%s", code, out)
	}
	os.WriteFile(recPath, shipped, 0o644)
	// Root opens the zip itself.
	mustState(t, in.check(), 0, "OK: escrow zip "+filepath.Base(zipPath)+" (")

	// A zip replaced by one of another size: the record gives it away.
	os.WriteFile(zipPath, append(b[:0:0], make([]byte, 100)...), 0o600)
	out, code = asNagios()
	if first, _, _ = strings.Cut(out, "\n"); code != 2 || !strings.Contains(first, "is 100 bytes, its record says") {
		t.Fatalf("replaced zip: exit %d:\n%s", code, out)
	}
}
