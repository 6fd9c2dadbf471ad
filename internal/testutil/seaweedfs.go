package testutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// seaweedfs is a distributed store: `weed server` runs a master, a volume
// server, a filer and the S3 gateway in one process, each on its own ports.
// Identities and their coarse actions (Admin, Read, List, Write) come from
// a JSON file read at start; on top of them the gateway enforces bucket
// policies, naming users as arn:aws:iam::000000000000:user/<identity>.
//
// put and read hold no actions of their own, so, as on versitygw, only the
// bucket policy grants them anything. write holds "Write" on the bucket:
// SeaweedFS's Write also allows DELETE, which is what an administrator who
// grants "write access" gets.
type seaweedfs struct{}

func (seaweedfs) name() string { return "seaweedfs" }

func (seaweedfs) tool() string { return "weed" }

func (seaweedfs) principal(key string) string { return "arn:aws:iam::000000000000:user/" + key }

func (seaweedfs) prepare(s *S3Server) {
	if err := os.MkdirAll(filepath.Join(s.Dir, "data"), 0o755); err != nil {
		s.t.Fatal(err)
	}
	type cred struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type identity struct {
		Name        string   `json:"name"`
		Credentials []cred   `json:"credentials"`
		Actions     []string `json:"actions"`
	}
	ids := []identity{
		{rootKey, []cred{{rootKey, rootSecret}}, []string{"Admin", "Read", "List", "Tagging", "Write"}},
		{putKey, []cred{{putKey, putSecret}}, []string{}},
		{readKey, []cred{{readKey, readSecret}}, []string{}},
		{writeKey, []cred{{writeKey, writeSecret}}, []string{"Write:" + s.Bucket}},
	}
	data, err := json.MarshalIndent(map[string]any{"identities": ids}, "", "  ")
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "identities.json"), data, 0o600); err != nil {
		s.t.Fatal(err)
	}
	// The listeners besides the S3 port are fixed at the first start, so a
	// restart finds its data and its peers where they were.
	s.ports = map[string]string{}
	for _, name := range []string{"master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3.grpc"} {
		s.ports[name] = FreePort(s.t)
	}
}

func (seaweedfs) command(s *S3Server) *exec.Cmd {
	p := s.ports
	d := filepath.Join(s.Dir, "data")
	return exec.Command(s.bin, "server",
		"-dir="+d, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-volume.max=5",
		"-master.port="+p["master"], "-master.port.grpc="+p["master.grpc"], "-master.telemetry=false",
		"-volume.port="+p["volume"], "-volume.port.grpc="+p["volume.grpc"],
		"-filer.port="+p["filer"], "-filer.port.grpc="+p["filer.grpc"], "-filer.localSocket="+filepath.Join(s.Dir, "filer.sock"),
		"-s3", "-s3.port="+s.port, "-s3.port.grpc="+p["s3.grpc"], "-s3.localSocket="+filepath.Join(s.Dir, "s3.sock"),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		// As on AWS, an upload to a bucket that does not exist fails: root's
		// uploads would otherwise create it.
		"-s3.autoCreateBucket=false",
		"-s3.config="+filepath.Join(s.Dir, "identities.json"), "-s3.domainName="+s.VirtualDomain,
	)
}

func (seaweedfs) setup(ctx context.Context, s *S3Server) error {
	root := s.Root()
	// The gateway answers before the filer behind it is ready: retry.
	var err error
	for {
		if _, err = root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create bucket: %w", errors.Join(err, ctx.Err()))
		case <-time.After(200 * time.Millisecond):
		}
	}
	// A fresh master defers its first volume allocation by two heartbeats
	// (about 5 s): take that wait here, with a write that root removes again,
	// so the tests' first upload is as fast as their later ones and the
	// bucket holds only what the tests put there.
	// Until it has, a write may fail with a 500 InternalError (seen after
	// the SDK's three attempts): retry until the start's deadline.
	warm := aws.String("drym-warmup")
	for {
		if _, err = root.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: warm, Body: strings.NewReader("warm")}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("first write: %w", errors.Join(err, ctx.Err()))
		case <-time.After(500 * time.Millisecond):
		}
	}
	if _, err := root.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: warm}); err != nil {
		return fmt.Errorf("delete the first write: %w", err)
	}
	policy := s.defaultPolicy(false)
	if _, err := root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &s.Bucket, Policy: &policy}); err != nil {
		return fmt.Errorf("put bucket policy: %w", err)
	}
	return nil
}
