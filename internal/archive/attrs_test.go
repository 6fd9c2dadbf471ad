package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/testutil"
)

// paxOf reads a tar stream and returns each member's PAX records by name
// (without trailing slashes), and the content of regular files.
func paxOf(t *testing.T, r io.Reader) (map[string]map[string]string, map[string][]byte) {
	t.Helper()
	recs, data := map[string]map[string]string{}, map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return recs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		recs[name] = h.PAXRecords
		if h.Typeflag == tar.TypeReg {
			data[name], _ = io.ReadAll(tr)
		}
	}
}

func shell(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

// TestAttrsAsGNUTarWrites: drym archives extended attributes and ACLs with
// the very records GNU tar --xattrs --acls writes (SCHILY.xattr.<name> with
// the raw value, SCHILY.acl.access/default in acl_to_text form), except the
// raw system.posix_acl_* copies, which would restore numeric ids where the
// text restores names.
func TestAttrsAsGNUTarWrites(t *testing.T) {
	testutil.Need(t, "tar")
	testutil.Need(t, "setfacl")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"plain", "acl", "xattr", "both"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	shell(t, "cd "+src+" && setfacl -m u:nobody:r,g:4343:rw,u:4242:x acl both && setfacl -m g:adm:rx d && setfacl -d -m u:nobody:rwx d")
	for _, f := range []string{"xattr", "both", "d"} {
		if err := unix.Setxattr(filepath.Join(src, f), "user.bin", []byte("\x00\xff\n=é"), 0); err != nil {
			testutil.Unable(t, "no user xattrs here: %v", err)
		}
		unix.Setxattr(filepath.Join(src, f), "user.text", []byte("hello"), 0)
	}
	if os.Geteuid() == 0 {
		if err := unix.Setxattr(filepath.Join(src, "plain"), "trusted.t", []byte("root only"), 0); err != nil {
			t.Fatal(err)
		}
	}
	gnu := filepath.Join(dir, "gnu.tar")
	shell(t, "tar --xattrs --acls -C "+dir+" -cf "+gnu+" src")
	f, _ := os.Open(gnu)
	want, _ := paxOf(t, f)
	f.Close()

	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, Options{Host: "h", Sources: []string{src}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	got, _ := paxOf(t, &buf)
	prefix := strings.TrimPrefix(src, "/")
	n := 0
	for _, w := range want {
		for k := range w {
			if strings.HasPrefix(k, "SCHILY.") {
				n++
			}
		}
	}
	if n < 10 {
		t.Fatalf("GNU tar wrote only %d SCHILY records: the test proves nothing here", n)
	}
	for name, w := range want {
		g := got[prefix+strings.TrimPrefix(name, "src")]
		keep := func(m map[string]string) map[string]string {
			out := map[string]string{}
			for k, v := range m {
				if strings.HasPrefix(k, "SCHILY.") && !strings.HasPrefix(k, "SCHILY.xattr.system.posix_acl_") {
					out[k] = v
				}
			}
			return out
		}
		if !reflect.DeepEqual(keep(g), keep(w)) {
			t.Errorf("%s: drym wrote %q\nGNU tar wrote %q", name, keep(g), keep(w))
		}
		for k := range g {
			if strings.HasPrefix(k, "SCHILY.xattr.system.posix_acl_") {
				t.Errorf("%s: raw ACL record %s archived", name, k)
			}
		}
	}
}

func TestACLTextRoundTrip(t *testing.T) {
	names := map[uint32]string{0: "root", 65534: "nobody"}
	lookup := func(id uint32) string { return names[id] }
	rev := func(n string) (uint32, bool) {
		for id, m := range names {
			if m == n {
				return id, true
			}
		}
		return 0, false
	}
	acl := ACL{
		{Tag: ACLOther, Perm: 0}, {Tag: ACLUser, Perm: 4, ID: 65534, HasID: true}, {Tag: ACLUserObj, Perm: 6},
		{Tag: ACLGroup, Perm: 6, ID: 4343, HasID: true}, {Tag: ACLGroupObj, Perm: 4}, {Tag: ACLMask, Perm: 6},
	}
	text := acl.Text(lookup, lookup)
	want := "user::rw-\nuser:nobody:r--\ngroup::r--\ngroup:4343:rw-\nmask::rw-\nother::---\n"
	if text != want {
		t.Fatalf("text %q, want %q", text, want)
	}
	parsed, err := ParseACLText(text)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := parsed.EncodeXattr(rev, rev)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeACLXattr(bin)
	if err != nil || back.Text(lookup, lookup) != want {
		t.Fatalf("round trip: %v %q", err, back.Text(lookup, lookup))
	}
	if g := parsed.GroupClass(); g != 4 {
		t.Errorf("group class %o, want 4 (group r-- under mask rw-)", g)
	}
	// star's form (a numeric id after the permissions), commas, comments.
	if a, err := ParseACLText("u::rw-,u:ghost:r--:1234,g::r-x #c\nm::r--,o::---"); err != nil || a.GroupClass() != 4 {
		t.Errorf("star form: %v %v", a, err)
	} else if _, err := a.EncodeXattr(rev, rev); err != nil {
		t.Errorf("an unknown name with a numeric id: %v", err)
	}
	if a, _ := ParseACLText("user::rw-\nuser:ghost:r--\ngroup::---\nmask::r--\nother::---\n"); a != nil {
		if _, err := a.EncodeXattr(rev, rev); err == nil || !strings.Contains(err.Error(), `no user "ghost"`) {
			t.Errorf("unknown name: %v", err)
		}
	}
	for _, bad := range []string{"", "user::rw-", "user::rw-\ngroup::r--\nother::---\nuser:x:r--\n", "user::rwz\ngroup::---\nother::---", "mask:x:rw-"} {
		if _, err := ParseACLText(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestSparseMember: a sparse file is archived in GNU sparse 1.0 form: GNU
// tar lists it with its real size and restores it sparse, Go's reader
// gives its content, and the manifest's SHA-256 is that of the content.
func TestSparseMember(t *testing.T) {
	testutil.Need(t, "tar")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	f, _ := os.Create(filepath.Join(src, "sparse"))
	f.WriteAt([]byte("head"), 0)
	f.WriteAt(bytes.Repeat([]byte("mid"), 5000), 9<<20)
	f.Truncate(40 << 20) // ends in a hole
	f.Close()
	f, _ = os.Create(filepath.Join(src, "holes-only"))
	f.Truncate(3 << 20)
	f.Close()
	content, _ := os.ReadFile(filepath.Join(src, "sparse"))
	var buf bytes.Buffer
	st, err := Write(context.Background(), &buf, Options{Host: "h", Sources: []string{src}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sparse != 2 {
		t.Fatalf("%d sparse files archived, want 2 (is this file system sparse-capable?)", st.Sparse)
	}
	if buf.Len() > 1<<20 {
		t.Errorf("archive of %d bytes: the holes were stored", buf.Len())
	}
	_, data := paxOf(t, bytes.NewReader(buf.Bytes()))
	prefix := strings.TrimPrefix(src, "/")
	if !bytes.Equal(data[prefix+"/sparse"], content) || len(data[prefix+"/holes-only"]) != 3<<20 {
		t.Errorf("Go's reader: %d and %d bytes back", len(data[prefix+"/sparse"]), len(data[prefix+"/holes-only"]))
	}
	tarFile := filepath.Join(dir, "a.tar")
	os.WriteFile(tarFile, buf.Bytes(), 0o644)
	out, err := exec.Command("tar", "-tvf", tarFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "41943040") || strings.Contains(string(out), "GNUSparseFile") {
		t.Errorf("tar -tv: %v\n%s", err, out)
	}
	dest := filepath.Join(dir, "out")
	os.Mkdir(dest, 0o755)
	shell(t, "tar -xf "+tarFile+" -C "+dest)
	got := filepath.Join(dest, prefix, "sparse")
	b, _ := os.ReadFile(got)
	var s unix.Stat_t
	unix.Stat(got, &s)
	if !bytes.Equal(b, content) || s.Blocks*512 >= s.Size/2 {
		t.Errorf("GNU tar restored %d bytes (%d allocated), want them sparse and equal", len(b), s.Blocks*512)
	}
}

// TestManifestV2RoundTrip: any bytes in names, link targets and attribute
// values, and any int64 mtime, survive the manifest.
func TestManifestV2RoundTrip(t *testing.T) {
	entries := []Entry{
		{Path: "caf\xe9/na\xefve", Type: TypeFile, Size: 1, SHA256: strings.Repeat("ab", 32), Mode: "0644", MTime: -62135596800},
		{Path: "\xff\xfe", Type: TypeSymlink, Link: "../caf\xe9", Mode: "0777", MTime: 1 << 40},
		{Path: "\xef\xbf\xbd", Type: TypeDir, Mode: "0755", MTime: -1 << 40, Attrs: Attrs{
			Xattrs:     []Xattr{{Name: "security.capability", Value: "\x01\x00\x00\x02\xff"}, {Name: "user.t", Value: "<é>&\u2028"}},
			ACL:        "user::rwx\nuser:j\xf6rg:r--\ngroup::r-x\nmask::r-x\nother::r-x\n",
			DefaultACL: "user::rwx\ngroup::r-x\nother::---\n",
		}},
		{Path: "line\nbreak\t\"q\"\\", Type: TypeHardlink, Link: "caf\xe9/na\xefve", Mode: "0644"},
	}
	raw, err := Manifest{Version: ManifestVersion, Host: "h", Created: time.Unix(1700000000, 0).UTC(), Sources: []string{"/"}, Entries: entries}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`{"base64":`)) || bytes.ContainsRune(raw, '\ufffd') && !bytes.Contains(raw, []byte("\xef\xbf\xbd")) {
		t.Errorf("manifest: %s", raw)
	}
	m, err := ParseManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Entries, entries) {
		t.Errorf("round trip:\n got %+v\nwant %+v", m.Entries, entries)
	}
	for _, e := range m.Entries {
		if got := e.Attrs.Digest(); got != (&Attrs{Xattrs: e.Attrs.Xattrs, ACL: e.Attrs.ACL, DefaultACL: e.Attrs.DefaultACL}).Digest() {
			t.Errorf("%q: digest unstable", e.Path)
		}
	}
}
