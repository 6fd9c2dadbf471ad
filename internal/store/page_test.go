package store_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

// pageSuite holds Dir and S3 to the same paging behaviour: ranges, listings
// from a start key in bounded pages, and the host folders of a destination.
// root is the store without a host scope, host the one scoped to "h1", and
// addHost puts an object into another host's folder.
func pageSuite(t *testing.T, w, root, host store.Store, addHost func(ctx context.Context, host string) error) {
	ctx := context.Background()
	var names []string
	for i := range 25 {
		names = append(names, fmt.Sprintf("2026%04d", i))
	}
	for _, n := range names {
		if _, err := w.Put(ctx, n, strings.NewReader("content of "+n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Put(ctx, "empty", bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}

	t.Run("ranges", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			off, n int64
			want   string
		}{
			{"20260003", 0, 7, "content"},
			{"20260003", 11, 100, "20260003"},
			{"20260003", 19, 5, ""},
			{"20260003", 500, 5, ""},
			{"empty", 0, 4096, ""},
		} {
			got, err := store.ReadRange(ctx, host, tc.name, tc.off, tc.n)
			if err != nil || string(got) != tc.want {
				t.Errorf("%s %d+%d: %q, %v; want %q", tc.name, tc.off, tc.n, got, err, tc.want)
			}
		}
		if _, err := store.ReadRange(ctx, host, "missing", 0, 10); err == nil || !strings.Contains(err.Error(), store.ErrNotFound.Error()) {
			t.Errorf("missing object: %v", err)
		}
	})

	t.Run("pages", func(t *testing.T) {
		var got []string
		start, token := "20260009", ""
		pages := 0
		for {
			p, err := store.ListPage(ctx, host, "2026", start, token, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Objects) > 4 {
				t.Fatalf("page of %d objects, asked for 4", len(p.Objects))
			}
			pages++
			for _, o := range p.Objects {
				got = append(got, o.Name)
				if o.Size != int64(len("content of "+o.Name)) || o.ModTime.IsZero() {
					t.Errorf("%+v", o)
				}
			}
			if p.Next == "" {
				break
			}
			token = p.Next
		}
		if want := names[10:]; !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v", got, want)
		}
		if pages != 4 {
			t.Errorf("%d pages for 15 objects of 4 a page", pages)
		}
	})

	t.Run("dirs", func(t *testing.T) {
		for _, h := range []string{"h2", "h3", "h0"} {
			if err := addHost(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		token := ""
		for {
			dirs, next, err := store.ListDirs(ctx, root, token, 2)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, dirs...)
			if next == "" {
				break
			}
			token = next
		}
		if want := []string{"h0", "h1", "h2", "h3"}; !slices.Equal(got, want) {
			t.Fatalf("dirs %v, want %v", got, want)
		}
	})
}

func TestDirPages(t *testing.T) {
	dir := t.TempDir()
	h := store.NewDir(filepath.Join(dir, "h1"))
	pageSuite(t, h, store.NewDir(dir), h, func(ctx context.Context, host string) error {
		_, err := store.NewDir(filepath.Join(dir, host)).Put(ctx, "x", strings.NewReader("x"))
		return err
	})
	// A hidden .partial file is never listed.
	os.WriteFile(filepath.Join(dir, "h1", ".20260099.x.partial"), []byte("x"), 0o644)
	p, err := store.ListPage(context.Background(), h, "", "20260023", "", 10)
	if err != nil || len(p.Objects) != 2 || p.Objects[0].Name != "20260024" || p.Objects[1].Name != "empty" {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestDirDenied(t *testing.T) {
	if !testutil.InChildAs(t, "nobody") { // root reads everything
		return
	}
	dir := t.TempDir()
	s := store.NewDir(dir)
	s.Put(context.Background(), "x", strings.NewReader("x"))
	os.Chmod(filepath.Join(dir, "x"), 0)
	if _, err := store.ReadRange(context.Background(), s, "x", 0, 1); !store.IsDenied(err) {
		t.Fatalf("want denied, got %v", err)
	}
}

// On S3 each page and each range is exactly one request, counted through a
// proxy, and the put-only credentials are refused with ErrDenied.
func TestS3Pages(t *testing.T) {
	testutil.ForEachS3(t, testS3Pages)
}

func testS3Pages(t *testing.T, srv *testutil.S3Server) {
	srv.SetEnv(t)
	proxy := testutil.StartCountingProxy(t, srv.Endpoint)
	remote := config.Remote{URL: "s3://" + srv.Bucket + "/backups", Endpoint: proxy.URL, PathStyle: true,
		Profile: srv.PutProfile, ReadProfile: srv.ReadProfile}
	ctx := context.Background()
	w, _ := store.Open(ctx, remote, "h1", store.Write)
	host, _ := store.Open(ctx, remote, "h1", store.Read)
	root, _ := store.Open(ctx, remote, "", store.Read)
	pageSuite(t, w, root, host, func(ctx context.Context, h string) error {
		s, err := store.Open(ctx, remote, h, store.Write)
		if err == nil {
			_, err = s.Put(ctx, "x", strings.NewReader("x"))
		}
		return err
	})

	proxy.Reset()
	if _, err := store.ListPage(ctx, host, "", "20260020", "", 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadRange(ctx, host, "20260001", 0, 4096); err != nil {
		t.Fatal(err)
	}
	if got := proxy.Count(); got["LIST"] != 1 || got["GET-RANGE"] != 1 || proxy.Total() != 2 {
		t.Fatalf("requests: %v", proxy.Requests())
	}

	if _, err := store.ReadRange(ctx, w, "20260001", 0, 10); !store.IsDenied(err) {
		t.Errorf("put-only range read: want ErrDenied, got %v", err)
	}
	if _, err := store.ListPage(ctx, w, "", "", "", 10); !store.IsDenied(err) {
		t.Errorf("put-only listing: want ErrDenied, got %v", err)
	}
}
