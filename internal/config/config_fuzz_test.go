package config

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

var configSeeds = []string{
	"host = \"web1\"\nsources = [\"/etc\"]\nstate_dir = \"/var/lib/drym\"\nkey_file = \"/etc/drym/host-key.asc\"\n[destination]\nurl = \"s3://bucket/drym\"\nendpoint = \"http://127.0.0.1:9000\"\npath_style = true\nprofile = \"put\"\nread_profile = \"read\"\n[escrow]\nurl = \"dir:///mnt/escrow\"\n",
	"host = \"web1\"\nsources = [\"/etc\"]\n[destination]\nurl = \"/srv/backup\"\n",
	"host = \"web1\"\nsources = [\"/etc\"]\n[destination]\nurl = \"s3://AKIA:secret@bucket/drym\"\n",
	"host = \"web1\"\nsources = [\"/etc\"]\n[destination]\nurl = \"s3://bucket\"\nendpoint = \"http://AKIA:secret@127.0.0.1:9000\"\n",
	"host = \"web1\"\nsources = [\"/etc\"]\n[destination]\nurl = \"s3://bucket\"\naws_secret_access_key = \"x\"\n",
	"host = \"web1\"\nsources = [\"/etc\"]\n[destination]\nurl = \"s3://bucket/../x\"\n",
	"host = \"web1\"\nsources = [\"etc\"]\n[destination]\nurl = \"dir://host/x\"\n",
	"host = \"-\"\nsources = []\n",
	"[destination\nurl=",
	"host = \"web1\"\nsources = [\"/etc\"]\nexclude = [\"[\"]\n[destination]\nurl = \"s3://bucket\"\n",
	"",
}

// FuzzParse feeds arbitrary TOML to the settings parser. It must never
// panic, and no settings it accepts may carry credentials: no URL with a
// user:password part (destination, escrow, endpoints), no unknown key. What it
// accepts must be valid (absolute paths, a parsable destination) and survive
// Encode → Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range configSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		c, err := Parse("/etc/drym/drym.toml", []byte(data))
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned settings and an error")
			}
			if !strings.HasPrefix(err.Error(), "/etc/drym/drym.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for name, raw := range map[string]string{
			"destination.url": c.Destination.URL, "destination.endpoint": c.Destination.Endpoint,
			"escrow.url": c.Escrow.URL, "escrow.endpoint": c.Escrow.Endpoint,
		} {
			if embedsCredentials(raw, strings.HasSuffix(name, ".url")) {
				t.Fatalf("accepted %s %q with embedded credentials", name, raw)
			}
		}
		if !filepath.IsAbs(c.StateDir) || !filepath.IsAbs(c.KeyFile) || len(c.Sources) == 0 {
			t.Fatalf("accepted invalid settings: %+v", c)
		}
		for _, s := range c.Sources {
			if !filepath.IsAbs(s) {
				t.Fatalf("accepted relative source %q", s)
			}
		}
		if _, err := ParseURL(c.Destination.URL); err != nil {
			t.Fatalf("accepted destination %q that ParseURL refuses: %v", c.Destination.URL, err)
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("encode accepted settings: %v", err)
		}
		c2, err := Parse("/etc/drym/drym.toml", enc)
		if err != nil {
			t.Fatalf("re-parse of encoded settings failed: %v\n%s", err, enc)
		}
		if c2.Destination != c.Destination || c2.StateDir != c.StateDir || c2.Host != c.Host {
			t.Fatalf("round trip changed the settings:\n%+v\n%+v", c, c2)
		}
	})
}

// FuzzParseURL: a destination it accepts never carries credentials, a dir
// path is absolute and clean, an s3 prefix has no empty, "." or ".." parts
// (so a host's objects cannot be written into another host's prefix).
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bucket/prefix", "s3://user:pass@bucket/p", "s3://bucket/a/../b", "dir:///srv/x", "file:///srv/x",
		"dir://host/x", "/srv/x", "/srv/../x", "s3://b", "s3://bucket//x", "s3://bucket/p?x=1", "http://x", "", "s3://bucket/%2e%2e/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := ParseURL(raw)
		if err != nil {
			return
		}
		if embedsCredentials(raw, true) {
			t.Fatalf("accepted %q with embedded credentials", raw)
		}
		if strings.ContainsFunc(loc.Path+loc.Prefix, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted %q with control characters: %+v", raw, loc)
		}
		switch loc.Scheme {
		case "dir":
			if !filepath.IsAbs(loc.Path) || filepath.Clean(loc.Path) != loc.Path {
				t.Fatalf("accepted %q as dir %q", raw, loc.Path)
			}
		case "s3":
			if loc.Bucket == "" {
				t.Fatalf("accepted %q without a bucket", raw)
			}
			if loc.Prefix != "" {
				for part := range strings.SplitSeq(loc.Prefix, "/") {
					if part == "" || part == "." || part == ".." {
						t.Fatalf("accepted %q with prefix %q", raw, loc.Prefix)
					}
				}
			}
			if _, err := ParseURL(loc.String()); err != nil {
				t.Fatalf("%q → %q no longer parses: %v", raw, loc.String(), err)
			}
		default:
			t.Fatalf("accepted %q with scheme %q", raw, loc.Scheme)
		}
	})
}

// embedsCredentials reports whether raw is a URL with a user:password part.
// For destination URLs, anything starting with "/" is a directory path, not
// a URL ("//@" is the directory "/@"); endpoints are always URLs.
func embedsCredentials(raw string, destination bool) bool {
	if destination && strings.HasPrefix(raw, "/") {
		return false
	}
	u, err := url.Parse(raw)
	return err == nil && u.User != nil
}
