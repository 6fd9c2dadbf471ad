package config

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		in      string
		want    Location
		wantErr string
	}{
		{"dir:///var/backups", Location{Scheme: "dir", Path: "/var/backups"}, ""},
		{"/var/backups/", Location{Scheme: "dir", Path: "/var/backups"}, ""},
		{"file:///mnt/x", Location{Scheme: "dir", Path: "/mnt/x"}, ""},
		{"s3://bucket", Location{Scheme: "s3", Bucket: "bucket"}, ""},
		{"s3://my-bucket/drym/prod/", Location{Scheme: "s3", Bucket: "my-bucket", Prefix: "drym/prod"}, ""},
		{"dir://host/path", Location{}, "three slashes"},
		{"dir://relative", Location{}, "three slashes"},
		{"relative/path", Location{}, "want dir://"},
		{"ftp://x/y", Location{}, "unsupported scheme"},
		{"s3://UPPER/x", Location{}, "not a valid bucket"},
		{"s3://key:secret@bucket/x", Location{}, "embeds credentials"},
		{"s3://bucket/a/../b", Location{}, "'..'"},
		{"s3://bucket/x?versionId=1", Location{}, "query"},
	}
	for _, c := range cases {
		got, err := ParseURL(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: want error %q, got %v", c.in, c.wantErr, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	good := "host = \"web1\"\nsources = [\"/etc\", \"/var/www\"]\nexclude = [\"*.tmp\"]\n\n[destination]\nurl = \"s3://bkt/p\"\nendpoint = \"http://127.0.0.1:9000\"\npath_style = true\nread_profile = \"mon\"\n\n[escrow]\nurl = \"dir:///mnt/escrow\"\nrecipients = [\"/etc/drym/team.asc\"]\n"
	c, err := Parse("drym.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "web1" || len(c.Sources) != 2 || !c.Destination.PathStyle || c.Destination.ReadProfile != "mon" ||
		c.Escrow.URL != "dir:///mnt/escrow" || len(c.Escrow.Recipients) != 1 || c.StateDir != DefaultStateDir || c.KeyFile != DefaultKeyFile {
		t.Fatalf("parsed %+v", c)
	}
	if c.PublicKeyFile() != "/etc/drym/host-key.pub.asc" {
		t.Fatal(c.PublicKeyFile())
	}
	// What Encode writes, Parse reads back the same.
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("again.toml", data)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, data)
	}
	c.Path, c2.Path = "", ""
	if c2.Host != c.Host || c2.Escrow.URL != c.Escrow.URL || c2.Destination != c.Destination {
		t.Fatalf("round trip: %+v vs %+v", c, c2)
	}

	bad := []struct{ name, toml, want string }{
		{"unknown top key", "host = \"h\"\nsource = [\"/etc\"]\n", `drym.toml:2: unknown key "source"`},
		{"unknown table key", "host = \"h\"\nsources = [\"/etc\"]\n[destination]\nurl = \"/x\"\nbucket = \"b\"\n", `drym.toml:5: unknown key "destination.bucket"`},
		{"credential key", "sources = [\"/etc\"]\n[destination]\nurl = \"/x\"\nsecret_key = \"s\"\n", "AWS credential chain"},
		{"relative source", "sources = [\"etc\"]\n[destination]\nurl = \"/x\"\n", `drym.toml:1: sources: "etc" is not an absolute path`},
		{"no destination", "sources = [\"/etc\"]\n", "destination.url: no destination"},
		{"bad escrow", "sources = [\"/etc\"]\n[destination]\nurl = \"/x\"\n[escrow]\nurl = \"http://x\"\n", `drym.toml:5: escrow.url`},
		{"bad glob", "sources = [\"/etc\"]\nexclude = [\"[\"]\n[destination]\nurl = \"/x\"\n", "exclude: bad glob"},
		{"bad host", "host = \"a b\"\nsources = [\"/etc\"]\n[destination]\nurl = \"/x\"\n", "not a usable host name"},
		{"syntax", "sources = [\"/etc\"\n", "drym.toml:"},
		{"unknown table", "sources = [\"/etc\"]\n[destination]\nurl = \"/x\"\n\n[destinaton]\nurl = \"/y\"\n", `drym.toml:5: unknown table [destinaton]`},
		{"unknown table with comment", "sources = [\"/etc\"]\n[destination]\nurl = \"/x\"\n[metric] # typo\n", `drym.toml:4: unknown table [metric]`},
		{"unknown dotted key", "sources = [\"/etc\"]\ndestination.url = \"/x\"\ndestination.bukket = \"b\"\n", `drym.toml:3: unknown key "destination.bukket"`},
		{"dotdot source", "sources = [\"/srv/../etc\"]\n[destination]\nurl = \"/x\"\n", `drym.toml:1: sources: "/srv/../etc" holds ".."`},
		{"source twice", "sources = [\"/etc\", \"/etc/\"]\n[destination]\nurl = \"/x\"\n", `sources: "/etc" is listed twice`},
		{"nested source", "sources = [\n  \"/srv\",\n  \"/srv/sub\",\n]\n[destination]\nurl = \"/x\"\n", `drym.toml:1: sources: "/srv/sub" is inside "/srv"`},
		{"nested source, other order", "sources = [\"/srv/sub\", \"/srv\"]\n[destination]\nurl = \"/x\"\n", `"/srv/sub" is inside "/srv"`},
		{"root and more", "sources = [\"/\", \"/etc\"]\n[destination]\nurl = \"/x\"\n", `"/etc" is inside "/"`},
		{"exclude trailing slash", "sources = [\"/etc\"]\nexclude = [\"/var/cache/\"]\n[destination]\nurl = \"/x\"\n", `drym.toml:2: exclude: "/var/cache/": paths are matched without a trailing "/": write "/var/cache"`},
		{"exclude relative path", "sources = [\"/etc\"]\nexclude = [\"var/cache\"]\n[destination]\nurl = \"/x\"\n", `exclude: "var/cache": a pattern with "/" is matched against absolute paths: write "/var/cache"`},
		{"exclude double star", "sources = [\"/etc\"]\nexclude = [\"/home/**/cache\"]\n[destination]\nurl = \"/x\"\n", `"**" is not supported`},
		{"exclude empty", "sources = [\"/etc\"]\nexclude = [\"\"]\n[destination]\nurl = \"/x\"\n", `exclude: an empty pattern`},
		{"wrong type", "sources = \"/etc\"\n", "drym.toml"},
	}
	for _, b := range bad {
		_, err := Parse("drym.toml", []byte(b.toml))
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: want %q, got %v", b.name, b.want, err)
		}
	}
}

// Source paths are cleaned at load: the member names a backup writes, and
// the paths restore matches, come from them.
func TestSourcesCleaned(t *testing.T) {
	c, err := Parse("drym.toml", []byte("sources = [\"/srv/www/\", \"//etc//ssl/./certs\", \"/\"]\n[destination]\nurl = \"/x\"\n"))
	if err == nil {
		t.Fatalf("/ with other sources accepted: %v", c.Sources)
	}
	c, err = Parse("drym.toml", []byte("sources = [\"/srv/www/\", \"//etc//ssl/./certs\"]\nexclude = [\"*.tmp\", \"/var/cache\", \"cache\", \"/\"]\n[destination]\nurl = \"/x\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/srv/www", "/etc/ssl/certs"}; strings.Join(c.Sources, ",") != strings.Join(want, ",") {
		t.Errorf("sources %q, want %q", c.Sources, want)
	}
}

// The host and bucket rules are written out by hand (a regexp with
// {0,252} was slow to compile at every check's start); they must accept
// exactly what the rules say, at every edge.
func TestNameRules(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct {
		name      string
		host, bkt bool
	}{
		{"", false, false},
		{"a", true, false},
		{"ab", true, false},
		{"abc", true, true},
		{"web1.example.com", true, true},
		{"Web_1", true, false},
		{"-web", false, false},
		{".web", false, false},
		{"_web", false, false},
		{"web-", true, false},
		{"web.", true, false},
		{"a-b.c", true, true},
		{"a b", false, false},
		{"a/b", false, false},
		{"a\x00b", false, false},
		{"héte", false, false},
		{"ABC", true, false},
		{long(63), true, true},
		{long(64), true, false},
		{long(253), true, false},
		{long(254), false, false},
	} {
		if got := ValidHost(c.name); got != c.host {
			t.Errorf("ValidHost(%q) = %v, want %v", c.name, got, c.host)
		}
		if got := validBucket(c.name); got != c.bkt {
			t.Errorf("validBucket(%q) = %v, want %v", c.name, got, c.bkt)
		}
	}
}

// FuzzNameRules holds the hand-written rules to the regular expressions
// they stand for.
func FuzzNameRules(f *testing.F) {
	host := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
	bucket := regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	for _, s := range []string{"", "a", "abc", "a.b-c_d", "-x", "x-", strings.Repeat("z", 253), "A.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidHost(s) != host.MatchString(s) {
			t.Errorf("ValidHost(%q) = %v, the rule says %v", s, ValidHost(s), host.MatchString(s))
		}
		if validBucket(s) != bucket.MatchString(s) {
			t.Errorf("validBucket(%q) = %v, the rule says %v", s, validBucket(s), bucket.MatchString(s))
		}
	})
}

func TestLooksLikeCredential(t *testing.T) {
	for key, want := range map[string]bool{
		"aws_access_key_id": true, "Secret": true, "session_token": true, "PASSWORD": true,
		"credentials": true, "url": false, "profile": false, "read_profile": false,
		"sources": false, "key_file": false, "host": false,
	} {
		if got := looksLikeCredential(key); got != want {
			t.Errorf("looksLikeCredential(%q) = %v, want %v", key, got, want)
		}
	}
}
