package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ReadRange implements Pager: one GET with a Range header.
func (s *S3) ReadRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	key := s.key(name)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.bucket, Key: &key, Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			return nil, nil // past the end (or an empty object)
		}
		return nil, s.wrapRead("GetObject", key, err)
	}
	defer out.Body.Close()
	// A server that ignores Range sends the whole object: read no more
	// than was asked for either way.
	data, err := io.ReadAll(io.LimitReader(out.Body, n))
	if err != nil {
		return nil, s.wrapRead("GetObject", key, err)
	}
	return data, nil
}

// ListPage implements Pager: one ListObjectsV2 request.
func (s *S3) ListPage(ctx context.Context, prefix, startAfter, token string, max int) (Page, error) {
	in := &s3.ListObjectsV2Input{
		Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix), Delimiter: aws.String("/"),
		MaxKeys: aws.Int32(int32(max)),
	}
	switch {
	case token != "":
		in.ContinuationToken = aws.String(token)
	case startAfter != "":
		in.StartAfter = aws.String(s.prefix + startAfter)
	}
	out, err := s.client.ListObjectsV2(ctx, in)
	if err != nil {
		return Page{}, s.wrapRead("ListObjectsV2", s.prefix+prefix, err)
	}
	var p Page
	for _, o := range out.Contents {
		if i, ok := s.info(o); ok {
			p.Objects = append(p.Objects, i)
		}
	}
	if aws.ToBool(out.IsTruncated) {
		p.Next = aws.ToString(out.NextContinuationToken)
	}
	return p, nil
}

// ListDirs implements Pager: the common prefixes under the store's prefix,
// one ListObjectsV2 request with a delimiter.
func (s *S3) ListDirs(ctx context.Context, token string, max int) ([]string, string, error) {
	in := &s3.ListObjectsV2Input{
		Bucket: &s.bucket, Prefix: aws.String(s.prefix), Delimiter: aws.String("/"),
		MaxKeys: aws.Int32(int32(max)),
	}
	if token != "" {
		in.ContinuationToken = aws.String(token)
	}
	out, err := s.client.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, "", s.wrapRead("ListObjectsV2", s.prefix, err)
	}
	var dirs []string
	for _, cp := range out.CommonPrefixes {
		d := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), s.prefix), "/")
		if d != "" && !strings.Contains(d, "/") {
			dirs = append(dirs, d)
		}
	}
	next := ""
	if aws.ToBool(out.IsTruncated) {
		next = aws.ToString(out.NextContinuationToken)
	}
	return dirs, next, nil
}

// wrapRead is wrap with refusals told apart (ErrDenied): on the monitoring
// side a denied read is the read-only policy at work, not a fault.
func (s *S3) wrapRead(op, key string, err error) error {
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	denied := errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled":
			denied = true
		}
	}
	if denied {
		return fmt.Errorf("%w: %w", s.wrap(op, key, err), ErrDenied)
	}
	return s.wrap(op, key, err)
}
