package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

// suite is run against every implementation, like restic's backend tests:
// the behaviour callers rely on must not depend on where objects live.
func suite(t *testing.T, w, r store.Store, small bool) {
	ctx := context.Background()
	sizes := []int{0, 1, 1000, 8<<20 - 1, 8 << 20, 8<<20 + 1, 20<<20 + 3}
	if small {
		sizes = sizes[:3]
	}
	for i, size := range sizes {
		data := make([]byte, size)
		rand.Read(data)
		name := "obj" + string(rune('a'+i))
		n, err := w.Put(ctx, name, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("put %d bytes: %v", size, err)
		}
		if n != int64(size) {
			t.Fatalf("put %d bytes: reported %d", size, n)
		}
		info, err := r.Stat(ctx, name)
		if err != nil || info.Size != int64(size) {
			t.Fatalf("stat %s: %+v %v", name, info, err)
		}
		rc, err := r.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: got %d bytes, %v", size, len(got), err)
		}
		// Never overwritten: a second put of the name fails, content stays.
		if _, err := w.Put(ctx, name, strings.NewReader("evil")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second put of %s: want ErrExists, got %v", name, err)
		}
		info, err = r.Stat(ctx, name)
		if err != nil || info.Size != int64(size) {
			t.Fatalf("after refused overwrite %s: %+v %v", name, info, err)
		}
	}
	var names []string
	if err := r.List(ctx, "", func(i store.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != len(sizes) || names[0] != "obja" {
		t.Fatalf("list: %v", names)
	}
	if _, err := r.Stat(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stat missing: %v", err)
	}
	if _, err := w.Put(ctx, "../escape", strings.NewReader("x")); err == nil {
		t.Fatal("put ../escape accepted")
	}
	latest, err := store.Latest(ctx, r, func(string) bool { return true })
	if err != nil || latest.Name != names[len(names)-1] {
		t.Fatalf("latest: %v %v", latest, err)
	}
}

func TestDir(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(context.Background(), config.Remote{URL: "dir://" + dir}, "host1", store.Write)
	if err != nil {
		t.Fatal(err)
	}
	suite(t, s, s, testing.Short())
	// No temp files left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "host1"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// A failing reader mid-put leaves no object and no temp file.
func TestDirFailedPutLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := store.NewDir(dir)
	_, err := s.Put(context.Background(), "x", io.MultiReader(strings.NewReader("abc"), errReader{}))
	if err == nil {
		t.Fatal("put succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestS3Store(t *testing.T) {
	testutil.ForEachS3(t, testS3Store)
}

func testS3Store(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	remote := config.Remote{
		URL: "s3://" + srv.Bucket + "/backups", Endpoint: srv.Endpoint, PathStyle: true,
		Profile: srv.PutProfile, ReadProfile: srv.ReadProfile,
	}
	ctx := context.Background()
	w, err := store.Open(ctx, remote, "host1", store.Write)
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, remote, "host1", store.Read)
	if err != nil {
		t.Fatal(err)
	}
	suite(t, w, r, false)

	// The put-only credentials can do nothing but put.
	if _, err := w.Open(ctx, "obja"); err == nil {
		t.Error("put-only credentials could read")
	}
	if err := w.List(ctx, "", func(store.Info) error { return nil }); err == nil {
		t.Error("put-only credentials could list")
	}
	key := "backups/host1/obja"
	if _, err := srv.PutOnly().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &srv.Bucket, Key: &key}); err == nil {
		t.Error("put-only credentials could delete")
	}
	if keys := srv.Keys(t, "backups/host1/"); len(keys) != 7 {
		t.Errorf("keys: %v", keys)
	}
}

// A failing reader in the middle of a multipart upload leaves no object.
func TestS3FailedUploadLeavesNothing(t *testing.T) {
	testutil.ForEachS3(t, testS3FailedUploadLeavesNothing)
}

func testS3FailedUploadLeavesNothing(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	remote := config.Remote{URL: "s3://" + srv.Bucket, Endpoint: srv.Endpoint, PathStyle: true, Profile: srv.PutProfile}
	w, err := store.Open(context.Background(), remote, "h", store.Write)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 20<<20)
	_, err = w.Put(context.Background(), "x", io.MultiReader(bytes.NewReader(big), errReader{}))
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("want the reader's error, got %v", err)
	}
	if keys := srv.Keys(t, ""); len(keys) != 0 {
		t.Fatalf("objects after a failed upload: %v", keys)
	}
}

// Wrong credentials and an unreachable endpoint fail fast with one line.
func TestS3Errors(t *testing.T) {
	testutil.ForEachS3(t, testS3Errors)
}

func testS3Errors(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	cases := []struct {
		name   string
		remote config.Remote
		want   string
	}{
		{"wrong credentials", config.Remote{URL: "s3://" + srv.Bucket, Endpoint: srv.Endpoint, PathStyle: true, Profile: srv.ReadProfile}, "check the credentials"},
		{"unreachable", config.Remote{URL: "s3://" + srv.Bucket, Endpoint: "http://127.0.0.1:" + testutil.FreePort(t), PathStyle: true, Profile: srv.PutProfile}, "cannot reach"},
		{"no such bucket", config.Remote{URL: "s3://nobucket-here", Endpoint: srv.Endpoint, PathStyle: true, Profile: srv.RootProfile}, "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			w, err := store.Open(context.Background(), c.remote, "h", store.Write)
			if err == nil {
				_, err = w.Put(context.Background(), "x", strings.NewReader("data"))
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("want one line with %q, got %v", c.want, err)
			}
			if d := time.Since(start); d > 60*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

// AWS_CA_BUNDLE: an on-premises S3 behind TLS with a private CA (a
// TLS-terminating proxy in front of the server). The store trusts the CA
// named there (the SDK can only add it to a client it knows how to rebuild);
// without it the error says what to set; and the system bundle does not get
// in the way of a plain-HTTP endpoint.
func TestS3WithCABundle(t *testing.T) {
	testutil.ForEachS3(t, testS3WithCABundle)
}

func testS3WithCABundle(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	proxy := testutil.StartTLSProxy(t, srv.Endpoint)
	remote := config.Remote{URL: "s3://" + srv.Bucket, Endpoint: proxy.URL, PathStyle: true, Profile: srv.PutProfile}
	put := func(name string) error {
		w, err := store.Open(context.Background(), remote, "h", store.Write)
		if err != nil {
			return err
		}
		_, err = w.Put(context.Background(), name, strings.NewReader("data"))
		return err
	}
	if err := put("x"); err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("without the private CA: want one line naming AWS_CA_BUNDLE, got %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", proxy.CAFile)
	if err := put("y"); err != nil {
		t.Fatalf("with AWS_CA_BUNDLE=%s: %v", proxy.CAFile, err)
	}
	if n := len(proxy.Requests()); n == 0 {
		t.Fatal("the upload did not go through the TLS endpoint")
	}
	if keys := srv.Keys(t, "h/"); len(keys) != 1 || keys[0] != "h/y" {
		t.Fatalf("keys %v, want [h/y]", keys)
	}

	const system = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(system); err != nil {
		if testutil.InCI() {
			t.Fatalf("no system CA bundle %s in CI (apt-get install ca-certificates)", system)
		}
		t.Logf("no system CA bundle %s: not tried", system)
		return
	}
	t.Setenv("AWS_CA_BUNDLE", system)
	remote.Endpoint = srv.Endpoint
	if err := put("z"); err != nil {
		t.Fatalf("system bundle, plain-HTTP endpoint: %v", err)
	}
}
