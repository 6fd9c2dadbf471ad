package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/testutil"
)

// A destination whose server ignores If-None-Match, end to end. Neither
// test server ignores it, so the host reaches its server through a proxy
// that re-signs every request carrying the header as the same request
// without it (testutil.CountingProxy.IgnoreIfNoneMatch says why that, and
// not dropping the header or faking a 200, is an honest model). Everything
// else is as in TestDoctorShippedPolicies, all green there: the only
// difference the doctor, the backup and check_backup_age may see is the
// ignored condition.
//
// With versioning off nothing keeps the bytes an overwrite replaces: the
// doctor's "overwrite refused" line is FAIL and it exits 1 (REFERENCE.md:
// exit 1 when a line is FAIL), the backup records overwrite "ignored" and
// held false, and check_backup_age gives the WARNING of golden
// warning_append_only_overwrite. With versioning on (version deletes
// denied by the shipped policy) the old bytes stay: the line is WARN, the
// doctor exits 0, the promise holds and check_backup_age is OK.
func TestDoctorIgnoresIfNoneMatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts S3 servers (versitygw and SeaweedFS)")
	}
	testutil.ForEachS3(t, testDoctorIgnoresIfNoneMatch)
}

func testDoctorIgnoresIfNoneMatch(t *testing.T, srv *testutil.S3Server) {
	proxy := testutil.StartCountingProxy(t, srv.Endpoint)
	proxy.IgnoreIfNoneMatch(true)
	// Before the shipped policies, which let the put user write only under
	// drym/web1/ and keys/.
	proxyReplaces(t, srv, proxy)
	shipped(t, srv)
	lifecycle(t, srv) // where the server has rules: else SeaweedFS's doctor warns of none

	f := newFixture(t)
	f.env = append(srv.Env(), "HTTP_PROXY=", "http_proxy=", "NO_PROXY=", "no_proxy=", "AWS_CA_BUNDLE=")
	// init warns about the promise and succeeds all the same.
	f.init("s3://"+srv.Bucket+"/drym", "--endpoint", proxy.URL, "--path-style",
		"--profile", srv.PutProfile, "--read-profile", srv.ReadProfile,
		"--escrow", "s3://"+srv.Bucket+"/keys", "--escrow-profile", srv.PutProfile, "--escrow-read-profile", srv.PutProfile)

	out, errOut, code := f.run("doctor")
	t.Logf("doctor on %s behind a proxy that drops If-None-Match:\n%s", srv.Engine, out)
	if code != 1 || errOut != "" || strings.Count(out, "=> append-only: DOES NOT HOLD") != 2 {
		t.Fatalf("doctor: exit %d, stderr %q; want 1 and DOES NOT HOLD for the destination and the escrow", code, errOut)
	}
	for _, section := range []string{"destination", "escrow"} {
		res, detail := doctorRow(t, out, section, "overwrite refused")
		if res != "FAIL" || !strings.Contains(detail, "the server ignores If-None-Match and replaced the probe object, and nothing keeps the old bytes") {
			t.Errorf("%s overwrite refused: %s %s", section, res, detail)
		}
		// The upload cannot know whether it created the probe object or
		// replaced an earlier run's, so it must not claim to have created it.
		if res, detail := doctorRow(t, out, section, "upload"); res != "ok" || !strings.Contains(detail, "created or replaced it") {
			t.Errorf("%s upload: %s %s", section, res, detail)
		}
		if res, detail := doctorRow(t, out, section, "delete denied"); res != "ok" || !strings.Contains(detail, "answered 403") {
			t.Errorf("%s delete denied: %s %s", section, res, detail)
		}
	}
	// The overwrite lines are the only ones not green.
	if n := results(out); n["FAIL"] != 2 || n["WARN"] != 0 {
		t.Errorf("want 2 FAIL lines (overwrite refused) and no WARN, got %v", n)
	}

	out, errOut, code = f.run("backup")
	if code != 0 || !strings.Contains(errOut, "is not append-only for this host: the server ignores If-None-Match and nothing keeps old versions; see backup_runner doctor") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	ao := f.backupStatus().AppendOnly
	if ao == nil || ao.Held || ao.Overwrite != status.ProbeIgnored || ao.Delete != status.ProbeDenied ||
		ao.DeleteVersion != status.ProbeDenied || ao.Versioning != status.ProbeOff || ao.ObjectLock != status.ProbeOff || ao.Error != "" {
		t.Fatalf("backup.json append_only: %+v", ao)
	}
	when := ao.Checked.UTC().Format(time.RFC3339)
	out, code = f.check("check_backup_age")
	t.Logf("check_backup_age:\n%s", out)
	dest := "s3://" + srv.Bucket + "/drym"
	// The wording of golden warning_append_only_overwrite.
	want := "WARNING: " + dest + " ignores If-None-Match and neither versioning nor Object Lock protects the bucket: " +
		"a compromised host can overwrite the backups it knows the names of (probed " + when +
		"); enable bucket versioning or Object Lock, then run backup_runner doctor\n"
	if code != 1 || !strings.HasPrefix(out, want) ||
		!strings.Contains(out, "append-only: does not hold (probed "+when+": delete denied, version delete denied, overwrite ignored, versioning off, object lock off)") {
		t.Errorf("check_backup_age: exit %d, want 1 starting with\n%s", code, want)
	}

	// Versioning on: an overwrite keeps the old bytes as an older version,
	// which the put-only credentials cannot delete.
	srv.EnableVersioning(t)
	out, errOut, code = f.run("doctor")
	t.Logf("doctor on %s, versioned, behind the proxy:\n%s", srv.Engine, out)
	if code != 0 || errOut != "" || strings.Count(out, "=> append-only: holds") != 2 {
		t.Fatalf("doctor: exit %d, stderr %q; want 0 and the promise holding for both stores", code, errOut)
	}
	for _, section := range []string{"destination", "escrow"} {
		res, detail := doctorRow(t, out, section, "overwrite refused")
		if res != "WARN" || !strings.Contains(detail, "the server ignores If-None-Match and replaced the probe object; versioning keeps the old bytes") {
			t.Errorf("%s overwrite refused: %s %s", section, res, detail)
		}
	}
	if n := results(out); n["FAIL"] != 0 || n["WARN"] != 2 {
		t.Errorf("want the 2 overwrite lines WARN and nothing FAIL, got %v", n)
	}
	out, errOut, code = f.run("backup")
	if code != 0 || errOut != "" {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	if ao := f.backupStatus().AppendOnly; ao == nil || !ao.Held || ao.Overwrite != status.ProbeIgnored || ao.Versioning != status.ProbeEnabled {
		t.Fatalf("backup.json append_only: %+v", ao)
	}
	if out, code := f.check("check_backup_age"); code != 0 || !strings.Contains(out, "append-only: holds (probed ") ||
		!strings.Contains(out, "overwrite ignored, versioning enabled") {
		t.Errorf("check_backup_age: exit %d\n%s", code, out)
	}
}

// proxyReplaces shows that the proxy makes a server that ignores the
// condition rather than one that pretends: through it, a second
// conditional PUT with the put-only credentials succeeds and the object
// holds the second bytes; straight to the server the same PUT is refused.
func proxyReplaces(t *testing.T, srv *testutil.S3Server, proxy *testutil.CountingProxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := "drym/proxy-check"
	put := func(body string, via string) error {
		_, err := srv.PutOnly().PutObject(ctx, &s3.PutObjectInput{
			Bucket: &srv.Bucket, Key: &key, Body: strings.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))), IfNoneMatch: aws.String("*"),
		}, func(o *s3.Options) { o.BaseEndpoint = aws.String(via) })
		return err
	}
	for _, body := range []string{"first", "second"} {
		if err := put(body, proxy.URL); err != nil {
			t.Fatalf("%s: conditional PUT %q through the proxy: %v", srv.Engine, body, err)
		}
	}
	out, err := srv.Root().GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, []byte("second")) {
		t.Fatalf("%s: object holds %q (%v) after two PUTs through the proxy, want the second", srv.Engine, got, err)
	}
	var re *smithyhttp.ResponseError
	if err := put("third", srv.Endpoint); !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusPreconditionFailed {
		t.Fatalf("%s: conditional PUT straight to the server: %v, want 412", srv.Engine, err)
	}
	if _, err := srv.Root().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &srv.Bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
}
