package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	s3Key    = "drymbench"
	s3Secret = "drymbenchsecret0123456789"
	s3Bucket = "drym-bench"
)

// s3Server is an S3 server on 127.0.0.1 (versitygw, or SeaweedFS's weed
// server) plus a counting reverse proxy in front of it (for the request
// counts of check_backup_age --remote).
type s3Server struct {
	engine   string // "versitygw" or "seaweedfs"
	cmd      *exec.Cmd
	endpoint string // the server itself
	proxy    string // the counting proxy
	requests atomic.Int64
	reqLog   []string
	mu       sync.Mutex
	srv      *http.Server
	client   *s3.Client
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).AddrPort().String()
}

func (b *bench) s3Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s3Key, "AWS_SECRET_ACCESS_KEY=" + s3Secret, "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
}

// s3Engines are the servers the S3 figures are taken on.
var s3Engines = []string{"versitygw", "seaweedfs"}

// tool finds a test tool on PATH or in the tools cache (.ci/run installs
// them there).
func tool(name, how string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join(os.Getenv("HOME"), ".cache/drym-tools/bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is needed: %s", name, how)
	}
	return p, nil
}

// startS3 starts engine on 127.0.0.1 with root keys s3Key/s3Secret and
// bucket s3Bucket, and sets b.s3.
func (b *bench) startS3(engine string) error {
	d := filepath.Join(b.dir, "s3-"+engine)
	os.RemoveAll(d)
	addr := freePort()
	s := &s3Server{engine: engine, endpoint: "http://" + addr}
	log, _ := os.Create(d + ".log")
	var cmd *exec.Cmd
	switch engine {
	case "versitygw":
		bin, err := tool("versitygw", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
		if err != nil {
			return err
		}
		for _, sub := range []string{"iam", "data"} {
			os.MkdirAll(filepath.Join(d, sub), 0o755)
		}
		cmd = exec.Command(bin, "--port", addr, "--iam-dir", filepath.Join(d, "iam"), "posix", filepath.Join(d, "data"))
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s3Key, "ROOT_SECRET_KEY="+s3Secret)
	case "seaweedfs":
		bin, err := tool("weed", ".ci/run builds it into ~/.cache/drym-tools/bin")
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Join(d, "data"), 0o755)
		ids := fmt.Sprintf(`{"identities":[{"name":"bench","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","List","Tagging","Write"]}]}`, s3Key, s3Secret)
		if err := os.WriteFile(filepath.Join(d, "identities.json"), []byte(ids), 0o600); err != nil {
			return err
		}
		port := func() string { _, p, _ := net.SplitHostPort(freePort()); return p }
		_, s3Port, _ := net.SplitHostPort(addr)
		// master, volume server, filer and S3 gateway in one process, each
		// on its own ports (gRPC ports given too: their default, port +
		// 10000, may be taken).
		cmd = exec.Command(bin, "server", "-dir="+filepath.Join(d, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-volume.max=5",
			"-master.port="+port(), "-master.port.grpc="+port(), "-master.telemetry=false",
			"-volume.port="+port(), "-volume.port.grpc="+port(),
			"-filer.port="+port(), "-filer.port.grpc="+port(), "-filer.localSocket="+filepath.Join(d, "filer.sock"),
			"-s3", "-s3.port="+s3Port, "-s3.port.grpc="+port(), "-s3.localSocket="+filepath.Join(d, "s3.sock"),
			"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config="+filepath.Join(d, "identities.json"))
	default:
		return fmt.Errorf("unknown S3 engine %q", engine)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", engine, err)
	}
	s.cmd = cmd
	b.s3 = s
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.endpoint)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start on %s (log: %s)", engine, s.endpoint, log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The proxy keeps the Host header the client signed.
	target, _ := url.Parse(s.endpoint)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	paddr := freePort()
	s.proxy = "http://" + paddr
	s.srv = &http.Server{Addr: paddr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.reqLog = append(s.reqLog, r.Method+" "+r.URL.RequestURI())
		s.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	l, err := net.Listen("tcp", paddr)
	if err != nil {
		return err
	}
	go s.srv.Serve(l)
	s.client = s3.New(s3.Options{
		BaseEndpoint: aws.String(s.endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(s3Key, s3Secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	// SeaweedFS's gateway answers before its filer is ready, and its first
	// write waits for the first volumes: retry, then write once (outside
	// the measured runs).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: create bucket: %w", engine, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Until the first volumes exist a write may fail with a 500
	// InternalError, even after the SDK's own retries: retry here too.
	for {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String("warm-up"), Body: strings.NewReader("x")})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: first write: %w", engine, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.note("%s on 127.0.0.1 ready for writes %s after its start", engine, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// s3Figures takes the S3 figures on one server: the backup throughput,
// and on versitygw the request count of check_backup_age --remote (a
// property of drym, not of the server).
func (b *bench) s3Figures(engine string) error {
	if err := b.startS3(engine); err != nil {
		return err
	}
	defer b.s3.stop()
	if err := b.s3Backup(); err != nil {
		return err
	}
	if engine == "versitygw" {
		if err := b.remoteRequests(); err != nil {
			return err
		}
		// The fleet sweep stocks versitygw's posix directory directly,
		// so it runs while this server is up (fleet.go).
		return b.fleet()
	}
	return nil
}

func (s *s3Server) stop() {
	if s.srv != nil {
		s.srv.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd.Wait()
	}
}

// awsCLI finds an aws-cli that runs (/usr/bin/aws first: a pyenv shim may
// shadow it without a working install behind it).
func awsCLI() (string, error) {
	for _, c := range []string{"/usr/bin/aws", "aws"} {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if exec.Command(p, "--version").Run() == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("aws-cli is needed: apt-get install awscli")
}

// s3Backup: backup_runner backup to the current S3 server (b.s3) vs the
// stock pipeline into aws s3 cp.
func (b *bench) s3Backup() error {
	awsBin, err := awsCLI()
	if err != nil {
		return err
	}
	tree := b.s3Tree
	if tree == "" {
		return fmt.Errorf("the S3 figures need a server tree (-scales)")
	}
	cfg := b.config(fmt.Sprintf("s3-%s-%s", b.s3.engine, filepath.Base(tree)), []string{tree}, "s3://"+s3Bucket+"/drym", b.s3, b.s3.endpoint)
	fmt.Printf("backup to S3 (%s), %s (%d runs each)\n", b.s3.engine, filepath.Base(tree), b.runs)
	env := append(b.gpgEnv(), b.s3Env()...)
	var bestD, bestS time.Duration
	for i := range b.runs {
		dm, err := b.measure(b.s3Env(), b.binary("backup_runner"), "--config", cfg, "-q", "backup")
		d := dm.wall
		if err != nil {
			return err
		}
		stock := fmt.Sprintf("tar -cf - -C %s %s | zstd -1 -q | %s | %s --endpoint-url %s s3 cp - s3://%s/stock/%d.tar.zst.gpg --only-show-errors",
			filepath.Dir(tree), filepath.Base(tree), b.stockEncrypt(), awsBin, b.s3.endpoint, s3Bucket, i)
		sm, err := b.measure(env, "bash", "-o", "pipefail", "-c", stock)
		s := sm.wall
		if err != nil {
			return err
		}
		fmt.Printf("  run %d: drym %s, stock %s\n", i+1, secs(d), secs(s))
		if i == 0 || d < bestD {
			bestD = d
		}
		if i == 0 || s < bestS {
			bestS = s
		}
	}
	r := bestS.Seconds() / bestD.Seconds()
	n := b.s3Bytes
	b.add(row{fmt.Sprintf("backup → S3 (%s), %s: throughput", b.s3.engine, filepath.Base(tree)), gb(n, bestD) + " (" + secs(bestD) + ")",
		gb(n, bestS) + " (" + secs(bestS) + ")", fmt.Sprintf("%.2f×", r), "≥ 1.00", verdict(r >= 1.0)})
	return nil
}

// remoteRequests: requests check_backup_age --remote makes with 10 and with
// 10,000 objects stored for the host.
func (b *bench) remoteRequests() error {
	small := filepath.Join(b.s3Tree, "etc0")
	counts := map[int]int64{}
	for _, n := range []int{10, 10000} {
		prefix := fmt.Sprintf("count%d", n)
		// The backup goes straight to the server; the check goes through
		// the proxy (same state dir, endpoint pointed at the proxy).
		name := "req" + prefix
		cfg := b.config(name, []string{small}, "s3://"+s3Bucket+"/"+prefix, b.s3, b.s3.endpoint)
		if err := b.fillObjects(prefix+"/bench/", n-3); err != nil { // + the backup, its statement and signature
			return err
		}
		if out, err := b.runEnv(b.s3Env(), b.binary("backup_runner"), "--config", cfg, "-q", "backup"); err != nil {
			return fmt.Errorf("backup for the request count: %v\n%s", err, out)
		}
		data, _ := os.ReadFile(cfg)
		pcfg := filepath.Join(filepath.Dir(cfg), "check.toml")
		os.WriteFile(pcfg, bytes.Replace(data, []byte(b.s3.endpoint), []byte(b.s3.proxy), 1), 0o644)
		b.s3.requests.Store(0)
		b.s3.mu.Lock()
		b.s3.reqLog = nil
		b.s3.mu.Unlock()
		out, err := b.runEnv(b.s3Env(), b.binary("check_backup_age"), "--config", pcfg, "--remote")
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			return err
		}
		counts[n] = b.s3.requests.Load()
		b.s3.mu.Lock()
		b.note("check_backup_age --remote with %d objects: %s; requests: %s", n, strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0], strings.Join(b.s3.reqLog, ", "))
		b.s3.mu.Unlock()
	}
	ok := counts[10] == counts[10000] && counts[10000] <= 3
	b.add(row{"check_backup_age --remote: S3 requests at 10 / 10,000 objects", fmt.Sprintf("%d / %d", counts[10], counts[10000]),
		"same count, ≤ 3", fmt.Sprintf("%.2f×", float64(counts[10000])/float64(max(counts[10], 1))), "1.00, ≤ 3 requests", verdict(ok)})
	return nil
}

func (b *bench) runEnv(env []string, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// fillObjects stores n older backup-named objects under prefix (names from
// 2020, so the real backup is the latest), 32 at a time.
func (b *bench) fillObjects(prefix string, n int) error {
	ctx := context.Background()
	work := make(chan int)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 32 {
		wg.Go(func() {
			for i := range work {
				t := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
				key := fmt.Sprintf("%s%s-%032x.tar.zst.gpg", prefix, t.Format("20060102T150405Z"), i)
				if _, err := b.s3.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key),
					Body: strings.NewReader("x")}); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return fmt.Errorf("filling %s: %w", prefix, err)
	}
	return nil
}
