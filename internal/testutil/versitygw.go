package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// versitygw is a single-process S3 gateway over a POSIX directory. Its
// users hold no rights of their own: a bucket policy grants them, by access
// key.
type versitygw struct{}

func (versitygw) name() string { return "versitygw" }

func (versitygw) tool() string { return "versitygw" }

func (versitygw) principal(key string) string { return key }

func (versitygw) prepare(s *S3Server) {
	for _, d := range []string{"iam", "data", "versions"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (versitygw) command(s *S3Server) *exec.Cmd {
	// --versioning-dir only makes versioning possible; a bucket is versioned
	// once root turns it on (EnableVersioning).
	cmd := exec.Command(s.bin, "--port", "127.0.0.1:"+s.port, "--iam-dir", filepath.Join(s.Dir, "iam"),
		"--virtual-domain", s.VirtualDomain,
		"posix", "--versioning-dir", filepath.Join(s.Dir, "versions"), filepath.Join(s.Dir, "data"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+rootKey, "ROOT_SECRET_KEY="+rootSecret)
	return cmd
}

func (versitygw) setup(ctx context.Context, s *S3Server) error {
	root := s.Root()
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	// Admin APIs share the S3 port unless --admin-port is given.
	for _, u := range [][2]string{{putKey, putSecret}, {readKey, readSecret}, {writeKey, writeSecret}} {
		cmd := exec.Command(s.bin, "admin", "--access", rootKey, "--secret", rootSecret,
			"--endpoint-url", s.Endpoint, "create-user",
			"--access", u[0], "--secret", u[1], "--role", "user")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("versitygw create-user %s: %v\n%s", u[0], err, out)
		}
	}
	policy := s.defaultPolicy(true)
	if _, err := root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &s.Bucket, Policy: &policy}); err != nil {
		return fmt.Errorf("put bucket policy: %w", err)
	}
	return nil
}
