package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a real versitygw S3 gateway on 127.0.0.1 with a bucket and
// three users: root, a put-only backup user and a read-only monitoring user,
// each available as a profile in a shared AWS config written for the test.
type S3Server struct {
	Endpoint string
	Bucket   string
	// Profiles in ConfigFile/CredentialsFile.
	RootProfile, PutProfile, ReadProfile string
	ConfigFile, CredentialsFile          string
	Dir                                  string // data and IAM dirs live here

	port    string
	cmd     *exec.Cmd
	bin     string
	t       testing.TB
	logFile string
}

const (
	rootKey    = "drymroot"
	rootSecret = "drymrootsecret0123456789"
	putKey     = "drymput"
	putSecret  = "drymputsecret0123456789"
	readKey    = "drymread"
	readSecret = "drymreadsecret0123456789"
)

// StartS3 starts versitygw (posix backend in a temp dir), creates bucket
// "drym-test" and the put-only and read-only users with a bucket policy that
// allows the first only s3:PutObject and the second only Get/List/Head.
// The server is stopped when the test ends.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := Need(t, "versitygw")
	dir := t.TempDir()
	s := &S3Server{
		Bucket: "drym-test", Dir: dir, bin: bin, t: t,
		RootProfile: "drym-root", PutProfile: "drym-put", ReadProfile: "drym-read",
		logFile: filepath.Join(dir, "versitygw.log"),
	}
	for _, d := range []string{"iam", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.port = FreePort(t)
	s.Endpoint = "http://127.0.0.1:" + s.port
	s.Start()
	t.Cleanup(s.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := s.Client(rootKey, rootSecret)
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	for _, u := range [][2]string{{putKey, putSecret}, {readKey, readSecret}} {
		cmd := exec.Command(bin, "admin", "--access", rootKey, "--secret", rootSecret,
			"--endpoint-url", "http://127.0.0.1:"+s.adminPort(), "create-user",
			"--access", u[0], "--secret", u[1], "--role", "user")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("versitygw create-user %s: %v\n%s", u[0], err, out)
		}
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Principal":{"AWS":["%s"]},"Action":["s3:PutObject"],"Resource":["arn:aws:s3:::%s/*"]},
{"Effect":"Allow","Principal":{"AWS":["%s"]},"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"]}
]}`, putKey, s.Bucket, readKey, s.Bucket, s.Bucket)
	if _, err := root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &s.Bucket, Policy: &policy}); err != nil {
		t.Fatalf("put bucket policy: %v", err)
	}
	s.writeProfiles()
	return s
}

func (s *S3Server) adminPort() string {
	return s.port // admin APIs share the S3 port unless --admin-port is given
}

// Start (re)starts the gateway on the same port and data, e.g. after Kill.
func (s *S3Server) Start() {
	s.t.Helper()
	log, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "--port", "127.0.0.1:"+s.port, "--iam-dir", filepath.Join(s.Dir, "iam"),
		"posix", filepath.Join(s.Dir, "data"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+rootKey, "ROOT_SECRET_KEY="+rootSecret)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	log.Close()
	s.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.logFile)
	s.t.Fatalf("versitygw did not start on %s:\n%s", s.Endpoint, b)
}

// Kill SIGKILLs the gateway (fault tests).
func (s *S3Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Stop ends the gateway.
func (s *S3Server) Stop() { s.Kill() }

// Client returns an S3 client with the given keys.
func (s *S3Server) Client(key, secret string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(key, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Root returns a client with the root keys (to inspect the bucket).
func (s *S3Server) Root() *s3.Client { return s.Client(rootKey, rootSecret) }

// PutOnly returns a client with the put-only keys.
func (s *S3Server) PutOnly() *s3.Client { return s.Client(putKey, putSecret) }

// ReadOnly returns a client with the read-only keys.
func (s *S3Server) ReadOnly() *s3.Client { return s.Client(readKey, readSecret) }

func (s *S3Server) writeProfiles() {
	s.ConfigFile = filepath.Join(s.Dir, "aws-config")
	s.CredentialsFile = filepath.Join(s.Dir, "aws-credentials")
	var cfg, creds strings.Builder
	for _, p := range [][3]string{{s.RootProfile, rootKey, rootSecret}, {s.PutProfile, putKey, putSecret}, {s.ReadProfile, readKey, readSecret}} {
		fmt.Fprintf(&cfg, "[profile %s]\nregion = us-east-1\n\n", p[0])
		fmt.Fprintf(&creds, "[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n", p[0], p[1], p[2])
	}
	if err := os.WriteFile(s.ConfigFile, []byte(cfg.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(s.CredentialsFile, []byte(creds.String()), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// Env is the environment a drym process (or aws-cli) needs to find the
// test's profiles and nothing else: no stray credentials from the machine.
func (s *S3Server) Env() []string {
	var env []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "AWS_") {
			continue
		}
		env = append(env, e)
	}
	return append(env,
		"AWS_CONFIG_FILE="+s.ConfigFile,
		"AWS_SHARED_CREDENTIALS_FILE="+s.CredentialsFile,
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

// SetEnv points this test process's AWS SDK at the test profiles.
func (s *S3Server) SetEnv(t testing.TB) {
	t.Helper()
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "AWS_") {
			k, _, _ := strings.Cut(e, "=")
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", s.ConfigFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", s.CredentialsFile)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Keys lists the keys in the bucket under prefix (as root).
func (s *S3Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Root(), &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
