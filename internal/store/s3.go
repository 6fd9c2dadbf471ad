package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/drym-backup/drym/internal/config"
)

// S3 is a store in an S3 bucket under a key prefix.
//
// Uploads stream: a multipart upload with a small, fixed number of part
// buffers in flight, so memory does not grow with the object. Every write
// carries If-None-Match: * so an existing key is never replaced, and the
// uploads need nothing but s3:PutObject (CreateMultipartUpload, UploadPart and
// CompleteMultipartUpload are all authorised by it).
type S3 struct {
	client *s3.Client
	bucket string
	prefix string // "" or ends in "/"
	url    string
	// PartSize is the size of the first parts; see partSize.
	PartSize int
	// Concurrency is how many parts upload at once.
	Concurrency int
}

// Upload tuning. 8 MiB parts with two in flight plus one filling keep the
// upload's memory near 24 MiB; parts grow later so 10,000 parts still reach
// hundreds of GB.
const (
	defaultPartSize    = 8 << 20
	defaultConcurrency = 2
	maxParts           = 10000
)

// NewS3 connects to the bucket of loc with the credentials for access.
func NewS3(ctx context.Context, loc config.Location, remote config.Remote, sub string, access Access) (*S3, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		// S3-compatible servers reject the SDK's default trailing CRC32
		// checksums; send and check them only where the API requires.
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		awsconfig.WithHTTPClient(httpClient()),
		awsconfig.WithRetryMaxAttempts(3),
	}
	profile := remote.Profile
	if access == Read {
		profile = remote.ReadProfile
	}
	if profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
	}
	if remote.Region != "" {
		opts = append(opts, awsconfig.WithRegion(remote.Region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot load AWS settings (profile %q): %w", profile, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // S3-compatible servers accept any; AWS redirects
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if remote.Endpoint != "" {
			o.BaseEndpoint = aws.String(remote.Endpoint)
		}
		o.UsePathStyle = remote.PathStyle
	})
	prefix := loc.Prefix
	if sub != "" {
		if prefix != "" {
			prefix += "/"
		}
		prefix += sub
	}
	if prefix != "" {
		prefix += "/"
	}
	return &S3{
		client: client, bucket: loc.Bucket, prefix: prefix,
		url:      "s3://" + loc.Bucket + "/" + prefix,
		PartSize: defaultPartSize, Concurrency: defaultConcurrency,
	}, nil
}

// httpClient fails fast on an unreachable endpoint but lets a slow upload
// take its time. It is the SDK's buildable client so AWS_CA_BUNDLE (a
// private CA for an on-premises S3) still works.
func httpClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = 10 * time.Second
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = 10 * time.Second
			tr.ResponseHeaderTimeout = 2 * time.Minute
			tr.MaxIdleConnsPerHost = 8
			tr.IdleConnTimeout = 60 * time.Second
		})
}

func (s *S3) String() string { return s.url }

func (s *S3) key(name string) string { return s.prefix + name }

// Put implements Store.
func (s *S3) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := validName(name); err != nil {
		return 0, err
	}
	key := s.key(name)
	first := make([]byte, s.PartSize)
	n, err := io.ReadFull(ctxReader{ctx, r}, first)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// Small object: one PutObject.
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(first[:n]),
			ContentLength: aws.Int64(int64(n)), IfNoneMatch: aws.String("*"),
		})
		if err != nil {
			return 0, s.wrap("PutObject", key, err)
		}
		return int64(n), nil
	}
	if err != nil {
		return 0, err
	}
	return s.multipart(ctx, key, first, r)
}

type part struct {
	num  int32
	data []byte
}

// upload is one multipart upload in flight: conc workers send parts while
// the caller's goroutine reads the next one. Buffers are recycled through
// free: conc uploading plus one filling is all the memory an upload holds.
type upload struct {
	s      *S3
	ctx    context.Context
	cancel context.CancelFunc
	key    string
	id     *string
	parts  chan part
	free   chan []byte
	wg     sync.WaitGroup

	mu        sync.Mutex
	completed []types.CompletedPart
	firstErr  error
}

func (s *S3) multipart(ctx context.Context, key string, first []byte, r io.Reader) (total int64, err error) {
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, s.wrap("CreateMultipartUpload", key, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		if err != nil {
			// Best effort: put-only credentials may not allow the abort; the
			// bucket's lifecycle rule removes the parts after 7 days. Either
			// way no object is visible under key.
			actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer acancel()
			_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: up.UploadId})
		}
	}()
	conc := max(s.Concurrency, 1)
	u := &upload{s: s, ctx: ctx, cancel: cancel, key: key, id: up.UploadId,
		parts: make(chan part), free: make(chan []byte, conc+1)}
	for range conc {
		u.wg.Go(u.work)
	}
	total, readErr := u.feed(first, r)
	close(u.parts)
	u.wg.Wait()
	// A failed part cancels ctx, which makes the reader fail with "context
	// canceled": the part's error is the cause and must be what the status
	// file says (e.g. the endpoint went away), so it comes first.
	switch {
	case u.firstErr != nil:
		return total, u.firstErr
	case readErr != nil:
		return total, readErr
	case ctx.Err() != nil:
		return total, ctx.Err()
	}
	sortParts(u.completed)
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.completed},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		return total, s.wrap("CompleteMultipartUpload", key, err)
	}
	return total, nil
}

// work uploads parts until there are no more; the first failure cancels
// the upload.
func (u *upload) work() {
	for p := range u.parts {
		out, err := u.s.client.UploadPart(u.ctx, &s3.UploadPartInput{
			Bucket: &u.s.bucket, Key: &u.key, UploadId: u.id, PartNumber: aws.Int32(p.num),
			Body: bytes.NewReader(p.data), ContentLength: aws.Int64(int64(len(p.data))),
		})
		u.mu.Lock()
		switch {
		case err != nil && u.firstErr == nil:
			u.firstErr = u.s.wrap(fmt.Sprintf("UploadPart %d", p.num), u.key, err)
			u.cancel()
		case err == nil:
			u.completed = append(u.completed, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(p.num)})
		}
		u.mu.Unlock()
		u.free <- p.data[:cap(p.data)]
	}
}

// feed hands first and then the rest of r, part by part, to the workers,
// and returns the bytes handed over and why reading stopped (nil at the
// end of r).
func (u *upload) feed(first []byte, r io.Reader) (total int64, readErr error) {
	buf := first
	var num int32 = 1
	for {
		total += int64(len(buf))
		select {
		case u.parts <- part{num: num, data: buf}:
		case <-u.ctx.Done():
		}
		if u.ctx.Err() != nil || readErr != nil {
			break
		}
		num++
		if num > maxParts {
			return total, fmt.Errorf("object too large: more than %d parts", maxParts)
		}
		size := partSize(u.s.PartSize, num)
		select {
		case buf = <-u.free:
		default:
			buf = nil
		}
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		n, err := io.ReadFull(ctxReader{u.ctx, r}, buf)
		buf = buf[:n]
		if err == io.EOF {
			break // the previous part was the last
		}
		if err == io.ErrUnexpectedEOF {
			readErr = io.EOF // send this short last part, then stop
			continue
		}
		if err != nil {
			return total, err
		}
	}
	if readErr == io.EOF {
		readErr = nil
	}
	return total, readErr
}

// partSize grows the part size every 1,000 parts, so the 10,000-part limit
// allows 8 MiB × 55,000 ≈ 430 GiB while small backups keep small buffers.
func partSize(base int, num int32) int {
	return base * (1 + int(num-1)/1000)
}

func sortParts(p []types.CompletedPart) {
	slices.SortFunc(p, func(a, b types.CompletedPart) int { return cmp.Compare(*a.PartNumber, *b.PartNumber) })
}

// Open implements Store.
func (s *S3) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	key := s.key(name)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, s.wrap("GetObject", key, err)
	}
	return out.Body, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, name string) (Info, error) {
	if err := validName(name); err != nil {
		return Info{}, err
	}
	key := s.key(name)
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Info{}, s.wrap("HeadObject", key, err)
	}
	i := Info{Name: name, Size: aws.ToInt64(out.ContentLength)}
	if out.LastModified != nil {
		i.ModTime = *out.LastModified
	}
	return i, nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string, fn func(Info) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix), Delimiter: aws.String("/"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.wrap("ListObjectsV2", s.prefix+prefix, err)
		}
		for _, o := range page.Contents {
			i, ok := s.info(o)
			if !ok {
				continue
			}
			if err := fn(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// styleHint is added to errors that the wrong addressing style causes too:
// a server on its own endpoint that wants path-style requests reads a
// virtual-hosted request's path as bucket and key, and answers for a bucket
// the request never named.
func (s *S3) styleHint() string {
	if s.PathStyle() || s.Endpoint() == "" {
		return ""
	}
	return " (or the endpoint wants path-style requests: path_style = true; backup_runner doctor tries both)"
}

// otherStyle names the addressing style s does not use.
func (s *S3) otherStyle() string {
	if s.PathStyle() {
		return "virtual-hosted addressing"
	}
	return "path-style addressing"
}

// wrap turns the SDK's long error chains into one line that names the
// object, the operation and the cause.
func (s *S3) wrap(op, key string, err error) error {
	where := "s3://" + s.bucket + "/" + key
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch {
		case status == http.StatusPreconditionFailed || code == "PreconditionFailed" || code == "ConditionalRequestConflict":
			return fmt.Errorf("%s: %w", where, ErrExists)
		case code == "NoSuchBucket":
			return fmt.Errorf("%s: %s: bucket %q does not exist (create it, or fix the URL in the settings; if it does exist, the server may want %s: set path_style = %t)",
				where, op, s.bucket, s.otherStyle(), !s.PathStyle())
		case status == http.StatusNotFound || code == "NoSuchKey" || code == "NotFound":
			return fmt.Errorf("%s: %w", where, ErrNotFound)
		case status == http.StatusForbidden || code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
			return fmt.Errorf("%s: %s denied (%s): check the credentials and the bucket policy for this profile%s", where, op, code, s.styleHint())
		}
		if status == http.StatusBadGateway {
			// A proxy between this host and the endpoint answers 502 when
			// the endpoint hung up on it mid-request, which S3 servers do
			// when they refuse a request before reading its body.
			return fmt.Errorf("%s: %s: a proxy between this host and the endpoint says the endpoint failed (%s), as happens when the endpoint refuses a request and hangs up: check the credentials and the bucket policy for this profile%s, then the proxy",
				where, op, code, s.styleHint())
		}
		msg := ae.ErrorMessage()
		if msg == "" {
			msg = http.StatusText(status)
		}
		return fmt.Errorf("%s: %s failed: %s: %s", where, op, code, msg)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %s: %w", where, op, context.Canceled)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s: timed out: %w", where, op, context.DeadlineExceeded)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Errorf("%s: %s: the endpoint's TLS certificate is not signed by a CA this host trusts (for a private CA, point AWS_CA_BUNDLE at its PEM file): %v", where, op, ua)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		hint := ""
		if !s.PathStyle() && strings.HasPrefix(dnsErr.Name, s.bucket+".") {
			// Virtual-hosted addressing puts the bucket in the host name,
			// which most on-premises servers have no DNS record for.
			hint = " (virtual-hosted addressing asks for the bucket as a host name; for a server that wants path-style requests set path_style = true)"
		}
		return fmt.Errorf("%s: %s: cannot resolve %s: %v%s", where, op, dnsErr.Name, dnsErr.Err, hint)
	}
	var oe *net.OpError
	hasOp := errors.As(err, &oe)
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		cause := err
		if hasOp {
			cause = oe
		}
		// The connection was up, so the endpoint is reachable. A server that
		// refuses a request before reading its body (wrong credentials, a
		// policy that does not allow this profile to put) may answer and
		// hang up at once; the reset can then arrive before the answer, so
		// the refusal is the likeliest cause and the hint says so.
		return fmt.Errorf("%s: %s: the endpoint hung up mid-request, as S3 servers do when they refuse one: check the credentials and the bucket policy for this profile%s, then any proxy in between: %v", where, op, s.styleHint(), cause)
	}
	if hasOp {
		return fmt.Errorf("%s: %s: cannot reach the endpoint: %v", where, op, oe)
	}
	if status != 0 {
		return fmt.Errorf("%s: %s failed: HTTP %d", where, op, status)
	}
	return fmt.Errorf("%s: %s: %w", where, op, err)
}

// info describes a listed object by its name within the store; ok is false
// for what is not an object of the store's own level (a key in a deeper
// folder, or the prefix itself).
func (s *S3) info(o types.Object) (Info, bool) {
	name := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
	if name == "" || strings.Contains(name, "/") {
		return Info{}, false
	}
	i := Info{Name: name, Size: aws.ToInt64(o.Size)}
	if o.LastModified != nil {
		i.ModTime = *o.LastModified
	}
	return i, true
}
