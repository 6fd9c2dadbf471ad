package archive

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"
	"testing"
)

var manifestSeeds = []string{
	`{"version":1,"entries":[]}`, // an empty list round-trips through encoding/json as null
	`{"version":1,"host":"web1","created":"2026-01-02T03:04:05Z","sources":["/etc"],"entries":[
{"path":"etc","type":"dir","mode":"0755","mtime":"2026-01-02T03:04:05Z"},
{"path":"etc/hosts","type":"file","size":12,"sha256":"` + strings.Repeat("ab", 32) + `","mode":"0644","mtime":"2026-01-02T03:04:05Z"},
{"path":"etc/l","type":"symlink","link":"../../../root","mode":"0777","mtime":"2026-01-02T03:04:05Z"},
{"path":"etc/h","type":"hardlink","link":"etc/hosts","mode":"0644","mtime":"2026-01-02T03:04:05Z"}]}`,
	`{"version":1,"entries":[{"path":"../etc/passwd","type":"file","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}]}`,
	`{"version":1,"entries":[{"path":"/etc/passwd","type":"file"}]}`,
	`{"version":1,"entries":[{"path":"a/./b","type":"dir"}]}`,
	`{"version":1,"entries":[{"path":"a","type":"dir"},{"path":"a","type":"dir"}]}`,
	`{"version":1,"entries":[{"path":"a\u0000b","type":"dir"}]}`,
	`{"version":1,"entries":[{"path":"a","type":"fifo"}]}`,
	`{"version":1,"entries":[{"path":"a","type":"file","size":-1,"sha256":"` + strings.Repeat("0", 64) + `"}]}`,
	`{"version":3,"entries":[]}`,
	`{"version":2,"host":"web1","created":"2026-01-02T03:04:05Z","sources":["/etc"],"entries":[
{"path":{"base64":"Y2Fm6Q=="},"type":"dir","mode":"0755","mtime":-62135596800,"xattrs":{"user.a":"1","security.capability":{"base64":"AQAAAg=="}},"acl":"user::rwx\ngroup::r-x\nmask::r-x\nother::---\n","default_acl":"user::rwx\ngroup::---\nother::---\n"},
{"path":"caf\u00e9/x","type":"file","size":1,"sha256":"` + strings.Repeat("ab", 32) + `","mode":"0644","mtime":99999999999999},
{"path":"l","type":"symlink","link":{"base64":"/w=="},"mode":"0777","mtime":0}]}`,
	`{"version":2,"entries":[{"path":{"base64":"Li4vZXRj"},"type":"dir","mode":"0755","mtime":0}]}`,
	`{"version":2,"entries":[{"path":{"b64":"eA=="},"type":"dir","mode":"0755","mtime":0}]}`,
	`{"version":2,"entries":[{"path":"x","type":"dir","mode":"0755","mtime":"2026-01-02T03:04:05Z"}]}`,
	`{"version":1,"entries":null}`,
	`{"version":1,"entries":[{"path":"a","type":"file","size":1e30}]}`,
	`{"version":1}{"version":2}`,
	`{"version":1,"entries":[`,
	`[]`, `null`, ``,
}

// FuzzParseManifest feeds arbitrary bytes to the manifest parser that
// test-restore and restore trust to say what "every byte came back" means.
// It must never panic, and what it accepts must be safe to act on: every
// path a clean relative path that stays inside the target (no "..", no
// leading "/", no NUL), a known type, no path twice, and regular files with
// a non-negative size and a 64-character digest. Whatever is accepted must
// survive an encode/parse round trip unchanged in those respects.
func FuzzParseManifest(f *testing.F) {
	for _, s := range manifestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(bytes.NewReader(data))
		if err != nil {
			if m != nil {
				t.Fatal("ParseManifest returned a manifest and an error")
			}
			return
		}
		if m.Version < 1 || m.Version > ManifestVersion {
			t.Fatalf("accepted version %d", m.Version)
		}
		seen := map[string]bool{}
		for _, e := range m.Entries {
			confined(t, e.Path)
			if seen[e.Path] {
				t.Fatalf("accepted %q twice", e.Path)
			}
			seen[e.Path] = true
			switch e.Type {
			case TypeFile:
				if e.Size < 0 || len(e.SHA256) != 64 {
					t.Fatalf("accepted file %q with size %d sha256 %q", e.Path, e.Size, e.SHA256)
				}
			case TypeDir, TypeSymlink, TypeHardlink:
			default:
				t.Fatalf("accepted type %q", e.Type)
			}
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal accepted manifest: %v", err)
		}
		m2, err := ParseManifest(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("re-parse of accepted manifest failed: %v", err)
		}
		if len(m2.Entries) != len(m.Entries) {
			t.Fatalf("round trip changed the entry count %d → %d", len(m.Entries), len(m2.Entries))
		}
	})
}

// FuzzCheckName: CheckName is the gate for every tar member name and manifest
// path. A name it accepts, joined under any target directory, must stay
// inside it.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"etc/hosts", "../x", "a/../../b", "/abs", "a//b", "a/./b", ".", "..", "a/", "a\x00b", "...", "a/..b", "..a/b", `a\..\b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if plainName(name) && checkName(name) != nil {
			t.Fatalf("the fast path accepts %q, the full check does not: %v", name, checkName(name))
		}
		if CheckName(name) != nil {
			return
		}
		confined(t, name)
	})
}

// confined fails unless name, joined under a target directory, stays inside
// it and is not the target itself.
func confined(t *testing.T, name string) {
	t.Helper()
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		t.Fatalf("accepted %q", name)
	}
	const root = "/target"
	joined := path.Join(root, name)
	if joined == root || !strings.HasPrefix(joined, root+"/") {
		t.Fatalf("accepted %q, which lands at %q outside %s", name, joined, root)
	}
	if path.Clean(name) != name {
		t.Fatalf("accepted unclean %q", name)
	}
}
