package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

// doctorRow finds the table line of check in a doctor's output and returns
// its result (ok, WARN, FAIL, info) and detail; section picks the table
// ("destination" or "escrow").
func doctorRow(t *testing.T, out, section, check string) (result, detail string) {
	t.Helper()
	in := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, section+" ") {
			in = true
			continue
		}
		if in && line != "" && !strings.HasPrefix(line, " ") {
			break
		}
		f := strings.Fields(line)
		if !in || len(f) < 2 {
			continue
		}
		if rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), f[0])); strings.HasPrefix(rest, check+"  ") {
			return f[0], strings.TrimSpace(strings.TrimPrefix(rest, check))
		}
	}
	t.Fatalf("no %q line in the %s table:\n%s", check, section, out)
	return "", ""
}

// rows returns the results of all table lines of a doctor's output.
var rowRe = regexp.MustCompile(`(?m)^  (ok|WARN|FAIL|info)  `)

func results(out string) map[string]int {
	n := map[string]int{}
	for _, m := range rowRe.FindAllStringSubmatch(out, -1) {
		n[m[1]]++
	}
	return n
}

// s3Fixture is a fixture whose destination (prefix drym) and escrow (prefix
// keys) are in srv's bucket, uploading as profile up and reading as read.
func s3Fixture(t *testing.T, srv *testutil.S3Server, up, read string, extra ...string) *kit {
	t.Helper()
	f := newFixture(t)
	f.env = append(srv.Env(), "HTTP_PROXY=", "http_proxy=", "NO_PROXY=", "no_proxy=")
	f.init("s3://"+srv.Bucket+"/drym", append([]string{"--endpoint", srv.Endpoint, "--path-style",
		"--profile", up, "--read-profile", read,
		"--escrow", "s3://" + srv.Bucket + "/keys", "--escrow-profile", up, "--escrow-read-profile", read}, extra...)...)
	return f
}

// shipped installs drym's shipped policies on srv: the put profile gets the
// backup and escrow policies, the read profile the monitoring one.
func shipped(t *testing.T, srv *testutil.S3Server) {
	t.Helper()
	srv.SetPolicy(t, testutil.ShippedPolicy(t, map[string]string{
		"BUCKET": srv.Bucket, "PREFIX": "drym", "HOST": "web1", "ESCROW_BUCKET": srv.Bucket, "ESCROW_PREFIX": "keys",
	}, [][2]string{
		{"backup-put-only-policy.json", srv.Principal(srv.PutProfile)},
		{"escrow-policy.json", srv.Principal(srv.PutProfile)},
		{"monitoring-read-only-policy.json", srv.Principal(srv.ReadProfile)},
	}))
}

// lifecycle installs plugins.d/s3/lifecycle.json (as root) where the server
// implements lifecycle rules; it reports whether it did.
func lifecycle(t *testing.T, srv *testutil.S3Server) bool {
	t.Helper()
	if srv.Engine == "versitygw" {
		t.Log("versitygw does not implement lifecycle rules: the doctor says so (info), nothing to install")
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := srv.Root().PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket: &srv.Bucket,
		LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{Rules: []s3types.LifecycleRule{{
			ID: strPtr("drym-expire-backups-after-180-days"), Status: s3types.ExpirationStatusEnabled,
			Filter:                         &s3types.LifecycleRuleFilter{Prefix: strPtr("drym/")},
			Expiration:                     &s3types.LifecycleExpiration{Days: int32Ptr(180)},
			AbortIncompleteMultipartUpload: &s3types.AbortIncompleteMultipartUpload{DaysAfterInitiation: int32Ptr(7)},
		}}},
	})
	if err != nil {
		t.Fatalf("%s: put lifecycle: %v", srv.Engine, err)
	}
	return true
}

func strPtr(s string) *string { return &s }
func int32Ptr(i int32) *int32 { return &i }

// With drym's shipped policies the doctor is all green on every server,
// init says nothing against it, and every backup records that the promise
// held: check_backup_age says so.
func TestDoctorShippedPolicies(t *testing.T) {
	testutil.ForEachS3(t, testDoctorShippedPolicies)
}

func testDoctorShippedPolicies(t *testing.T, srv *testutil.S3Server) {
	shipped(t, srv)
	hasLifecycle := lifecycle(t, srv)
	f := newFixture(t)
	f.env = append(srv.Env(), "HTTP_PROXY=", "http_proxy=")
	// The escrow policy lets the host's put user read back its own zips:
	// it is the escrow's read profile too.
	out, errOut, code := f.run("init", "--source", f.src, "--dest", "s3://"+srv.Bucket+"/drym", "--state-dir", f.state,
		"--key-file", f.key, "--host", "web1", "--endpoint", srv.Endpoint, "--path-style",
		"--profile", srv.PutProfile, "--read-profile", srv.ReadProfile,
		"--escrow", "s3://"+srv.Bucket+"/keys", "--escrow-profile", srv.PutProfile, "--escrow-read-profile", srv.PutProfile)
	if code != 0 || errOut != "" || !strings.Contains(out, "backup_runner doctor:") {
		t.Fatalf("init: exit %d\n%s\nstderr: %s", code, out, errOut)
	}

	out, errOut, code = f.run("doctor")
	t.Logf("doctor on %s:\n%s", srv.Engine, out)
	if code != 0 || errOut != "" {
		t.Fatalf("doctor: exit %d, stderr %q", code, errOut)
	}
	if n := results(out); n["WARN"]+n["FAIL"] != 0 || n["ok"] < 18 {
		t.Errorf("want all green, got %v", n)
	}
	if strings.Count(out, "=> append-only: holds") != 2 {
		t.Errorf("want the promise to hold for the destination and the escrow")
	}
	for _, section := range []string{"destination", "escrow"} {
		for check, want := range map[string]string{"delete denied": "answered 403", "version delete denied": "answered 403",
			"overwrite refused": "(412)", "versioning": "off", "upload": "If-None-Match"} {
			if res, detail := doctorRow(t, out, section, check); !strings.Contains(detail, want) {
				t.Errorf("%s %s: %s %s, want %q", section, check, res, detail, want)
			}
		}
	}
	res, detail := doctorRow(t, out, "destination", "lifecycle rule")
	if hasLifecycle && (res != "ok" || !strings.Contains(detail, "expires objects after 180 days, aborts uploads after 7 days")) ||
		!hasLifecycle && (res != "info" || !strings.Contains(detail, "does not implement lifecycle rules")) {
		t.Errorf("lifecycle rule: %s %s", res, detail)
	}

	out, errOut, code = f.run("backup")
	if code != 0 || errOut != "" {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	b := f.backupStatus()
	ao := b.AppendOnly
	if ao == nil || !ao.Held || ao.Delete != status.ProbeDenied || ao.DeleteVersion != status.ProbeDenied ||
		ao.Overwrite != status.ProbeRefused || ao.Versioning != status.ProbeOff || ao.ObjectLock != status.ProbeOff {
		t.Fatalf("backup.json append_only: %+v", ao)
	}
	if time.Since(ao.Checked) > time.Minute {
		t.Errorf("checked %v", ao.Checked)
	}
	// The probes leave the one probe object and nothing else: beside it
	// the backup, its statement and its signature.
	keys := srv.Keys(t, "drym/web1/")
	if len(keys) != 4 || keys[2] != keys[0]+".sig" || keys[3] != "drym/web1/"+store.ProbeName {
		t.Errorf("destination holds %v", keys)
	}
	out, code = f.check("check_backup_age")
	if code != 0 || !strings.Contains(out, "append-only: holds") {
		t.Errorf("check_backup_age: exit %d\n%s", code, out)
	}
	if out, _, _ := f.run("status"); !strings.Contains(out, "append-only: holds (probed ") {
		t.Errorf("status:\n%s", out)
	}
	// check_key_escrow finds the real zip beside the escrow's probe object.
	if out, code := f.check("check_key_escrow"); code != 0 || !strings.HasPrefix(out, "OK: escrow zip drym-escrow-web1-") {
		t.Errorf("check_key_escrow: exit %d\n%s", code, out)
	}
	// list, test-restore and restore pass the probe object by.
	if out, errOut, code := f.run("list"); code != 0 || strings.Contains(out, store.ProbeName) {
		t.Errorf("list: exit %d\n%s%s", code, out, errOut)
	}
	// A run that fails does not probe: the last result is carried forward.
	must(t, os.Rename(f.src, f.src+".away"))
	if _, errOut, code := f.run("backup"); code != 1 {
		t.Fatalf("backup without its source: exit %d %s", code, errOut)
	}
	if b := f.backupStatus(); b.State != status.Failed || b.AppendOnly == nil || *b.AppendOnly != *ao {
		t.Errorf("after a failed run: state %s, append_only %+v, want %+v carried forward", b.State, b.AppendOnly, ao)
	}
}

// A user with the server's ordinary write permission (SeaweedFS: an
// identity with "Write" on the bucket; versitygw: a policy allowing put and
// delete) can delete backups: the doctor says so and exits 1, backups still
// run but record it, and check_backup_age turns CRITICAL. With versioning
// on and version deletes denied, deletes keep old versions: the promise
// holds again, with a warning.
func TestDoctorWriteCanDelete(t *testing.T) {
	testutil.ForEachS3(t, testDoctorWriteCanDelete)
}

func testDoctorWriteCanDelete(t *testing.T, srv *testutil.S3Server) {
	f := s3Fixture(t, srv, srv.WriteProfile, srv.ReadProfile)
	out, _, code := f.run("doctor")
	t.Logf("doctor on %s, write profile:\n%s", srv.Engine, out)
	if code != 1 || !strings.Contains(out, "=> append-only: DOES NOT HOLD") {
		t.Fatalf("doctor: exit %d, want 1 and DOES NOT HOLD", code)
	}
	if res, detail := doctorRow(t, out, "destination", "delete denied"); res != "FAIL" || !strings.Contains(detail, "answered 204: this host can delete its backups") {
		t.Errorf("delete denied: %s %s", res, detail)
	}
	if res, _ := doctorRow(t, out, "destination", "version delete denied"); res != "FAIL" {
		t.Errorf("version delete denied: %s", res)
	}

	out, errOut, code := f.run("backup")
	if code != 0 || !strings.Contains(errOut, "is not append-only for this host: its credentials can delete backups; see backup_runner doctor") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	if ao := f.backupStatus().AppendOnly; ao == nil || ao.Held || ao.Delete != status.ProbeAllowed || ao.DeleteVersion != status.ProbeAllowed {
		t.Fatalf("backup.json append_only: %+v", ao)
	}
	out, code = f.check("check_backup_age")
	if code != 2 || !strings.HasPrefix(out, "CRITICAL: this host can delete its backups in s3://"+srv.Bucket+"/drym") {
		t.Errorf("check_backup_age: exit %d\n%s", code, out)
	}
	if out, _, _ := f.run("status"); !strings.Contains(out, "append-only: DOES NOT HOLD: its credentials can delete backups") {
		t.Errorf("status:\n%s", out)
	}

	// Versioning on, version deletes denied, the bucket settings readable:
	// a delete only hides a backup.
	srv.EnableVersioning(t)
	w := srv.Principal(srv.WriteProfile)
	srv.SetPolicy(t, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
{"Sid":"write","Effect":"Allow","Principal":{"AWS":[%q]},"Action":["s3:PutObject","s3:DeleteObject"],"Resource":["arn:aws:s3:::%[2]s/*"]},
{"Sid":"settings","Effect":"Allow","Principal":{"AWS":[%[1]q,%[3]q]},"Action":["s3:GetBucketVersioning","s3:GetBucketObjectLockConfiguration"],"Resource":["arn:aws:s3:::%[2]s"]},
{"Sid":"keep","Effect":"Deny","Principal":{"AWS":[%[1]q]},"Action":["s3:DeleteObjectVersion"],"Resource":["arn:aws:s3:::%[2]s/*"]},
{"Sid":"read","Effect":"Allow","Principal":{"AWS":[%[3]q]},"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%[2]s","arn:aws:s3:::%[2]s/*"]}
]}`, w, srv.Bucket, srv.Principal(srv.ReadProfile)))
	out, _, code = f.run("doctor")
	t.Logf("doctor on %s, versioned, version deletes denied:\n%s", srv.Engine, out)
	res, detail := doctorRow(t, out, "destination", "delete denied")
	if res != "WARN" || !strings.Contains(detail, "deletes keep old versions (versioning)") {
		t.Errorf("delete denied: %s %s", res, detail)
	}
	if res, detail := doctorRow(t, out, "destination", "versioning"); res != "ok" || detail != "enabled" {
		t.Errorf("versioning: %s %s", res, detail)
	}
	if strings.Count(out, "=> append-only: holds") != 2 {
		t.Errorf("want the promise to hold for both stores with versions kept")
	}
	// The delete probe's marker could not be taken back by these
	// credentials: the doctor says so where the server leaves one.
	if strings.Contains(out, "leftovers") {
		t.Logf("%s leaves a delete marker for a deleted name that never existed", srv.Engine)
	}
	// WARN lines (a delete that only hides, a leftover marker) do not
	// break the promise: the doctor exits 0 and says FAIL nowhere.
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Errorf("doctor: exit %d, want 0 with no FAIL line while the promise holds", code)
	}
}

// A directory cannot promise append-only, and the doctor says so plainly;
// init still succeeds, with a warning.
func TestDoctorDir(t *testing.T) {
	f := newFixture(t)
	drop := filepath.Join(f.dir, "escrow")
	must(t, os.MkdirAll(drop, 0o755))
	must(t, os.MkdirAll(f.dest, 0o755))
	out, errOut, code := f.run("init", "--source", f.src, "--dest", "dir://"+f.dest, "--state-dir", f.state,
		"--key-file", f.key, "--host", "web1", "--escrow", "dir://"+drop)
	if code != 0 || !strings.Contains(errOut, "warning: the append-only promise does not hold") || !strings.Contains(out, "a directory on this host cannot promise it") {
		t.Fatalf("init: exit %d\n%s\nstderr: %s", code, out, errOut)
	}
	out, _, code = f.run("doctor")
	if code != 1 {
		t.Fatalf("doctor: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"destination dir://" + f.dest + " (a directory on this host)",
		"drym itself never replaces a file",
		"root on this host, and so an intruder — can delete or change every file in it",
		"use an s3:// destination with put-only credentials",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if res, _ := doctorRow(t, out, "destination", "directory"); res != "ok" {
		t.Errorf("directory: %s", res)
	}
	// A backup to a directory records nothing about the promise.
	if _, errOut, code := f.run("backup"); code != 0 || errOut != "" {
		t.Fatalf("backup: exit %d %s", code, errOut)
	}
	if ao := f.backupStatus().AppendOnly; ao != nil {
		t.Errorf("append_only for a dir destination: %+v", ao)
	}
}

// Addressing: virtual-hosted requests (bucket in the host name, reached
// through a proxy that stands in for wildcard DNS) work where the server
// knows its domain; where it does not, the doctor finds that path-style
// works and says which path_style to set.
func TestDoctorAddressing(t *testing.T) {
	testutil.ForEachS3(t, testDoctorAddressing)
}

func testDoctorAddressing(t *testing.T, srv *testutil.S3Server) {
	shipped(t, srv)
	proxy := testutil.StartForwardProxy(t, srv.Endpoint)
	port := srv.Endpoint[strings.LastIndex(srv.Endpoint, ":")+1:]
	for _, c := range []struct {
		name, endpoint string
		works          bool
	}{
		{"virtual-hosted", "http://" + srv.VirtualDomain + ":" + port, true},
		{"virtual-hosted, unknown domain", "http://s3.elsewhere.test:" + port, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.env = append(srv.Env(), "HTTP_PROXY="+proxy.URL, "http_proxy=", "NO_PROXY=", "no_proxy=")
			f.init("s3://"+srv.Bucket+"/drym", "--endpoint", c.endpoint,
				"--profile", srv.PutProfile, "--read-profile", srv.ReadProfile)
			before := len(proxy.Requests())
			out, _, code := f.run("doctor")
			t.Logf("doctor on %s, %s:\n%s", srv.Engine, c.endpoint, out)
			res, detail := doctorRow(t, out, "destination", "addressing")
			if c.works {
				if code != 0 || res != "ok" || !strings.Contains(detail, "virtual-hosted addressing (path_style = false) works") {
					t.Fatalf("exit %d, addressing %s %s", code, res, detail)
				}
				host := srv.Bucket + "." + srv.VirtualDomain + ":" + port
				for _, r := range proxy.Requests()[before:] {
					if r.Host != host {
						t.Errorf("%s %s went to %s, want %s", r.Method, r.Path, r.Host, host)
					}
				}
				if _, errOut, code := f.run("backup"); code != 0 || errOut != "" {
					t.Fatalf("backup: exit %d %s", code, errOut)
				}
				return
			}
			if code != 1 || res != "FAIL" || !strings.Contains(detail, "path_style = false does not work with this endpoint") ||
				!strings.Contains(detail, "set path_style = true in [destination] of "+f.cfg) {
				t.Fatalf("exit %d, addressing %s %s", code, res, detail)
			}
			// A backup with the wrong style fails, and its error names
			// path_style too.
			_, errOut, code := f.run("backup")
			if code != 1 || !strings.Contains(errOut, "path_style = true") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("backup: exit %d, stderr %s", code, errOut)
			}
			t.Logf("backup with the wrong style: %s", errOut)
		})
	}
}

// The AWS environment stands in for settings left out: the endpoint from
// AWS_ENDPOINT_URL_S3, the upload credentials from AWS_PROFILE, the region
// from the profile. The doctor says where each came from.
func TestDoctorAWSEnvironment(t *testing.T) {
	testutil.ForEachS3(t, testDoctorAWSEnvironment)
}

func testDoctorAWSEnvironment(t *testing.T, srv *testutil.S3Server) {
	shipped(t, srv)
	f := newFixture(t)
	f.env = append(srv.Env(), "AWS_ENDPOINT_URL_S3="+srv.Endpoint, "AWS_PROFILE="+srv.PutProfile, "HTTP_PROXY=", "http_proxy=")
	f.init("s3://"+srv.Bucket+"/drym", "--path-style", "--read-profile", srv.ReadProfile)
	out, errOut, code := f.run("doctor")
	t.Logf("doctor on %s:\n%s", srv.Engine, out)
	if code != 0 || errOut != "" {
		t.Fatalf("doctor: exit %d %s", code, errOut)
	}
	for _, want := range []string{
		"endpoint " + srv.Endpoint + " (from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the profile's endpoint_url)",
		"region us-east-1 (from the AWS settings)",
		"uploads as profile " + srv.PutProfile + " (AWS_PROFILE)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q", want)
		}
	}
	if _, errOut, code := f.run("backup"); code != 0 || errOut != "" {
		t.Fatalf("backup: exit %d %s", code, errOut)
	}
	if keys := srv.Keys(t, "drym/web1/"); len(keys) != 4 { // object, statement, signature, probe
		t.Errorf("destination holds %v", keys)
	}
}
