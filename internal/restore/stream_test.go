package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/klauspost/compress/zstd"

	"github.com/drym-backup/drym/internal/archive"
	"github.com/drym-backup/drym/internal/crypt"
)

var (
	keyOnce          sync.Once
	hostKey, elseKey *openpgp.Entity
)

// keys returns two generated keys, shared by the tests of this package.
func keys(t testing.TB) (*openpgp.Entity, *openpgp.Entity) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if hostKey, err = crypt.Generate("host"); err != nil {
			t.Fatal(err)
		}
		if elseKey, err = crypt.Generate("elsewhere"); err != nil {
			t.Fatal(err)
		}
	})
	return hostKey, elseKey
}

// sealTar compresses and encrypts a tar stream as a backup object.
func sealTar(t testing.TB, tarData []byte, to *openpgp.Entity) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := crypt.Encrypt(&out, []*openpgp.Entity{to})
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(enc, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(tarData); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// archiveTree returns a drym tar stream (with manifest) of src.
func archiveTree(t testing.TB, src string) ([]byte, archive.Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := archive.Write(context.Background(), &buf, archive.Options{Host: "host", Sources: []string{src}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

// sourceTree builds a small tree with the things a restore must get right.
func sourceTree(t testing.TB) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc", "ssl", "private"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "var", "www", "écrits"), 0o750))
	must(os.WriteFile(filepath.Join(src, "etc", "hosts"), []byte("127.0.0.1 localhost\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "etc", "ssl", "private", "key.pem"), []byte("secret\n"), 0o600))
	must(os.WriteFile(filepath.Join(src, "var", "www", "écrits", "naïve – 日本語.txt"), bytes.Repeat([]byte("données "), 5000), 0o640))
	must(os.WriteFile(filepath.Join(src, "var", "www", "empty"), nil, 0o644))
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7 / 5)
	}
	must(os.WriteFile(filepath.Join(src, "var", "big.bin"), big, 0o755))
	must(os.Symlink("hosts", filepath.Join(src, "etc", "hosts.link")))
	must(os.Symlink("/nonexistent/abs", filepath.Join(src, "etc", "dangling")))
	must(os.Link(filepath.Join(src, "etc", "hosts"), filepath.Join(src, "etc", "hosts.hard")))
	must(os.Chmod(filepath.Join(src, "etc", "ssl", "private"), 0o700))
	old := time.Date(2020, 2, 29, 12, 34, 56, 0, time.UTC)
	for _, p := range []string{"etc/hosts", "var/big.bin", "etc/ssl/private", "var/www/écrits"} {
		must(os.Chtimes(filepath.Join(src, p), old, old))
	}
	return src
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testRestore runs what `backup_runner test-restore` runs on an object.
func testRestore(t testing.TB, obj []byte, key *openpgp.Entity, want ...Want) (Report, Result, error) {
	t.Helper()
	ctx := context.Background()
	s := Open(ctx, bytes.NewReader(obj), openpgp.EntityList{key}, nil)
	rep, rerr := Verify(ctx, s, nil)
	res, err := s.Finish(rerr, want...)
	return rep, res, err
}

// plainTar builds a tar stream from members; a member with Typeflag 0 and
// body is a regular file.
type member struct {
	hdr  tar.Header
	body string
}

func plainTar(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := m.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, m.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestObjectFaults(t *testing.T) {
	host, other := keys(t)
	src := sourceTree(t)
	tarData, st := archiveTree(t, src)
	good := sealTar(t, tarData, host)
	wantSum := Want{SHA256: sum(good), From: "sidecar x.sha256"}
	flip := func(pos int) []byte {
		b := bytes.Clone(good)
		b[pos] ^= 0x40
		return b
	}
	noManifest := plainTar(t, member{hdr: tar.Header{Name: "etc/hosts"}, body: "x"})

	tests := []struct {
		name string
		obj  []byte
		key  *openpgp.Entity
		want []Want
		// errIs and errHas describe the failure; both empty means ok.
		errIs      error
		errHas     string
		noManifest bool
	}{
		{name: "good", obj: good, key: host, want: []Want{wantSum}},
		{name: "good without sidecar", obj: good, key: host},
		{name: "flip in the key packet", obj: flip(20), key: host, want: []Want{wantSum}, errIs: crypt.ErrIntegrity, errHas: "differs from"},
		{name: "flip early in the data", obj: flip(400), key: host, want: []Want{wantSum}, errIs: crypt.ErrIntegrity, errHas: "modification detection code"},
		{name: "flip in the middle", obj: flip(len(good) / 2), key: host, want: []Want{wantSum}, errIs: crypt.ErrIntegrity, errHas: "modification detection code"},
		{name: "flip in the middle, no sidecar", obj: flip(len(good) / 2), key: host, errIs: crypt.ErrIntegrity, errHas: "modification detection code"},
		{name: "flip in the MDC", obj: flip(len(good) - 3), key: host, want: []Want{wantSum}, errIs: crypt.ErrIntegrity},
		{name: "truncated in the middle", obj: good[:len(good)/2], key: host, want: []Want{wantSum}, errIs: crypt.ErrIntegrity, errHas: "truncated"},
		{name: "truncated by one byte", obj: good[:len(good)-1], key: host, errIs: crypt.ErrIntegrity, errHas: "truncated"},
		{name: "empty object", obj: nil, key: host, errHas: "cannot decrypt"},
		{name: "trailing garbage", obj: append(bytes.Clone(good), "junk"...), key: host, errIs: crypt.ErrIntegrity, errHas: "after the encrypted message"},
		{name: "other key", obj: good, key: other, want: []Want{wantSum}, errIs: crypt.ErrNoKey},
		{name: "sidecar disagrees", obj: good, key: host, want: []Want{{SHA256: strings.Repeat("0", 64), From: "backup.json"}}, errIs: crypt.ErrIntegrity, errHas: "backup.json"},
		{name: "no manifest", obj: sealTar(t, noManifest, host), key: host, noManifest: true},
		{name: "not zstd", obj: func() []byte {
			var out bytes.Buffer
			enc, _ := crypt.Encrypt(&out, []*openpgp.Entity{host})
			enc.Write(tarData)
			enc.Close()
			return out.Bytes()
		}(), key: host, errHas: "decompressing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, res, err := testRestore(t, tt.obj, tt.key, tt.want...)
			if tt.errIs == nil && tt.errHas == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if res.ObjectSHA256 != sum(tt.obj) || res.ObjectBytes != int64(len(tt.obj)) {
					t.Errorf("object sha256/bytes = %s/%d, want %s/%d", res.ObjectSHA256, res.ObjectBytes, sum(tt.obj), len(tt.obj))
				}
				if res.SHA256Checked != (len(tt.want) > 0) {
					t.Errorf("SHA256Checked = %v", res.SHA256Checked)
				}
				if tt.noManifest {
					if rep.Verified {
						t.Error("verified without a manifest")
					}
					return
				}
				if !rep.Verified || rep.Problems.Count != 0 {
					t.Fatalf("verified=%v problems=%v", rep.Verified, rep.Problems)
				}
				if rep.Files != st.Files || rep.Bytes != st.BytesIn {
					t.Errorf("files/bytes = %d/%d, source %d/%d", rep.Files, rep.Bytes, st.Files, st.BytesIn)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error (verified=%v problems=%v)", rep.Verified, rep.Problems)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("err = %v, want %v", err, tt.errIs)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want it to say %q", err, tt.errHas)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err spans lines: %q", err)
			}
		})
	}
}

func TestVerifyMismatches(t *testing.T) {
	mt := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(p, typ, body, link string) archive.Entry {
		e := archive.Entry{Path: p, Type: typ, Mode: "0644", MTime: mt.Unix(), Link: link}
		if typ == archive.TypeFile {
			e.Size, e.SHA256 = int64(len(body)), sum([]byte(body))
		}
		if typ == archive.TypeDir {
			e.Mode = "0755"
		}
		return e
	}
	man := func(es ...archive.Entry) member {
		b, _ := jsonManifest(es)
		return member{hdr: tar.Header{Name: archive.ManifestName, ModTime: mt}, body: string(b)}
	}
	file := func(p, body string) member { return member{hdr: tar.Header{Name: p, ModTime: mt}, body: body} }
	dir := member{hdr: tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}}
	link := func(p, to string, typ byte) member {
		return member{hdr: tar.Header{Name: p, Linkname: to, Typeflag: typ, ModTime: mt}}
	}
	goodMan := man(entry("d", archive.TypeDir, "", ""), entry("d/a", archive.TypeFile, "alpha", ""),
		entry("d/l", archive.TypeSymlink, "", "a"), entry("d/h", archive.TypeHardlink, "", "d/a"))

	tests := []struct {
		name    string
		members []member
		want    []string // substrings of the problems, in order; nil means none
	}{
		{"good", []member{dir, file("d/a", "alpha"), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan}, nil},
		{"content changed", []member{dir, file("d/a", "alphA"), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan}, []string{"d/a: content differs"}},
		{"size changed", []member{dir, file("d/a", "alpha!"), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan}, []string{"d/a: size 6"}},
		{"missing file", []member{dir, link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan}, []string{"d/a: in the manifest but missing"}},
		{"unexpected file", []member{dir, file("d/a", "alpha"), file("d/x", ""), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan}, []string{"d/x: in the archive but not in the manifest"}},
		{"symlink target", []member{dir, file("d/a", "alpha"), link("d/l", "b", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan}, []string{`d/l: links to "b"`}},
		{"hard link target", []member{dir, file("d/a", "alpha"), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/l", tar.TypeLink), goodMan}, []string{`d/h: links to "d/l"`}},
		{"type changed", []member{dir, file("d/a", "alpha"), file("d/l", ""), link("d/h", "d/a", tar.TypeLink), goodMan}, []string{"d/l: is a file in the archive, a symlink"}},
		{"member after manifest", []member{dir, file("d/a", "alpha"), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan, file("d/z", "")}, []string{"d/z: member after the manifest", "d/z: in the archive but not"}},
		{"device node", []member{dir, file("d/a", "alpha"), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), {hdr: tar.Header{Name: "d/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, goodMan}, []string{"d/null: unsupported member type"}},
		{"absolute name", []member{{hdr: tar.Header{Name: "/etc/passwd"}, body: "x"}, dir, file("d/a", "alpha"), link("d/l", "a", tar.TypeSymlink), link("d/h", "d/a", tar.TypeLink), goodMan}, []string{"refused member: absolute name"}},
		{"garbled manifest", []member{dir, {hdr: tar.Header{Name: archive.ManifestName}, body: "{nope"}}, []string{"manifest.json: manifest:", "d: in the archive but not"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Verify(context.Background(), bytes.NewReader(plainTar(t, tt.members...)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Verified {
				t.Fatal("not verified")
			}
			if rep.Problems.Count != len(tt.want) {
				t.Fatalf("problems = %d %q, want %d %q", rep.Problems.Count, rep.Problems.List, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(rep.Problems.List[i], w) {
					t.Errorf("problem %d = %q, want %q", i, rep.Problems.List[i], w)
				}
			}
		})
	}
}

func TestProblemsBounded(t *testing.T) {
	var ms []member
	for i := range 100 {
		ms = append(ms, member{hdr: tar.Header{Name: "f" + string(rune('a'+i%26)) + strings.Repeat("x", i)}, body: "x"})
	}
	ms = append(ms, member{hdr: tar.Header{Name: archive.ManifestName}, body: `{"version":1,"entries":[]}`})
	rep, err := Verify(context.Background(), bytes.NewReader(plainTar(t, ms...)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problems.Count != 100 || len(rep.Problems.List) != MaxListed {
		t.Fatalf("count %d, listed %d", rep.Problems.Count, len(rep.Problems.List))
	}
	if s := rep.Problems.Summary(); !strings.Contains(s, "and 99 more") {
		t.Errorf("summary %q", s)
	}
}
