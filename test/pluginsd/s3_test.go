package pluginsd

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/testutil"
)

// policy is an IAM policy document as the s3/ files hold them.
type policy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    []string
		Resource  []string
		Condition map[string]map[string][]string
	}
}

func readPolicy(t *testing.T, name string) policy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(pluginsDir(t), "s3", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields() // a misspelt "Condtion" would widen the grant
	var p policy
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// TestS3Policies holds each policy to least privilege: exactly the actions
// its user needs, only on drym's prefix, never a wildcard, and explicit
// denies of deletion where the user writes.
func TestS3Policies(t *testing.T) {
	tests := []struct {
		file string
		// allow is the exact set of allowed actions.
		allow []string
		// resourcePrefix bounds every allowed resource.
		resourcePrefixes []string
		// deny must be among the denied actions.
		deny []string
	}{
		{
			file:             "backup-put-only-policy.json",
			allow:            []string{"s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning", "s3:PutObject"},
			resourcePrefixes: []string{"arn:aws:s3:::BUCKET/PREFIX/HOST/", "arn:aws:s3:::BUCKET"},
			deny:             []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy"},
		},
		{
			file:             "monitoring-read-only-policy.json",
			allow:            []string{"s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning", "s3:GetLifecycleConfiguration", "s3:GetObject", "s3:ListBucket"},
			resourcePrefixes: []string{"arn:aws:s3:::BUCKET/PREFIX/HOST/", "arn:aws:s3:::BUCKET"},
		},
		{
			file:  "monitoring-server-read-only-policy.json",
			allow: []string{"s3:GetObject", "s3:ListBucket"},
			resourcePrefixes: []string{"arn:aws:s3:::BUCKET/PREFIX/", "arn:aws:s3:::BUCKET",
				"arn:aws:s3:::ESCROW_BUCKET/ESCROW_PREFIX/drym-escrow-", "arn:aws:s3:::ESCROW_BUCKET"},
		},
		{
			file:             "escrow-policy.json",
			allow:            []string{"s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning", "s3:GetObject", "s3:ListBucket", "s3:PutObject"},
			resourcePrefixes: []string{"arn:aws:s3:::ESCROW_BUCKET/ESCROW_PREFIX/drym-escrow-HOST-", "arn:aws:s3:::ESCROW_BUCKET"},
			deny:             []string{"s3:DeleteObject", "s3:DeleteObjectVersion"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := readPolicy(t, tt.file)
			if p.Version != "2012-10-17" {
				t.Errorf("Version %q, want 2012-10-17 (the older one has no policy variables)", p.Version)
			}
			var allowed, denied []string
			for _, s := range p.Statement {
				if s.Sid == "" || len(s.Action) == 0 || len(s.Resource) == 0 {
					t.Errorf("statement %+v: want Sid, Action and Resource", s)
				}
				for _, a := range s.Action {
					if strings.Contains(a, "*") {
						t.Errorf("%s: wildcard action %q", s.Sid, a)
					}
				}
				switch s.Effect {
				case "Allow":
					allowed = append(allowed, s.Action...)
					for _, r := range s.Resource {
						if !slices.ContainsFunc(tt.resourcePrefixes, func(p string) bool { return within(r, p) }) {
							t.Errorf("%s: resource %q outside %v", s.Sid, r, tt.resourcePrefixes)
						}
						// A bucket-level resource is for ListBucket below
						// drym's prefix, or for reading the bucket's settings
						// (the append-only probes and the doctor): nothing
						// else, and never in the same statement.
						if !strings.Contains(r, "/") || strings.HasSuffix(r, ":::BUCKET") || strings.HasSuffix(r, ":::ESCROW_BUCKET") {
							switch {
							case slices.Equal(s.Action, []string{"s3:ListBucket"}):
								if len(s.Condition["StringLike"]["s3:prefix"]) == 0 {
									t.Errorf("%s: ListBucket without an s3:prefix condition lists the whole bucket", s.Sid)
								}
							case !slices.ContainsFunc(s.Action, func(a string) bool { return !slices.Contains(bucketSettingReads, a) }):
							default:
								t.Errorf("%s: bucket resource %q for %v", s.Sid, r, s.Action)
							}
						}
					}
				case "Deny":
					denied = append(denied, s.Action...)
				default:
					t.Errorf("%s: Effect %q", s.Sid, s.Effect)
				}
			}
			sort.Strings(allowed)
			allowed = slices.Compact(allowed)
			if !slices.Equal(allowed, tt.allow) {
				t.Errorf("allowed actions %v, want exactly %v", allowed, tt.allow)
			}
			for _, d := range tt.deny {
				if !slices.Contains(denied, d) {
					t.Errorf("%s is not explicitly denied", d)
				}
			}
		})
	}
}

// bucketSettingReads are the bucket-level reads a policy may allow: the
// bucket's versioning, Object Lock and lifecycle settings, no object data.
var bucketSettingReads = []string{"s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration", "s3:GetLifecycleConfiguration"}

// within reports whether resource r is p itself or, when p ends in a
// separator, an object below it.
func within(r, p string) bool {
	return r == p || strings.HasPrefix(r, p) && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "-"))
}

// lifecycleXML is the part of the PutBucketLifecycleConfiguration body the
// test reads.
type lifecycleXML struct {
	Rules []struct {
		ID     string `xml:"ID"`
		Status string `xml:"Status"`
		Prefix string `xml:"Filter>Prefix"`
		Days   int    `xml:"Expiration>Days"`
		Abort  int    `xml:"AbortIncompleteMultipartUpload>DaysAfterInitiation"`
	} `xml:"Rule"`
}

// TestS3Lifecycle feeds lifecycle.json to aws-cli exactly as the README says
// (put-bucket-lifecycle-configuration --lifecycle-configuration file://…),
// against a recording endpoint on 127.0.0.1: aws-cli validates the document
// against the S3 API model, and the request it sends must expire objects
// after 180 days and abort incomplete multipart uploads after 7.
func TestS3Lifecycle(t *testing.T) {
	aws := testutil.Need(t, "aws")
	data, err := os.ReadFile(filepath.Join(pluginsDir(t), "s3", "lifecycle.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatal("lifecycle.json is not valid JSON")
	}

	var mu sync.Mutex
	var method, path, query string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		method, path, query, body = r.Method, r.URL.Path, r.URL.RawQuery, b
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	doc := filepath.Join(t.TempDir(), "lifecycle.json")
	writeFile(t, doc, []byte(strings.ReplaceAll(string(data), "PREFIX", "drym")), 0o644)
	cmd := exec.Command(aws, "s3api", "put-bucket-lifecycle-configuration",
		"--endpoint-url", srv.URL, "--bucket", "drym-test",
		"--lifecycle-configuration", "file://"+doc)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=",
	}
	r := run(t, 2*time.Minute, cmd)
	if r.code != 0 {
		t.Fatalf("aws s3api put-bucket-lifecycle-configuration exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if method != http.MethodPut || path != "/drym-test" || !strings.Contains(query, "lifecycle") {
		t.Fatalf("aws-cli sent %s %s?%s, want PUT /drym-test?lifecycle", method, path, query)
	}
	var got lifecycleXML
	if err := xml.Unmarshal(body, &got); err != nil {
		t.Fatalf("request body: %v\n%s", err, body)
	}
	if len(got.Rules) != 1 {
		t.Fatalf("%d rules, want 1:\n%s", len(got.Rules), body)
	}
	rule := got.Rules[0]
	if rule.Status != "Enabled" || rule.Prefix != "drym/" || rule.Days != 180 || rule.Abort != 7 {
		t.Fatalf("rule %+v: want Enabled, prefix drym/, expire after 180 days, abort uploads after 7\n%s", rule, body)
	}
}
