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

	"github.com/drym-backup/drym/internal/evidence/evidencetest"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/testutil"
)

// TestMonitoringServerPolicy installs monitoring-server-read-only-policy.json
// for the read user on a real S3 server (versitygw), beside the hosts'
// put-only and escrow policies, and proves both sides of it: the storage-
// side checks and the fleet sweep work with it, and it can neither write,
// delete, nor read an escrow zip (which holds a bare secret key).
func TestMonitoringServerPolicy(t *testing.T) {
	srv := testutil.StartS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	policy := bucketPolicy(t, srv.Bucket, [][2]string{
		{"backup-put-only-policy.json", "drymput"},
		{"escrow-policy.json", "drymput"},
		{"monitoring-server-read-only-policy.json", "drymread"},
	})
	if _, err := srv.Root().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &srv.Bucket, Policy: &policy}); err != nil {
		t.Fatalf("put bucket policy: %v\n%s", err, policy)
	}

	// The fleet: web1 healthy, web2 stale, lab7 not in the inventory, db2
	// in the inventory and never backed up.
	keys := publicDir(t)
	sink := evidencetest.S3Sink(srv)
	now := time.Now().UTC()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	zips := map[string]string{}
	objects := map[string]string{}
	for _, h := range []struct {
		name string
		age  time.Duration
	}{{"web1", 3 * time.Hour}, {"web2", 4 * 24 * time.Hour}, {"lab7", time.Hour}} {
		host := evidencetest.NewHost(t, h.name, "drym", "keys", sink)
		host.PinKey(t, keys)
		zips[h.name] = host.Escrow(t, ago(30*24*time.Hour), ago(30*24*time.Hour))
		objects[h.name] = host.Backup(t, ago(h.age+5*time.Minute), ago(h.age), 3000).Object
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
	for _, tc := range []struct {
		check string
		argv  []string
		code  int
		first string
	}{
		{"check_backup_fleet", nil, 2, "CRITICAL: 2 CRITICAL (db2, web2), 1 WARNING (lab7), 1 OK of 4 hosts"},
		{"check_backup_age", []string{"--host", "web1"}, 0, "OK: web1: last backup 3h ago"},
		{"check_backup_age", []string{"--host", "web2"}, 2, "CRITICAL: no backup of web2 in the last 3d2h"},
		{"check_key_escrow", []string{"--host", "web1"}, 0, "is recorded as holding the keys (zip not opened) of the newest backup"},
	} {
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
