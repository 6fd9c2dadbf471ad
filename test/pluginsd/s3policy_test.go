package pluginsd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/drym-backup/drym/internal/testutil"
)

// bucketPolicy turns the shipped identity policies into one bucket policy
// (the same statements, each with the user it belongs to as Principal), with
// the placeholders filled in, so a real S3 server can enforce them.
func bucketPolicy(t *testing.T, bucket string, files [][2]string) string {
	t.Helper()
	return testutil.ShippedPolicy(t, map[string]string{"ESCROW_BUCKET": bucket, "ESCROW_PREFIX": "keys",
		"BUCKET": bucket, "PREFIX": "drym", "HOST": "web1"}, files)
}

// TestS3PoliciesEnforced installs the put-only and read-only policies on a
// real S3 server (versitygw, SeaweedFS on 127.0.0.1) and tries every operation as each
// user: each may do exactly what its policy says, on its host's prefix only.
func TestS3PoliciesEnforced(t *testing.T) {
	testutil.ForEachS3(t, testS3PoliciesEnforced)
}

func testS3PoliciesEnforced(t *testing.T, srv *testutil.S3Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The host's put-only user also ships (and reads back) its escrow zips,
	// as the README sets them up; escrow shares the bucket here.
	policy := bucketPolicy(t, srv.Bucket, [][2]string{
		{"backup-put-only-policy.json", srv.Principal(srv.PutProfile)},
		{"escrow-policy.json", srv.Principal(srv.PutProfile)},
		{"monitoring-read-only-policy.json", srv.Principal(srv.ReadProfile)},
	})
	root := srv.Root()
	if _, err := root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &srv.Bucket, Policy: &policy}); err != nil {
		t.Fatalf("put bucket policy: %v\n%s", err, policy)
	}
	for _, key := range []string{"drym/web1/old.tar.zst.gpg", "drym/web2/other.tar.zst.gpg", "keys/drym-escrow-web2-0123456789abcdef-20260101.zip"} {
		if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}

	ops := map[string]s3op{
		"put": opPut(srv.Bucket), "get": opGet(srv.Bucket),
		"list": opList(srv.Bucket), "delete": opDelete(srv.Bucket),
		"versioning": opVersioning(srv.Bucket), "lifecycle": opLifecycle(srv.Bucket),
	}
	tests := []struct {
		user, op, key string
		ok            bool
	}{
		{"put", "put", "drym/web1/new.tar.zst.gpg", true},
		{"put", "put", "drym/web2/new.tar.zst.gpg", false},
		{"put", "put", "elsewhere/new", false},
		{"put", "get", "drym/web1/old.tar.zst.gpg", false},
		{"put", "list", "drym/web1/", false},
		{"put", "delete", "drym/web1/old.tar.zst.gpg", false},
		{"read", "get", "drym/web1/old.tar.zst.gpg", true},
		{"put", "put", "keys/drym-escrow-web1-0123456789abcdef-20260102.zip", true},
		{"put", "get", "keys/drym-escrow-web1-0123456789abcdef-20260102.zip", true},
		{"put", "put", "keys/drym-escrow-web1-0123456789abcdef-20260102.zip.json", true}, // the public record
		{"put", "put", "keys/drym-escrow-web1-0123456789abcdef-20260102.txt", false},
		{"put", "list", "keys/drym-escrow-web1-", true},
		{"put", "put", "keys/drym-escrow-web2-0123456789abcdef-20260102.zip", false},
		{"put", "get", "keys/drym-escrow-web2-0123456789abcdef-20260101.zip", false},
		{"put", "list", "keys/", false},
		{"put", "delete", "keys/drym-escrow-web1-0123456789abcdef-20260102.zip", false},
		{"read", "list", "drym/web1/", true},
		{"read", "get", "drym/web2/other.tar.zst.gpg", false},
		{"read", "list", "drym/web2/", false},
		{"read", "list", "", false},
		{"read", "put", "drym/web1/new2.tar.zst.gpg", false},
		{"read", "delete", "drym/web1/old.tar.zst.gpg", false},
		// Bucket settings: the append-only probes and the doctor read them.
		{"put", "versioning", "", true},
		{"read", "versioning", "", true},
		{"put", "lifecycle", "", false},
	}
	clients := map[string]*s3.Client{"put": srv.PutOnly(), "read": srv.ReadOnly()}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.op+" "+tt.key, func(t *testing.T) {
			err := ops[tt.op](ctx, clients[tt.user], tt.key)
			if tt.op == "lifecycle" && srv.Engine == "versitygw" {
				// versitygw has no lifecycle rules at all: it answers
				// NotImplemented to every user, before any policy.
				var api smithy.APIError
				if !errors.As(err, &api) || api.ErrorCode() != "NotImplemented" {
					t.Fatalf("versitygw: want NotImplemented, got %v", err)
				}
				t.Log("versitygw does not implement lifecycle rules (501 NotImplemented for every user): nothing to deny")
				return
			}
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok {
				var api smithy.APIError
				if err == nil {
					t.Fatal("allowed, want AccessDenied")
				}
				if !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
					t.Fatalf("want AccessDenied, got %v", err)
				}
			}
		})
	}
}

type s3op = func(context.Context, *s3.Client, string) error

func opPut(bucket string) s3op {
	return func(ctx context.Context, c *s3.Client, key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader([]byte("data"))})
		return err
	}
}

func opGet(bucket string) s3op {
	return func(ctx context.Context, c *s3.Client, key string) error {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err == nil {
			_, err = io.Copy(io.Discard, out.Body)
			out.Body.Close()
		}
		return err
	}
}

func opList(bucket string) s3op {
	return func(ctx context.Context, c *s3.Client, prefix string) error {
		_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
		return err
	}
}

func opDelete(bucket string) s3op {
	return func(ctx context.Context, c *s3.Client, key string) error {
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
		return err
	}
}

func opVersioning(bucket string) s3op {
	return func(ctx context.Context, c *s3.Client, _ string) error {
		_, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &bucket})
		return err
	}
}

func opLifecycle(bucket string) s3op {
	return func(ctx context.Context, c *s3.Client, _ string) error {
		_, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &bucket})
		return err
	}
}

// TestS3DenyBeatsBroaderGrant: the put-only policy's explicit denies hold
// even for a user granted more elsewhere. On SeaweedFS the broader grant is
// the identity's own "Write" action, which includes DELETE; on versitygw,
// whose users hold nothing of their own, it is a bucket-policy Allow of
// put and delete beside the shipped statements.
func TestS3DenyBeatsBroaderGrant(t *testing.T) {
	testutil.ForEachS3(t, testS3DenyBeatsBroaderGrant)
}

func testS3DenyBeatsBroaderGrant(t *testing.T, srv *testutil.S3Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	writer := srv.Writer()
	key := "drym/web1/old.tar.zst.gpg"
	if err := opPut(srv.Bucket)(ctx, srv.Root(), key); err != nil {
		t.Fatal(err)
	}
	// Before: the write user can delete (what the doctor reports).
	if err := opDelete(srv.Bucket)(ctx, writer, "drym/web1/absent"); err != nil {
		t.Fatalf("write user may not delete to begin with: %v", err)
	}
	policy := bucketPolicy(t, srv.Bucket, [][2]string{{"backup-put-only-policy.json", srv.Principal(srv.WriteProfile)}})
	broader := fmt.Sprintf(`{"Sid":"BroaderGrant","Effect":"Allow","Principal":{"AWS":[%q]},"Action":["s3:PutObject","s3:DeleteObject","s3:DeleteObjectVersion"],"Resource":["arn:aws:s3:::%s/*"]}`,
		srv.Principal(srv.WriteProfile), srv.Bucket)
	policy = strings.Replace(policy, `"Statement":[`, `"Statement":[`+broader+`,`, 1)
	srv.SetPolicy(t, policy)
	if err := opPut(srv.Bucket)(ctx, writer, "drym/web1/new.tar.zst.gpg"); err != nil {
		t.Fatalf("put refused: %v", err)
	}
	for _, k := range []string{key, "drym/web1/absent"} {
		var api smithy.APIError
		if err := opDelete(srv.Bucket)(ctx, writer, k); !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
			t.Errorf("delete %s: want AccessDenied, got %v", k, err)
		}
	}
}

// TestS3BucketPolicyRecipe runs plugins.d/README.md's recipe for servers
// without IAM users (fill + jq into one bucket policy) exactly as written,
// installs the policy it makes, and proves it: the put user may put and not
// delete, the read user may list.
func TestS3BucketPolicyRecipe(t *testing.T) {
	testutil.Need(t, "jq")
	readme, err := os.ReadFile(filepath.Join(pluginsDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var fill, recipe string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "fill() {") {
			fill = line
		}
	}
	start := strings.Index(string(readme), "jq -nc --argjson put")
	end := strings.Index(string(readme), "> /tmp/policy.json")
	if fill == "" || start < 0 || end < start {
		t.Fatal("README.md: the fill() line or the jq recipe is missing")
	}
	recipe = string(readme)[start:end]
	testutil.ForEachS3(t, func(t *testing.T, srv *testutil.S3Server) {
		out := filepath.Join(t.TempDir(), "policy.json")
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", fill+"\n"+recipe+"> "+out)
		cmd.Dir = filepath.Dir(pluginsDir(t))
		cmd.Env = append(os.Environ(), "B="+srv.Bucket, "P=drym", "H=web1", "EB="+srv.Bucket, "EP=keys",
			"PUT="+srv.Principal(srv.PutProfile), "READ="+srv.Principal(srv.ReadProfile))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the README's recipe: %v\n%s", err, b)
		}
		policy, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		srv.SetPolicy(t, string(policy))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := opPut(srv.Bucket)(ctx, srv.PutOnly(), "drym/web1/new.tar.zst.gpg"); err != nil {
			t.Errorf("put: %v", err)
		}
		var api smithy.APIError
		if err := opDelete(srv.Bucket)(ctx, srv.PutOnly(), "drym/web1/new.tar.zst.gpg"); !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
			t.Errorf("delete by the put user: want AccessDenied, got %v", err)
		}
		if err := opList(srv.Bucket)(ctx, srv.ReadOnly(), "drym/web1/"); err != nil {
			t.Errorf("list by the read user: %v", err)
		}
	})
}
