package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/drym-backup/drym/internal/status"
)

// ProbeName is the one object the append-only probes write into a backup
// store's scope. It is written once; later probes send the same bytes again
// with If-None-Match: *, which a server that keeps its promise refuses (412)
// and one that does not overwrites with identical bytes: harmless either way.
// Backup names never look like it, so list, test-restore and restore pass it
// by.
const ProbeName = "drym-append-only-probe"

// ProbeContent is the fixed content of a probe object.
var ProbeContent = []byte("drym append-only probe: backup_runner writes this object once and sends it\n" +
	"again with If-None-Match: * to see that the server refuses to replace an\n" +
	"existing object. It holds nothing else and is safe to keep.\n")

// Probe is the outcome of one probe request.
type Probe struct {
	// Result is one of the status.Probe* words ("denied", "allowed",
	// "refused", "ignored", "enabled", "suspended", "off", "unknown"), or,
	// for the doctor's own probes, "ok", "present", "none", "unsupported".
	Result string
	// HTTP is the server's status code (0 when it did not answer) and Code
	// its error code, for the doctor's table.
	HTTP int
	Code string
	// Detail says more, in a few words (rules found, why unknown).
	Detail string
	// Err is set when Result is "unknown".
	Err error
}

// Doctor's own outcomes, beside the status.Probe* words.
const (
	ProbeOK          = "ok"
	ProbePresent     = "present"
	ProbeNone        = "none"
	ProbeUnsupported = "unsupported"
)

// Promise is everything the append-only probes found.
type Promise struct {
	// Upload is the first conditional PUT of the probe object: "ok" (it
	// was created, or already existed: the credentials may write), "denied"
	// or "unknown".
	Upload Probe
	// Created is true when this run created the probe object.
	Created                bool
	Overwrite              Probe
	Delete, DeleteVersion  Probe
	Versioning, ObjectLock Probe
	// ServerDate is the Date header of the first answer and LocalDate this
	// host's clock when it came (zero when the server sent none).
	ServerDate, LocalDate time.Time
	// Marker names a delete marker the delete probe left behind in a
	// versioned bucket and could not remove (the credentials may delete
	// objects but not versions); empty when nothing was left.
	Marker string
	// Unreachable is true when the endpoint did not answer the first
	// request (refused, timed out): the other probes were not sent, since
	// they would only have waited for it too.
	Unreachable bool
}

// AppendOnly is the record of p for backup.json.
func (p *Promise) AppendOnly(now time.Time) status.AppendOnly {
	a := status.AppendOnly{
		Checked: now.UTC(), Delete: p.Delete.Result, DeleteVersion: p.DeleteVersion.Result,
		Overwrite: p.Overwrite.Result, Versioning: p.Versioning.Result, ObjectLock: p.ObjectLock.Result,
	}
	a.Held = a.Holds()
	if !a.Held {
		// Why the verdict could not be proven, most telling probe first.
		for _, pr := range []Probe{p.Upload, p.Overwrite, p.DeleteVersion, p.Delete, p.Versioning, p.ObjectLock} {
			if pr.Err != nil {
				a.Error = oneLine(pr.Err.Error())
				break
			}
		}
	}
	return a
}

// ProbePromise runs the cheap probes of the append-only promise with s's
// credentials: a conditional PUT of name with content (a second one when
// the first created it), a DELETE of a random name that does not exist,
// plain and of version "null", and the bucket's versioning and Object Lock
// settings. It leaves nothing behind but name (see ProbeName).
func (s *S3) ProbePromise(ctx context.Context, name string, content []byte) *Promise {
	p := &Promise{}
	key := s.key(name)
	put := func() (*s3.PutObjectOutput, error) {
		return s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(content),
			ContentLength: aws.Int64(int64(len(content))), IfNoneMatch: aws.String("*"),
		})
	}
	out, err := put()
	p.ServerDate, p.LocalDate = serverDate(metadataOf(out), err), time.Now()
	switch code, st := errCode(err); {
	case err == nil:
		p.Upload, p.Created = Probe{Result: ProbeOK, HTTP: 200}, true
	case st == http.StatusPreconditionFailed || code == "PreconditionFailed":
		// Authorised, then refused: the object exists and stays.
		p.Upload = Probe{Result: ProbeOK, HTTP: st, Code: code, Detail: "exists already"}
		p.Overwrite = Probe{Result: status.ProbeRefused, HTTP: st, Code: code}
	case denied(st, code):
		p.Upload = Probe{Result: status.ProbeDenied, HTTP: st, Code: code, Err: s.wrap("PutObject", key, err)}
	default:
		p.Upload = unknown(st, code, s.wrap("PutObject", key, err))
		var dnsErr *net.DNSError
		if st == 0 && !errors.As(err, &dnsErr) {
			p.Unreachable = true
			p.Overwrite, p.Delete, p.DeleteVersion, p.Versioning, p.ObjectLock = p.Upload, p.Upload, p.Upload, p.Upload, p.Upload
			return p
		}
	}
	if p.Created {
		_, err := put()
		switch code, st := errCode(err); {
		case err == nil:
			p.Overwrite = Probe{Result: status.ProbeIgnored, HTTP: 200, Detail: "a repeated PUT with If-None-Match: * replaced the object"}
		case st == http.StatusPreconditionFailed || code == "PreconditionFailed":
			p.Overwrite = Probe{Result: status.ProbeRefused, HTTP: st, Code: code}
		default:
			p.Overwrite = unknown(st, code, s.wrap("PutObject", key, err))
		}
	}
	if p.Overwrite.Result == "" {
		p.Overwrite = Probe{Result: status.ProbeUnknown, Err: errors.New("the probe object could not be written")}
	}

	absent := s.key(name + "-absent-" + randomHex())
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &absent, VersionId: aws.String("null")})
	p.DeleteVersion = deleteOutcome(err, s.wrap("DeleteObject (version)", absent, err))
	dout, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &absent})
	p.Delete = deleteOutcome(err, s.wrap("DeleteObject", absent, err))
	if err == nil && aws.ToBool(dout.DeleteMarker) && aws.ToString(dout.VersionId) != "" {
		// A versioned bucket answered the delete of a name that does not
		// exist with a delete marker: take it away again if we may.
		if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &absent, VersionId: dout.VersionId}); err != nil {
			p.Marker = absent
		}
	}

	p.Versioning = s.ProbeVersioning(ctx)
	p.ObjectLock = s.ProbeObjectLock(ctx)
	return p
}

// ProbeVersioning reads the bucket's versioning: "enabled", "suspended",
// "off", or "unknown" (not readable with these credentials).
func (s *S3) ProbeVersioning(ctx context.Context) Probe {
	out, err := s.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &s.bucket})
	switch code, st := errCode(err); {
	case err == nil && out.Status == types.BucketVersioningStatusEnabled:
		return Probe{Result: status.ProbeEnabled, HTTP: 200}
	case err == nil && out.Status == types.BucketVersioningStatusSuspended:
		return Probe{Result: status.ProbeSuspended, HTTP: 200}
	case err == nil:
		return Probe{Result: status.ProbeOff, HTTP: 200}
	case st == http.StatusNotImplemented || code == "NotImplemented":
		return Probe{Result: status.ProbeOff, HTTP: st, Code: code, Detail: "the server does not implement versioning"}
	default:
		return unknown(st, code, s.wrap("GetBucketVersioning", "", err))
	}
}

// ProbeObjectLock reads the bucket's Object Lock: "enabled" when every new
// object gets a default retention, "off", or "unknown".
func (s *S3) ProbeObjectLock(ctx context.Context) Probe {
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &s.bucket})
	switch code, st := errCode(err); {
	case err == nil && out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled:
		if r := out.ObjectLockConfiguration.Rule; r != nil && r.DefaultRetention != nil {
			d := r.DefaultRetention
			return Probe{Result: status.ProbeEnabled, HTTP: 200,
				Detail: fmt.Sprintf("default retention %s %s", strings.ToLower(string(d.Mode)), retention(d))}
		}
		return Probe{Result: status.ProbeOff, HTTP: 200, Detail: "enabled, but without a default retention new objects are not locked"}
	case err == nil:
		return Probe{Result: status.ProbeOff, HTTP: 200}
	case code == "ObjectLockConfigurationNotFoundError" || st == http.StatusNotFound:
		return Probe{Result: status.ProbeOff, HTTP: st, Code: code}
	case st == http.StatusNotImplemented || code == "NotImplemented":
		return Probe{Result: status.ProbeOff, HTTP: st, Code: code, Detail: "the server does not implement Object Lock"}
	default:
		return unknown(st, code, s.wrap("GetObjectLockConfiguration", "", err))
	}
}

func retention(d *types.DefaultRetention) string {
	if d.Years != nil {
		return fmt.Sprintf("%d years", *d.Years)
	}
	return fmt.Sprintf("%d days", aws.ToInt32(d.Days))
}

// deleteOutcome judges a DELETE of a name that does not exist: the server
// authorises before it looks, so 403 means denied and an answer of 2xx or
// 404 means the credentials may delete.
func deleteOutcome(err, wrapped error) Probe {
	code, st := errCode(err)
	switch {
	case err == nil:
		return Probe{Result: status.ProbeAllowed, HTTP: 204}
	case denied(st, code) || st == http.StatusMethodNotAllowed:
		return Probe{Result: status.ProbeDenied, HTTP: st, Code: code}
	case st == http.StatusNotFound:
		return Probe{Result: status.ProbeAllowed, HTTP: st, Code: code}
	}
	return unknown(st, code, wrapped)
}

// ProbeRead reports whether s's credentials can read name: "allowed",
// "denied" (or "none" when name does not exist but reading was allowed to
// try), or "unknown".
func (s *S3) ProbeRead(ctx context.Context, name string) Probe {
	key := s.key(name)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(out.Body, 1<<20))
		out.Body.Close()
		if err == nil {
			return Probe{Result: status.ProbeAllowed, HTTP: 200}
		}
	}
	code, st := errCode(err)
	switch {
	case denied(st, code):
		return Probe{Result: status.ProbeDenied, HTTP: st, Code: code}
	case st == http.StatusNotFound && code != "NoSuchBucket":
		return Probe{Result: ProbeNone, HTTP: st, Code: code}
	}
	return unknown(st, code, s.wrap("GetObject", key, err))
}

// ProbeList reports whether s's credentials can list the names in its
// scope that start with prefix.
func (s *S3) ProbeList(ctx context.Context, prefix string) Probe {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix), MaxKeys: aws.Int32(1)})
	if err == nil {
		return Probe{Result: status.ProbeAllowed, HTTP: 200}
	}
	code, st := errCode(err)
	if denied(st, code) {
		return Probe{Result: status.ProbeDenied, HTTP: st, Code: code}
	}
	return unknown(st, code, s.wrap("ListObjectsV2", s.prefix+prefix, err))
}

// ProbeLifecycle reads the bucket's lifecycle rules: "present" when an
// enabled rule expires objects in s's scope (Detail says which and when),
// "none", "unsupported" (the server has no lifecycle rules), or "unknown"
// (not readable with these credentials).
func (s *S3) ProbeLifecycle(ctx context.Context) Probe {
	out, err := s.client.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &s.bucket})
	code, st := errCode(err)
	switch {
	case err == nil:
	case code == "NoSuchLifecycleConfiguration" || st == http.StatusNotFound:
		return Probe{Result: ProbeNone, HTTP: st, Code: code}
	case st == http.StatusNotImplemented || code == "NotImplemented":
		return Probe{Result: ProbeUnsupported, HTTP: st, Code: code}
	default:
		return unknown(st, code, s.wrap("GetBucketLifecycleConfiguration", "", err))
	}
	var found []string
	for _, r := range out.Rules {
		if r.Status != types.ExpirationStatusEnabled {
			continue
		}
		//lint:ignore SA1019 some servers still send the old form, the prefix outside a filter
		prefix := aws.ToString(r.Prefix)
		if r.Filter != nil && r.Filter.Prefix != nil {
			prefix = *r.Filter.Prefix
		}
		if !strings.HasPrefix(s.prefix, prefix) {
			continue
		}
		var what []string
		if r.Expiration != nil && aws.ToInt32(r.Expiration.Days) > 0 {
			what = append(what, fmt.Sprintf("expires objects after %d days", aws.ToInt32(r.Expiration.Days)))
		}
		if r.AbortIncompleteMultipartUpload != nil && aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation) > 0 {
			what = append(what, fmt.Sprintf("aborts uploads after %d days", aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation)))
		}
		if r.NoncurrentVersionExpiration != nil && aws.ToInt32(r.NoncurrentVersionExpiration.NoncurrentDays) > 0 {
			what = append(what, fmt.Sprintf("expires old versions after %d days", aws.ToInt32(r.NoncurrentVersionExpiration.NoncurrentDays)))
		}
		if len(what) > 0 {
			found = append(found, fmt.Sprintf("%q %s", aws.ToString(r.ID), strings.Join(what, ", ")))
		}
	}
	if len(found) == 0 {
		return Probe{Result: ProbeNone, HTTP: 200, Detail: fmt.Sprintf("%d rule(s), none enabled for %s", len(out.Rules), s.url)}
	}
	return Probe{Result: ProbePresent, HTTP: 200, Detail: strings.Join(found, "; ")}
}

// Endpoint, Region and PathStyle say how s reaches the server: the
// endpoint as configured or from the AWS environment (empty for AWS
// itself), the signing region, and the addressing style.
func (s *S3) Endpoint() string { return aws.ToString(s.client.Options().BaseEndpoint) }

// Region is the signing region.
func (s *S3) Region() string { return s.client.Options().Region }

// PathStyle reports path-style addressing (virtual-hosted otherwise).
func (s *S3) PathStyle() bool { return s.client.Options().UsePathStyle }

func unknown(st int, code string, err error) Probe {
	return Probe{Result: status.ProbeUnknown, HTTP: st, Code: code, Err: err}
}

func denied(st int, code string) bool {
	return st == http.StatusForbidden || code == "AccessDenied"
}

// errCode returns the S3 error code and HTTP status of err ("" and 0 when
// the server did not answer).
func errCode(err error) (string, int) {
	if err == nil {
		return "", 0
	}
	var code string
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return code, re.HTTPStatusCode()
	}
	return code, 0
}

// metadataOf returns the result metadata of an SDK output (nil-safe).
func metadataOf(out *s3.PutObjectOutput) *middleware.Metadata {
	if out == nil {
		return nil
	}
	return &out.ResultMetadata
}

// serverDate is the Date header of an answer, success or error.
func serverDate(md *middleware.Metadata, err error) time.Time {
	var resp *smithyhttp.Response
	if md != nil {
		resp, _ = awsmw.GetRawResponse(*md).(*smithyhttp.Response)
	}
	var re *smithyhttp.ResponseError
	if resp == nil && errors.As(err, &re) {
		resp = re.Response
	}
	if resp == nil || resp.Response == nil {
		return time.Time{}
	}
	t, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	return t
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
