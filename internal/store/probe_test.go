package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

func probeStore(t *testing.T, srv *testutil.S3Server, profile string) *store.S3 {
	t.Helper()
	remote := config.Remote{URL: "s3://" + srv.Bucket + "/drym", Endpoint: srv.Endpoint, PathStyle: true, Profile: profile}
	s, err := store.Open(context.Background(), remote, "web1", store.Write)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*store.S3)
}

// The append-only probes tell put-only credentials from credentials that
// may delete, on every server, and leave nothing behind but the one probe
// object, however often they run.
func TestProbePromise(t *testing.T) {
	testutil.ForEachS3(t, testProbePromise)
}

func testProbePromise(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	ctx := context.Background()
	u, d, a, r := status.ProbeUnknown, status.ProbeDenied, status.ProbeAllowed, status.ProbeRefused
	steps := []struct {
		name    string
		profile string
		created bool
		want    status.AppendOnly // Checked, Versioning, ObjectLock, Held and Error not compared
		holds   bool
	}{
		{"put-only, first run", srv.PutProfile, true, status.AppendOnly{Delete: d, DeleteVersion: d, Overwrite: r}, true},
		{"put-only, again", srv.PutProfile, false, status.AppendOnly{Delete: d, DeleteVersion: d, Overwrite: r}, true},
		{"write (may delete)", srv.WriteProfile, false, status.AppendOnly{Delete: a, DeleteVersion: a, Overwrite: r}, false},
		{"read (may not write)", srv.ReadProfile, false, status.AppendOnly{Delete: d, DeleteVersion: d, Overwrite: u}, false},
	}
	for _, st := range steps {
		p := probeStore(t, srv, st.profile).ProbePromise(ctx, store.ProbeName, store.ProbeContent)
		got := p.AppendOnly(p.LocalDate)
		if got.Delete != st.want.Delete || got.DeleteVersion != st.want.DeleteVersion || got.Overwrite != st.want.Overwrite ||
			got.Holds() != st.holds || got.Held != st.holds || p.Created != st.created {
			t.Errorf("%s: got %+v (created %v), want %+v holds %v created %v", st.name, got, p.Created, st.want, st.holds, st.created)
		}
		if got.CanDelete() != (st.want.Delete == a) {
			t.Errorf("%s: CanDelete %v", st.name, got.CanDelete())
		}
		if p.ServerDate.IsZero() || p.LocalDate.Sub(p.ServerDate).Abs() > status.ClockSkew {
			t.Errorf("%s: server date %v, local %v", st.name, p.ServerDate, p.LocalDate)
		}
		t.Logf("%s on %s: %+v", st.name, srv.Engine, got)
	}
	if keys := srv.Keys(t, ""); !slices.Equal(keys, []string{"drym/web1/" + store.ProbeName}) {
		t.Fatalf("the probes left %v, want only the probe object", keys)
	}

	// Versioning keeps old bytes, but credentials that may delete versions
	// can still destroy a backup for good: the promise does not hold. The
	// delete probe leaves no delete marker behind.
	srv.EnableVersioning(t)
	p := probeStore(t, srv, srv.WriteProfile).ProbePromise(ctx, store.ProbeName, store.ProbeContent)
	ao := p.AppendOnly(p.LocalDate)
	if ao.Delete != a || ao.DeleteVersion != a || !ao.CanDelete() || ao.Holds() || p.Marker != "" {
		t.Errorf("write, versioned: %+v, marker %q", ao, p.Marker)
	}
	vs, err := srv.Root().ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &srv.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range vs.DeleteMarkers {
		t.Errorf("delete marker left behind: %s", *m.Key)
	}
	for _, v := range vs.Versions {
		if !strings.HasSuffix(*v.Key, store.ProbeName) {
			t.Errorf("version left behind: %s", *v.Key)
		}
	}
}

// Bucket settings are read where the credentials may: versioning and
// Object Lock, and the lifecycle rules the doctor reports.
func TestProbeBucketSettings(t *testing.T) {
	testutil.ForEachS3(t, testProbeBucketSettings)
}

func testProbeBucketSettings(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	ctx := context.Background()
	put := probeStore(t, srv, srv.PutProfile)
	if v := put.ProbeVersioning(ctx); v.Result != status.ProbeUnknown || v.HTTP != 403 {
		t.Errorf("versioning as put-only without the grant: %+v", v)
	}
	root := probeStore(t, srv, srv.RootProfile)
	if v := root.ProbeVersioning(ctx); v.Result != status.ProbeOff {
		t.Errorf("versioning of a new bucket: %+v", v)
	}
	if l := root.ProbeObjectLock(ctx); l.Result != status.ProbeOff {
		t.Errorf("object lock of a new bucket: %+v", l)
	}
	srv.EnableVersioning(t)
	if v := root.ProbeVersioning(ctx); v.Result != status.ProbeEnabled {
		t.Errorf("versioning after enabling it: %+v", v)
	}
	switch l := root.ProbeLifecycle(ctx); srv.Engine {
	case "versitygw":
		if l.Result != store.ProbeUnsupported {
			t.Errorf("lifecycle on versitygw: %+v", l)
		}
	default:
		if l.Result != store.ProbeNone {
			t.Errorf("lifecycle of a new bucket: %+v", l)
		}
	}
}
