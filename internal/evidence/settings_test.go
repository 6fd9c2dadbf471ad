package evidence

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// write puts body at dir/name; a body of "<fifo>" makes a FIFO instead,
// which a reader that does not refuse it would block on until its -t.
func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if body == "<fifo>" {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// quickly fails the test when f does not return within a second (a read
// that blocks on a FIFO).
func quickly[T any](t *testing.T, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() { v, err := f(); done <- result{v, err} }()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(time.Second):
		t.Fatal("blocked for a second: the reader waited on the file instead of refusing it")
		var zero T
		return zero, nil
	}
}

func TestLoadSettings(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       string // a part of the error; "" for none
	}{
		{"good", "keys = \"/etc/drym/keys\"\n[destination]\nurl = \"s3://bkt/drym\"\nread_profile = \"mon\"\n[escrow]\nurl = \"s3://bkt/keys\"\n", ""},
		{"missing", "", "no monitoring settings"},
		{"fifo", "<fifo>", "not a regular file"},
		{"unknown key", "[destination]\nurl = \"s3://bkt/drym\"\n\nendpiont = \"x\"\n", `:4: unknown key "destination.endpiont"`},
		{"no destination", "keys = \"/k\"\n", "[destination] url is required"},
		{"a write profile", "[destination]\nurl = \"s3://bkt/drym\"\nprofile = \"w\"\n", "the monitoring server never writes"},
		{"bad url", "[destination]\nurl = \"ftp://b\"\n", "[destination] url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "monitoring.toml")
			if tt.name != "missing" {
				path = write(t, dir, "monitoring.toml", tt.body)
			}
			s, err := quickly(t, func() (*Settings, error) { return LoadSettings(path) })
			if tt.want == "" {
				if err != nil || s.Destination.URL != "s3://bkt/drym" || s.Escrow.URL != "s3://bkt/keys" || s.Keys != "/etc/drym/keys" || s.Path != path {
					t.Fatalf("LoadSettings: %+v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReadInventory(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       []string
		err        string
	}{
		{"names, comments, blanks, repeats", "# the fleet\nweb1\n\n  db2  # primary\nweb1\nmail.example.org\n", []string{"web1", "db2", "mail.example.org"}, ""},
		{"empty", "# nobody yet\n", nil, ""},
		{"a path is not a host", "web1\n../etc\n", nil, `:2: "../etc" is not a host name`},
		{"a space inside", "web 1\n", nil, "is not a host name"},
		{"fifo", "<fifo>", nil, "not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, t.TempDir(), "hosts", tt.body)
			got, err := quickly(t, func() ([]string, error) { return ReadInventory(path) })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ReadInventory = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
