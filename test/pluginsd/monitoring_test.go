package pluginsd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/evidence/evidencetest"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/testutil"
)

// TestMonitoringServerPolicy installs monitoring-server-read-only-policy.json
// for the read user on each real S3 server (versitygw and SeaweedFS), beside the hosts'
// put-only and escrow policies, and proves both sides of it: the storage-
// side checks and the fleet sweep work with it, and it can neither write,
// delete, nor read an escrow zip (which holds a bare secret key).
func TestMonitoringServerPolicy(t *testing.T) {
	testutil.ForEachS3(t, testMonitoringServerPolicy)
}

func testMonitoringServerPolicy(t *testing.T, srv *testutil.S3Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	policy := bucketPolicy(t, srv.Bucket, [][2]string{
		{"backup-put-only-policy.json", srv.Principal(srv.PutProfile)},
		{"escrow-policy.json", srv.Principal(srv.PutProfile)},
		{"monitoring-server-read-only-policy.json", srv.Principal(srv.ReadProfile)},
	})
	if _, err := srv.Root().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &srv.Bucket, Policy: &policy}); err != nil {
		t.Fatalf("put bucket policy: %v\n%s", err, policy)
	}

	// The fleet: web1 healthy, web2 stale, lab7 not in the inventory, db2
	// in the inventory and never backed up. Where the server cannot store
	// an object as of the past (SeaweedFS), every object is stored now and
	// web2 is as healthy as web1: the policy is proven all the same.
	keys := publicDir(t)
	sink := evidencetest.S3Sink(srv)
	now := time.Now().UTC()
	aged := srv.CanBackdate()
	if !aged {
		t.Logf("%s cannot store objects as of the past: no stale host here (versitygw proves that one)", srv.Engine)
	}
	ago, named := clock(now, aged)
	zips := map[string]string{}
	objects := map[string]string{}
	for _, h := range []struct {
		name string
		age  time.Duration
	}{{"web1", 3 * time.Hour}, {"web2", 4 * 24 * time.Hour}, {"lab7", time.Hour}} {
		host := evidencetest.NewHost(t, h.name, "drym", "keys", sink)
		host.PinKey(t, keys)
		zips[h.name] = host.Escrow(t, ago(30*24*time.Hour), ago(30*24*time.Hour))
		objects[h.name] = host.Backup(t, named(h.age+5*time.Minute), ago(h.age), 3000).Object
	}

	read := srv.ReadOnly()
	for _, tc := range []struct {
		op, key string
		ok      bool
	}{
		{"list", "drym/", true},
		{"list", "drym/web2/", true},
		{"get", objects["web2"], true},
		{"get", zips["web1"] + ".json", true},
		{"list", "keys/drym-escrow-web1-", true},
		{"get", zips["web1"], false}, // the bare secret key
		{"list", "keys/", false},
		{"list", "", false},
		{"put", "drym/web1/20990101T000000Z-00000000000000000000000000000000.tar.zst.gpg", false},
		{"put", "keys/drym-escrow-web1-0000000000000000-20990101.zip", false},
		{"delete", objects["web1"], false},
		{"delete", zips["web1"], false},
	} {
		ops := map[string]s3op{"put": opPut(srv.Bucket), "get": opGet(srv.Bucket), "list": opList(srv.Bucket), "delete": opDelete(srv.Bucket)}
		err := ops[tc.op](ctx, read, tc.key)
		var api smithy.APIError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s %s: refused: %v", tc.op, tc.key, err)
		case !tc.ok && (err == nil || !errors.As(err, &api) || api.ErrorCode() != "AccessDenied"):
			t.Errorf("%s %s: want AccessDenied, got %v", tc.op, tc.key, err)
		}
	}

	dir := publicDir(t)
	inventory := filepath.Join(dir, "hosts")
	writeFile(t, inventory, []byte("web1\nweb2\ndb2\n"), 0o644)
	cfg := filepath.Join(dir, "monitoring.toml")
	writeFile(t, cfg, fmt.Appendf(nil, "keys = %q\ninventory = %q\n[destination]\nurl = \"s3://%s/drym\"\nendpoint = %q\npath_style = true\nread_profile = %q\n[escrow]\nurl = \"s3://%s/keys\"\nendpoint = %q\npath_style = true\nread_profile = %q\n",
		keys, inventory, srv.Bucket, srv.Endpoint, srv.ReadProfile, srv.Bucket, srv.Endpoint, srv.ReadProfile), 0o644)
	env := append(srv.Env(), "AWS_CA_BUNDLE=", "DRYM_MONITORING_CONFIG="+cfg)
	fleet := "CRITICAL: 2 CRITICAL (db2, web2), 1 WARNING (lab7), 1 OK of 4 hosts"
	if !aged {
		fleet = "CRITICAL: 1 CRITICAL (db2), 1 WARNING (lab7), 2 OK of 4 hosts"
	}
	for _, tc := range []struct {
		check string
		argv  []string
		code  int
		first string
		aged  bool // needs an object stored in the past
	}{
		{"check_backup_fleet", nil, 2, fleet, false},
		{"check_backup_age", []string{"--host", "web1"}, 0, "OK: web1: last backup ", false},
		{"check_backup_age", []string{"--host", "web2"}, 2, "CRITICAL: no backup of web2 in the last 3d2h", true},
		{"check_key_escrow", []string{"--host", "web1"}, 0, "is recorded as holding the keys (zip not opened) of the newest backup", false},
	} {
		if tc.aged && !aged {
			continue
		}
		r := plugintest.Run(t, tc.check, env, tc.argv...)
		if r.Code != tc.code || !strings.HasPrefix(r.First(), tc.first) && !strings.Contains(r.First(), tc.first) {
			t.Errorf("%s %v: exit %d, want %d with %q:\n%s%s", tc.check, tc.argv, r.Code, tc.code, tc.first, r.Stdout, r.Stderr)
		}
	}
	// The monitoring server's credentials left everything as it was.
	if got := len(srv.Keys(t, "")); got != 3*3+3*2 {
		t.Errorf("%d objects in the bucket after the checks, want %d", got, 3*3+3*2)
	}
}

// TestMonitoringScenarios judges, through the real checks and under the
// shipped monitoring policy on each S3 server, every way a host's evidence can
// be wrong: each must end in the state the docs promise.
func TestMonitoringScenarios(t *testing.T) {
	testutil.ForEachS3(t, testMonitoringScenarios)
}

func testMonitoringScenarios(t *testing.T, srv *testutil.S3Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	policy := bucketPolicy(t, srv.Bucket, [][2]string{{"monitoring-server-read-only-policy.json", srv.Principal(srv.ReadProfile)}})
	if _, err := srv.Root().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &srv.Bucket, Policy: &policy}); err != nil {
		t.Fatalf("put bucket policy: %v", err)
	}
	keys := publicDir(t)
	sink := evidencetest.S3Sink(srv)
	now := time.Now().UTC()
	// Where the server cannot store an object as of the past (SeaweedFS),
	// every object is stored now, and the scenarios about age (stale,
	// planted beside an old backup) are judged against seconds, not days.
	aged := srv.CanBackdate()
	if !aged {
		t.Logf("%s cannot store objects as of the past: the age scenarios (stale, planted) are judged against thresholds of seconds instead of days", srv.Engine)
	}
	ago, named := clock(now, aged)
	day := 24 * time.Hour
	host := func(name string) *evidencetest.Host {
		h := evidencetest.NewHost(t, name, "drym", "keys", sink)
		h.PinKey(t, keys)
		h.Escrow(t, ago(30*day), ago(30*day))
		return h
	}
	backup := func(h *evidencetest.Host, age time.Duration) evidencetest.Backup {
		return h.Backup(t, named(age+5*time.Minute), ago(age), 3000)
	}

	backup(host("healthy"), 3*time.Hour)
	backup(host("stale"), 4*day)
	host("never")
	empty := host("empty")
	backup(empty, 20*time.Hour)
	empty.Put(t, named(time.Hour+5*time.Minute), ago(time.Hour), nil, empty.Key)
	nost := host("nostatement")
	sink.Delete(t, backup(nost, time.Hour).Statement)
	size := host("size")
	b := backup(size, time.Hour)
	sink.Put(t, b.Object, b.Data[:200], ago(time.Hour))
	planted := host("planted")
	backup(planted, 60*time.Hour)
	for i := range 5 {
		planted.Put(t, now.Add(time.Duration(100+i)*day), ago(time.Hour), []byte("planted"), nil)
	}
	other, _ := crypt.Generate("intruder")
	wrong := host("wrongkey")
	wrong.Backup(t, named(time.Hour+5*time.Minute), ago(time.Hour), 3000, other)
	rotated := host("rotated")
	rotated.Key, _ = crypt.Generate("rotated")
	rotated.PinKey(t, keys)
	backup(rotated, time.Hour)
	sub := host("subkey")
	sub.AddSubkey(t)
	sub.PinKey(t, keys)
	backup(sub, time.Hour)

	dir := publicDir(t)
	cfg := filepath.Join(dir, "monitoring.toml")
	writeFile(t, cfg, fmt.Appendf(nil, "keys = %q\n[destination]\nurl = \"s3://%s/drym\"\nendpoint = %q\npath_style = true\nread_profile = %q\n[escrow]\nurl = \"s3://%s/keys\"\nendpoint = %q\npath_style = true\nread_profile = %q\n",
		keys, srv.Bucket, srv.Endpoint, srv.ReadProfile, srv.Bucket, srv.Endpoint, srv.ReadProfile), 0o644)
	env := append(srv.Env(), "AWS_CA_BUNDLE=", "DRYM_MONITORING_CONFIG="+cfg)
	settled := time.Now().Add(3 * time.Second) // every object is older than 2s
	for _, tc := range []struct {
		check, host string
		code        int
		first       string
	}{
		{"check_backup_age", "healthy", 0, "OK: healthy: last backup "},
		{"check_backup_age", "stale", 2, "CRITICAL: no backup of stale in the last 3d2h: the newest found"},
		{"check_backup_age", "never", 2, "CRITICAL: never backed up"},
		{"check_backup_age", "empty", 2, "is empty (0 bytes)"},
		{"check_backup_age", "nostatement", 2, ".sha256 is missing from"},
		{"check_backup_age", "size", 2, "the statement does not match the object"},
		{"check_backup_age", "planted", 2, "CRITICAL: the last backup of planted was stored 2d12h ago, older than 50h (-c)"},
		{"check_backup_age", "wrongkey", 2, "is encrypted to no key in wrongkey's escrow"},
		{"check_backup_age", "rotated", 2, "is encrypted to no key in rotated's escrow"},
		{"check_key_escrow", "healthy", 0, "is recorded as holding the keys (zip not opened) of the newest backup"},
		{"check_key_escrow", "rotated", 2, "CRITICAL: the escrowed key cannot open the newest backup rotated/"},
		{"check_key_escrow", "subkey", 2, "CRITICAL: the escrowed key cannot open the newest backup subkey/"},
	} {
		argv := []string{"--host", tc.host, "-t", "20"}
		if !aged && (tc.host == "stale" || tc.host == "planted") {
			// Stored seconds ago, not days: the nearest equivalent is
			// a critical age of seconds, with the objects older than it.
			time.Sleep(time.Until(settled))
			argv = append(argv, "-w", "1s", "-c", "2s")
			tc.first = "CRITICAL: the last backup of " + tc.host + " was stored "
		}
		r := plugintest.Run(t, tc.check, env, argv...)
		if !aged && (tc.host == "stale" || tc.host == "planted") && !strings.Contains(r.First(), "older than 2s (-c)") {
			t.Errorf("%s --host %s with -c 2s: %s", tc.check, tc.host, r.First())
		}
		if r.Code != tc.code || !strings.Contains(r.First(), tc.first) {
			t.Errorf("%s --host %s: exit %d, want %d with %q:\n%s%s", tc.check, tc.host, r.Code, tc.code, tc.first, r.Stdout, r.Stderr)
		}
		if tc.host == "planted" && !strings.Contains(r.Stdout, "named in the future") {
			t.Errorf("the planted future objects are not reported:\n%s", r.Stdout)
		}
	}
}

// clock gives the times a scenario stores its objects at (ago) and names
// them by (named). Where the server cannot store an object as of the past,
// every object is stored now but still named in the same order, a
// thousandth of each age back: two objects named in the same second would
// make "newest" a coin toss between their random suffixes.
func clock(now time.Time, aged bool) (ago, named func(time.Duration) time.Time) {
	if aged {
		back := func(d time.Duration) time.Time { return now.Add(-d) }
		return back, back
	}
	return func(time.Duration) time.Time { return now },
		func(d time.Duration) time.Time { return now.Add(-d / 1000) }
}
