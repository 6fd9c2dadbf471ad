package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/drym-backup/drym/internal/config"
)

// TestWrapTransportErrors pins the one-line reasons for failures below
// HTTP: an endpoint that hangs up mid-request was reached (and most likely
// refused the request), unlike one nothing answers at.
func TestWrapTransportErrors(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	s, err := NewS3(context.Background(), config.Location{Bucket: "b", Prefix: "drym"},
		config.Remote{Endpoint: "http://127.0.0.1:9", PathStyle: true, Region: "us-east-1"}, "web1", Write)
	if err != nil {
		t.Fatal(err)
	}
	opErr := func(op string, errno syscall.Errno) error {
		// Shaped like the SDK's chain: its own wrapping around the
		// transport's *net.OpError.
		return fmt.Errorf("operation error S3: PutObject, https response error: %w",
			&net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)})
	}
	for _, c := range []struct {
		name string
		err  error
		want []string
		not  string
	}{
		{"reset while sending", opErr("write", syscall.ECONNRESET),
			[]string{"s3://b/drym/web1/k: PutObject: the endpoint hung up mid-request", "check the credentials", "connection reset by peer"}, "cannot reach"},
		{"broken pipe", opErr("write", syscall.EPIPE),
			[]string{"hung up mid-request", "broken pipe"}, "cannot reach"},
		{"reset while reading the answer", opErr("read", syscall.ECONNRESET),
			[]string{"hung up mid-request"}, "cannot reach"},
		{"nothing listening", opErr("dial", syscall.ECONNREFUSED),
			[]string{"cannot reach the endpoint", "connection refused"}, "hung up"},
		{"unknown host", &net.DNSError{Err: "no such host", Name: "s3.invalid"},
			[]string{"cannot resolve s3.invalid"}, "cannot reach"},
		{"canceled", fmt.Errorf("op: %w", context.Canceled),
			[]string{"PutObject"}, "hung up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := s.wrap("PutObject", s.key("k"), c.err)
			msg := got.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, c.not) {
				t.Errorf("%q says %q", msg, c.not)
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, "operation error") {
				t.Errorf("not one short line: %q", msg)
			}
		})
	}
	if !errors.Is(s.wrap("PutObject", "k", fmt.Errorf("x: %w", context.Canceled)), context.Canceled) {
		t.Error("a cancellation must stay one for the caller")
	}
}

// A server that wants path-style requests answers a virtual-hosted one for
// a bucket it does not have and may hang up before the body is sent; a
// proxy in between turns that into 502. Either way the one line names
// path_style, which path-style stores have no use for.
func TestWrapNamesAddressingStyle(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	store := func(pathStyle bool) *S3 {
		s, err := NewS3(context.Background(), config.Location{Bucket: "b", Prefix: "drym"},
			config.Remote{Endpoint: "http://s3.example.test:9", PathStyle: pathStyle, Region: "us-east-1"}, "web1", Write)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	reset := fmt.Errorf("operation error S3: PutObject, https response error: %w",
		&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)})
	badGateway := &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusBadGateway}},
		Err:      &smithy.GenericAPIError{Code: "BadGateway", Message: "Bad Gateway"},
	}
	for _, c := range []struct {
		name      string
		pathStyle bool
		err       error
		want      []string
		not       string
	}{
		{"reset, virtual-hosted", false, reset, []string{"hung up mid-request", "path_style = true"}, "\n"},
		{"reset, path-style", true, reset, []string{"hung up mid-request"}, "path_style"},
		{"proxy 502, virtual-hosted", false, badGateway,
			[]string{"PutObject: a proxy between this host and the endpoint says the endpoint failed (BadGateway)", "check the credentials", "path_style = true", "then the proxy"}, "\n"},
		{"proxy 502, path-style", true, badGateway, []string{"a proxy between this host and the endpoint"}, "path_style"},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := store(c.pathStyle).wrap("PutObject", "drym/web1/k", c.err).Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, c.not) || strings.Contains(msg, "\n") {
				t.Errorf("%q says %q or is not one line", msg, c.not)
			}
		})
	}
}
