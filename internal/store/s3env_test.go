package store_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

// The AWS conventions a store follows where the settings say nothing: the
// endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, the credentials of
// AWS_PROFILE, the region of the profile. What the settings say wins.
// Requests go through a recording proxy, which shows where they went and
// which region signed them.
func TestS3AWSEnvironment(t *testing.T) {
	testutil.ForEachS3(t, testS3AWSEnvironment)
}

func testS3AWSEnvironment(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	proxy := testutil.StartForwardProxy(t, srv.Endpoint)
	regional := filepath.Join(t.TempDir(), "aws-config")
	if err := os.WriteFile(regional, []byte("[profile "+srv.PutProfile+"]\nregion = eu-drym-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := "http://127.0.0.1:" + testutil.FreePort(t)
	bucket := "s3://" + srv.Bucket + "/env"
	cases := []struct {
		name   string
		env    map[string]string
		remote config.Remote
		region string // signing region the proxy must see; "" when the request must not pass it
	}{
		{"endpoint from AWS_ENDPOINT_URL_S3", map[string]string{"AWS_ENDPOINT_URL_S3": proxy.URL, "AWS_ENDPOINT_URL": closed},
			config.Remote{URL: bucket, PathStyle: true, Profile: srv.PutProfile}, "us-east-1"},
		{"endpoint from AWS_ENDPOINT_URL", map[string]string{"AWS_ENDPOINT_URL": proxy.URL},
			config.Remote{URL: bucket, PathStyle: true, Profile: srv.PutProfile}, "us-east-1"},
		{"the settings' endpoint wins", map[string]string{"AWS_ENDPOINT_URL_S3": closed, "AWS_ENDPOINT_URL": closed},
			config.Remote{URL: bucket, Endpoint: proxy.URL, PathStyle: true, Profile: srv.PutProfile}, "us-east-1"},
		{"credentials of AWS_PROFILE", map[string]string{"AWS_PROFILE": srv.PutProfile},
			config.Remote{URL: bucket, Endpoint: proxy.URL, PathStyle: true}, "us-east-1"},
		{"region from the profile", map[string]string{"AWS_CONFIG_FILE": regional},
			config.Remote{URL: bucket, Endpoint: proxy.URL, PathStyle: true, Profile: srv.PutProfile}, "eu-drym-1"},
		{"the settings' region wins", map[string]string{"AWS_CONFIG_FILE": regional},
			config.Remote{URL: bucket, Endpoint: proxy.URL, PathStyle: true, Profile: srv.PutProfile, Region: "us-east-1"}, "us-east-1"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			before := len(proxy.Requests())
			w, err := store.Open(context.Background(), c.remote, "h", store.Write)
			if err != nil {
				t.Fatal(err)
			}
			name := "obj" + string(rune('a'+i))
			_, err = w.Put(context.Background(), name, strings.NewReader("data"))
			reqs := proxy.Requests()[before:]
			if err != nil && srv.Engine == "versitygw" && c.region != "us-east-1" && strings.Contains(err.Error(), `"`+c.region+`" is wrong`) {
				// versitygw serves one region (us-east-1) and refuses
				// requests signed for another: its refusal, and the
				// proxy's record below, show that the profile's region
				// signed the request.
				t.Logf("versitygw checks the region: %v", err)
				name = ""
			} else if err != nil {
				t.Fatalf("put: %v", err)
			}
			if len(reqs) == 0 {
				t.Fatal("the request did not reach the endpoint the environment names")
			}
			for _, r := range reqs {
				if r.Region != c.region {
					t.Errorf("%s %s signed for region %q, want %q", r.Method, r.Path, r.Region, c.region)
				}
			}
			if keys := srv.Keys(t, "env/h/"+name); name != "" && !slices.Equal(keys, []string{"env/h/" + name}) {
				t.Fatalf("keys %v", keys)
			}
			if s3, ok := w.(*store.S3); !ok || s3.Region() != c.region {
				t.Errorf("store region %q, want %q", s3.Region(), c.region)
			}
		})
	}
}

// The wrong addressing style fails in ways that do not say so: the errors
// name path_style.
func TestS3AddressingHint(t *testing.T) {
	for _, c := range []struct {
		name      string
		pathStyle bool
		hint      bool
	}{
		{"virtual-hosted", false, true},
		{"path-style", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", "x")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
			t.Setenv("AWS_CONFIG_FILE", "/dev/null")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			remote := config.Remote{URL: "s3://drym-test/x", Endpoint: "http://s3.drym.invalid:9000", PathStyle: c.pathStyle, Region: "us-east-1"}
			w, err := store.Open(context.Background(), remote, "h", store.Write)
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Put(context.Background(), "obj", strings.NewReader("data"))
			if err == nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("want one line, got %v", err)
			}
			if got := strings.Contains(err.Error(), "path_style = true"); got != c.hint {
				t.Fatalf("hint %v, want %v: %v", got, c.hint, err)
			}
			t.Log(err)
		})
	}
}
