package faults

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

// partsLanded reports whether the server has stored upload data (a
// multipart part) for the backup.
func partsLanded(s *testutil.S3Server) bool { return s.PartsLanded("drym/") }

// backupKeys leaves out the append-only probe object (init's doctor writes
// it): it is not a backup.
func backupKeys(keys []string) []string {
	return slices.DeleteFunc(keys, func(k string) bool { return path.Base(k) == store.ProbeName })
}

// TestS3KilledMidUpload: the S3 server dies (SIGKILL) while parts are being
// uploaded and comes back later on the same data. The runner gives up within
// 2 minutes with a non-zero exit, backup.json is failed with the cause, the
// check is CRITICAL, and once the server is back no backup object is visible
// in the bucket: a half upload never becomes an object.
func TestS3KilledMidUpload(t *testing.T) {
	t.Parallel()
	testutil.ForEachS3(t, testS3KilledMidUpload)
}

func testS3KilledMidUpload(t *testing.T, s *testutil.S3Server) {
	e := newEnv(t, s3Dest(s), s.Env(), bigSource(t))

	p := e.start("backup")
	waitFor(t, time.Minute, "the first parts to land in "+s.Engine, func() bool { return partsLanded(s) || p.exited() })
	if p.exited() {
		t.Fatalf("backup ended before the server was killed: %+v", p.wait(0))
	}
	s.Kill()
	r := p.wait(2 * time.Minute)
	if r.code != 1 {
		t.Fatalf("want exit 1, got %d\n%s", r.code, r.stderr)
	}
	oneLine(t, "stderr", r.stderr)
	b := e.backupStatus()
	if b.State != status.Failed || b.Error == "" || b.Object != "" {
		t.Fatalf("backup.json: state %s error %q object %q; want failed with the cause, no object", b.State, b.Error, b.Object)
	}
	// The cause, not the cancellation it set off in the pipeline.
	if !strings.Contains(b.Error, "s3://") || strings.Contains(b.Error, "context canceled") || strings.HasPrefix(b.Error, "archiving") {
		t.Errorf("the error does not name the destination and the cause: %q", b.Error)
	}
	t.Logf("runner gave up after %s: %s", r.took.Round(time.Millisecond), b.Error)
	wantState(t, check(t, e.environ, "check_backup_age", "--config", e.cfgPath), "CRITICAL")

	s.Start()
	if keys := backupKeys(s.Keys(t, "drym/")); len(keys) != 0 {
		t.Fatalf("objects visible after the restart: %v", keys)
	}
}

// TestS3Interrupted: SIGTERM during a multipart upload to S3 aborts it; no
// object becomes visible.
func TestS3Interrupted(t *testing.T) {
	t.Parallel()
	testutil.ForEachS3(t, testS3Interrupted)
}

func testS3Interrupted(t *testing.T, s *testutil.S3Server) {
	e := newEnv(t, s3Dest(s), s.Env(), bigSource(t))
	p := e.start("backup")
	waitFor(t, time.Minute, "the first parts to land in "+s.Engine, func() bool { return partsLanded(s) || p.exited() })
	if p.exited() {
		t.Fatalf("backup ended before the signal: %+v", p.wait(0))
	}
	p.signal(syscall.SIGTERM)
	assertInterrupted(t, e, p.wait(time.Minute))
	if keys := backupKeys(s.Keys(t, "drym/")); len(keys) != 0 {
		t.Fatalf("objects visible after SIGTERM: %v", keys)
	}
}

// TestS3Unusable: wrong credentials, an endpoint nobody listens on, and a
// host name that does not resolve. Each ends within 60 s with exit 1, one
// line on stderr that says what is wrong, and backup.json failed with it.
func TestS3Unusable(t *testing.T) {
	t.Parallel()
	testutil.ForEachS3(t, testS3Unusable)
}

func testS3Unusable(t *testing.T, s *testutil.S3Server) {
	badCreds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(badCreds, []byte("[wrong]\naws_access_key_id = drymput\naws_secret_access_key = not-the-secret\n\n[unknown]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badEnv := append(cleanEnv(), "AWS_SHARED_CREDENTIALS_FILE="+badCreds)
	closed := "http://127.0.0.1:" + testutil.FreePort(t)
	// The group returns when its parallel cases have ended.
	t.Run("group", func(t *testing.T) { unusableCases(t, s, badEnv, closed) })
	if keys := backupKeys(s.Keys(t, "drym/")); len(keys) != 0 {
		t.Fatalf("objects stored with bad settings: %v", keys)
	}
}

func unusableCases(t *testing.T, s *testutil.S3Server, badEnv []string, closed string) {
	for _, tc := range []struct {
		name     string
		endpoint string
		profile  string
		environ  []string
		want     []string // any of these in the error
	}{
		{"wrong secret", s.Endpoint, "wrong", badEnv, []string{"denied", "Signature", "hung up mid-request"}},
		{"unknown key", s.Endpoint, "unknown", badEnv, []string{"denied", "InvalidAccessKeyId", "hung up mid-request"}},
		{"nothing listening", closed, s.PutProfile, s.Env(), []string{"cannot reach", "refused"}},
		{"DNS failure", "http://nonexistent.invalid:7070", s.PutProfile, s.Env(), []string{"resolve", "no such host", "nonexistent.invalid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := config.Remote{URL: "s3://" + s.Bucket + "/drym", Endpoint: tc.endpoint, PathStyle: true, Region: "us-east-1", Profile: tc.profile}
			e := newEnv(t, dest, tc.environ, smallSource(t))
			r := e.run("backup")
			if r.code != 1 || r.took > 60*time.Second {
				t.Fatalf("exit %d after %s; want 1 within 60s\n%s", r.code, r.took, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
			if !containsAny(r.stderr, tc.want) {
				t.Fatalf("stderr does not say what is wrong (want one of %q): %s", tc.want, r.stderr)
			}
			b := e.backupStatus()
			if b.State != status.Failed || !containsAny(b.Error, tc.want) {
				t.Fatalf("backup.json: state %s error %q", b.State, b.Error)
			}
			t.Logf("%s after %s: %s", tc.name, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
