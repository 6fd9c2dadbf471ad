package testutil

import (
	"context"
	"encoding/json"
	"errors"
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
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Server is a real S3 server on 127.0.0.1 — versitygw or SeaweedFS — with
// a bucket and four users, each available as a profile in a shared AWS
// config written for the test:
//
//   - root administers the server;
//   - put may only s3:PutObject (a bucket policy grants it; nothing else);
//   - read may s3:GetObject and s3:ListBucket;
//   - write holds the engine's ordinary write permission with no deny in
//     front of it, so it can also delete: tests use it to prove that drym
//     notices a destination that is not append-only.
type S3Server struct {
	// Engine is the server's name ("versitygw", "seaweedfs"); ForEachS3
	// names each subtest after it.
	Engine   string
	Endpoint string
	Bucket   string
	// Profiles in ConfigFile/CredentialsFile.
	RootProfile, PutProfile, ReadProfile, WriteProfile string
	ConfigFile, CredentialsFile                        string
	Dir                                                string // data and server settings live here
	// VirtualDomain is the base domain of virtual-hosted addressing: the
	// server answers requests for <bucket>.<VirtualDomain> (reach it through
	// a proxy, see StartForwardProxy; path-style requests to Endpoint work
	// too).
	VirtualDomain string

	eng     s3Engine
	port    string
	ports   map[string]string // an engine's further listeners
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for
	bin     string
	t       testing.TB
	logFile string
}

const (
	rootKey     = "drymroot"
	rootSecret  = "drymrootsecret0123456789"
	putKey      = "drymput"
	putSecret   = "drymputsecret0123456789"
	readKey     = "drymread"
	readSecret  = "drymreadsecret0123456789"
	writeKey    = "drymwrite"
	writeSecret = "drymwritesecret0123456789"

	virtualDomain = "s3.drym.test"
)

// s3Engine is what differs between the S3 servers the tests use.
type s3Engine interface {
	// name is the engine's name.
	name() string
	// tool is the command the tests need (testutil.Need).
	tool() string
	// prepare creates the server's settings in s.Dir before the first start.
	prepare(s *S3Server)
	// command returns the server process (not started).
	command(s *S3Server) *exec.Cmd
	// setup creates the bucket, the users and the policy after the first
	// start (root client: s.Root()).
	setup(ctx context.Context, s *S3Server) error
	// principal is how a bucket policy names the user with access key key.
	principal(key string) string
}

// s3Engines is the table of servers every S3 test runs against.
var s3Engines = []s3Engine{versitygw{}, seaweedfs{}}

// S3Engines returns the names of the servers ForEachS3 runs against.
func S3Engines() []string {
	var names []string
	for _, e := range s3Engines {
		names = append(names, e.name())
	}
	return names
}

// ForEachS3 runs fn once per S3 server (versitygw, then SeaweedFS), each in
// a subtest named after the server and with a fresh server of its own, so
// the run says which server each result came from. A server that is not
// installed skips its subtest locally and fails it in CI.
func ForEachS3(t *testing.T, fn func(t *testing.T, s *S3Server)) {
	t.Helper()
	for _, e := range s3Engines {
		t.Run(e.name(), func(t *testing.T) {
			fn(t, startS3(t, e))
		})
	}
}

// StartS3 starts versitygw; see StartS3Engine.
func StartS3(t testing.TB) *S3Server { return startS3(t, versitygw{}) }

// StartS3Engine starts the named server ("versitygw" or "seaweedfs") with
// bucket "drym-test" and the users described at S3Server. It is stopped
// when the test ends.
func StartS3Engine(t testing.TB, engine string) *S3Server {
	t.Helper()
	for _, e := range s3Engines {
		if e.name() == engine {
			return startS3(t, e)
		}
	}
	t.Fatalf("unknown S3 engine %q (have %v)", engine, S3Engines())
	return nil
}

func startS3(t testing.TB, e s3Engine) *S3Server {
	t.Helper()
	bin := Need(t, e.tool())
	dir := t.TempDir()
	s := &S3Server{
		Engine: e.name(), Bucket: "drym-test", Dir: dir, bin: bin, t: t, eng: e,
		RootProfile: "drym-root", PutProfile: "drym-put", ReadProfile: "drym-read", WriteProfile: "drym-write",
		VirtualDomain: virtualDomain,
		logFile:       filepath.Join(dir, e.name()+".log"),
	}
	started := time.Now()
	t.Cleanup(s.Stop)
	// Ports are picked free a moment before the server binds them; a test
	// process starting another server meanwhile (packages run in parallel,
	// and SeaweedFS binds eight ports) can take one. A first start that
	// fails so is retried on fresh ports.
	for attempt := 1; ; attempt++ {
		s.port = FreePort(t)
		s.Endpoint = "http://127.0.0.1:" + s.port
		e.prepare(s)
		err := s.start()
		if err == nil {
			break
		}
		b, _ := os.ReadFile(s.logFile)
		if attempt < 3 && strings.Contains(string(b), "address already in use") {
			t.Logf("%s: a port was taken before it could bind it; again on other ports", e.name())
			s.Kill()
			os.Truncate(s.logFile, 0)
			continue
		}
		t.Fatalf("%v:\n%s", err, tail(b, 4000))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.setup(ctx, s); err != nil {
		b, _ := os.ReadFile(s.logFile)
		t.Fatalf("%s: set-up: %v\n%s", e.name(), err, tail(b, 4000))
	}
	s.writeProfiles()
	t.Logf("%s on %s ready in %s", e.name(), s.Endpoint, time.Since(started).Round(time.Millisecond))
	return s
}

// Start (re)starts the server on the same ports and data, e.g. after Kill,
// and returns once it answers S3 requests.
func (s *S3Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		b, _ := os.ReadFile(s.logFile)
		s.t.Fatalf("%v:\n%s", err, tail(b, 4000))
	}
}

func (s *S3Server) start() error {
	log, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := s.eng.command(s)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", s.Engine, err)
	}
	log.Close()
	s.cmd = cmd
	exited := make(chan struct{})
	s.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	// Any HTTP answer on the S3 port means the gateway listens; an engine
	// whose gateway answers before its storage is up waits in setup (first
	// start) or here, until a root request about the bucket succeeds.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting on %s", s.Engine, s.Endpoint)
		default:
		}
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			if s.bucketReady() {
				return nil
			}
		}
		if s.listenerFailed() {
			return fmt.Errorf("%s could not bind a port on 127.0.0.1", s.Engine)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start on %s", s.Engine, s.Endpoint)
}

// listenerFailed reports whether the server's log says one of its
// listeners could not bind (SeaweedFS logs that and lives on without it).
func (s *S3Server) listenerFailed() bool {
	b, _ := os.ReadFile(s.logFile)
	return strings.Contains(string(b), "address already in use")
}

// bucketReady reports whether the bucket answers a root request, or that
// it does not exist yet (first start: setup creates it).
func (s *S3Server) bucketReady() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.Root().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.Bucket})
	if err == nil {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchBucket")
}

// Kill SIGKILLs the server and everything it started (fault tests).
func (s *S3Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited // start's goroutine reaps it
		s.cmd = nil
	}
}

// Stop ends the server.
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

// Writer returns a client with the write user's keys (may delete).
func (s *S3Server) Writer() *s3.Client { return s.Client(writeKey, writeSecret) }

// Principal is how a bucket policy on this server names the user of a
// profile (PutProfile, ReadProfile, WriteProfile).
func (s *S3Server) Principal(profile string) string {
	key := map[string]string{s.RootProfile: rootKey, s.PutProfile: putKey, s.ReadProfile: readKey, s.WriteProfile: writeKey}[profile]
	if key == "" {
		s.t.Fatalf("no user for profile %q", profile)
	}
	return s.eng.principal(key)
}

// SetPolicy replaces the bucket policy (as root).
func (s *S3Server) SetPolicy(t testing.TB, policy string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Root().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &s.Bucket, Policy: &policy}); err != nil {
		t.Fatalf("%s: put bucket policy: %v\n%s", s.Engine, err, policy)
	}
}

// EnableVersioning turns on versioning of the bucket (as root).
func (s *S3Server) EnableVersioning(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Root().PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  &s.Bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		t.Fatalf("%s: enable versioning: %v", s.Engine, err)
	}
}

// defaultPolicy is the policy every server starts with: put may only put,
// read may only get and list, write may put and delete (on versitygw,
// whose users hold no rights of their own; SeaweedFS's write identity holds
// "Write" on the bucket, which includes delete, and needs no statement).
func (s *S3Server) defaultPolicy(withWrite bool) string {
	b := s.Bucket
	stmts := []map[string]any{
		{"Sid": "put", "Effect": "Allow", "Principal": map[string]any{"AWS": []string{s.eng.principal(putKey)}},
			"Action": []string{"s3:PutObject"}, "Resource": []string{"arn:aws:s3:::" + b + "/*"}},
		{"Sid": "read", "Effect": "Allow", "Principal": map[string]any{"AWS": []string{s.eng.principal(readKey)}},
			"Action": []string{"s3:GetObject", "s3:ListBucket"}, "Resource": []string{"arn:aws:s3:::" + b, "arn:aws:s3:::" + b + "/*"}},
	}
	if withWrite {
		stmts = append(stmts, map[string]any{"Sid": "write", "Effect": "Allow", "Principal": map[string]any{"AWS": []string{s.eng.principal(writeKey)}},
			"Action": []string{"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}, "Resource": []string{"arn:aws:s3:::" + b + "/*"}})
	}
	out, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": stmts})
	return string(out)
}

func (s *S3Server) writeProfiles() {
	s.ConfigFile = filepath.Join(s.Dir, "aws-config")
	s.CredentialsFile = filepath.Join(s.Dir, "aws-credentials")
	var cfg, creds strings.Builder
	for _, p := range [][3]string{{s.RootProfile, rootKey, rootSecret}, {s.PutProfile, putKey, putSecret}, {s.ReadProfile, readKey, readSecret}, {s.WriteProfile, writeKey, writeSecret}} {
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

// PartsLanded reports whether a multipart upload under prefix has stored at
// least one part (as root): the moment a fault test kills the server.
func (s *S3Server) PartsLanded(prefix string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	root := s.Root()
	ups, err := root.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.Bucket, Prefix: &prefix})
	if err != nil {
		return false
	}
	for _, u := range ups.Uploads {
		parts, err := root.ListParts(ctx, &s3.ListPartsInput{Bucket: &s.Bucket, Key: u.Key, UploadId: u.UploadId})
		if err == nil && len(parts.Parts) > 0 {
			return true
		}
	}
	return false
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

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// ShippedPolicy turns drym's identity policies in plugins.d/s3 into one
// bucket policy a server can enforce: the same statements, each with the
// user it is for as Principal (grants: file name and principal, see
// Principal), and the placeholders filled in from vars (BUCKET, PREFIX,
// HOST, ESCROW_BUCKET, ESCROW_PREFIX).
func ShippedPolicy(t testing.TB, vars map[string]string, grants [][2]string) string {
	t.Helper()
	var pairs []string
	for _, k := range []string{"ESCROW_BUCKET", "ESCROW_PREFIX", "BUCKET", "PREFIX", "HOST"} {
		pairs = append(pairs, k, vars[k])
	}
	fill := strings.NewReplacer(pairs...)
	var all []map[string]any
	for _, g := range grants {
		file, principal := g[0], g[1]
		data, err := os.ReadFile(filepath.Join(RepoRoot(t), "plugins.d", "s3", file))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Statement []map[string]any }
		if err := json.Unmarshal([]byte(fill.Replace(string(data))), &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, s := range doc.Statement {
			s["Principal"] = map[string]any{"AWS": []string{principal}}
			s["Sid"] = fmt.Sprint(s["Sid"], len(all))
			all = append(all, s)
		}
	}
	out, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": all})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Backdate sets the stored time (LastModified) of the object key to at, and
// reports whether the server allows it. versitygw's posix backend keeps an
// object as a plain file whose mtime is its LastModified; SeaweedFS keeps
// objects in its volume servers and offers no way, through S3 or on disk, to
// change when an object was stored: tests that need old objects say so and
// prove what they can with objects stored now.
func (s *S3Server) Backdate(key string, at time.Time) bool {
	if s.Engine != "versitygw" {
		return false
	}
	if err := os.Chtimes(filepath.Join(s.Dir, "data", s.Bucket, filepath.FromSlash(key)), at, at); err != nil {
		s.t.Fatalf("backdate %s: %v", key, err)
	}
	return true
}

// CanBackdate reports whether Backdate works on this server.
func (s *S3Server) CanBackdate() bool { return s.Engine == "versitygw" }
