package crypt

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// The key IDs the encrypter reports are the ones gpg reads from the
// message's session key packets, and ReadRecipients parses the same from
// the message's first bytes, naming the key that decrypts it.
func TestKeyIDs(t *testing.T) {
	host, _ := Generate("web1")
	extra, _ := Generate("team")
	retired, _ := Generate("web1")
	var buf bytes.Buffer
	w, err := Encrypt(&buf, []*openpgp.Entity{host, extra})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ids := w.KeyIDs()
	if len(ids) != 2 {
		t.Fatalf("KeyIDs = %v", ids)
	}
	hex16 := regexp.MustCompile(`^[0-9A-F]{16}$`)
	for i, e := range []*openpgp.Entity{host, extra} {
		k, _ := e.EncryptionKey(time.Now())
		if ids[i] != KeyID(k.PublicKey.KeyId) || !hex16.MatchString(ids[i]) {
			t.Errorf("KeyIDs[%d] = %s, want the encryption subkey %s", i, ids[i], KeyID(k.PublicKey.KeyId))
		}
	}
	// gpg lists the same IDs (it needs only the message for that).
	run := gpgHome(t, t.TempDir(), host)
	out, _ := run(buf.Bytes(), "--list-packets", "--list-only")
	got := regexp.MustCompile(`keyid ([0-9A-F]{16})`).FindAllStringSubmatch(string(out), -1)
	var fromGPG []string
	for _, m := range got {
		fromGPG = append(fromGPG, m[1])
	}
	if !slices.Equal(fromGPG, ids) {
		t.Errorf("gpg --list-packets: %v, encrypter: %v\n%s", fromGPG, ids, out)
	}

	msg := buf.Bytes()
	for _, tc := range []struct {
		name string
		keys openpgp.EntityList
		want *openpgp.Entity
	}{
		{"host key first", openpgp.EntityList{host, retired}, host},
		{"a retired key listed first does not decrypt it", openpgp.EntityList{retired, extra}, extra},
		{"no key of ours", openpgp.EntityList{retired}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ReadRecipients(msg[:min(len(msg), 600)], tc.keys)
			if err != nil || !slices.Equal(r.KeyIDs, ids) || r.DecryptedBy != tc.want {
				t.Fatalf("ReadRecipients = %v %v, %v; want %v by %v", r.KeyIDs, r.DecryptedBy, err, ids, tc.want)
			}
		})
	}
	for _, bad := range [][]byte{nil, []byte("not openpgp at all"), msg[:3]} {
		if _, err := ReadRecipients(bad, openpgp.EntityList{host}); err == nil {
			t.Errorf("ReadRecipients(%q) accepted it", bad)
		}
	}
	// A message gpg wrote to the host key reads the same way.
	fromGPG2, _ := run([]byte("x"), "--encrypt", "--recipient", Fingerprint(host))
	r, err := ReadRecipients(fromGPG2, openpgp.EntityList{retired, host})
	if err != nil || r.DecryptedBy != host || len(r.KeyIDs) != 1 || r.KeyIDs[0] != ids[0] {
		t.Fatalf("gpg's message: %v %v", r, err)
	}
}

// Retired keys are named after the first 16 hex digits of the
// fingerprint (as escrow zips are), and keys retired under the older name
// (the last 16) are still found.
func TestRetiredKeyFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "host-key.asc")
	e, _ := Generate("web1")
	at := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	p := RetiredKeyPath(keyFile, e, at)
	if want := keyFile + "." + Fingerprint(e)[:16] + ".retired-20261102T030405Z"; p != want {
		t.Fatalf("RetiredKeyPath = %s, want %s", p, want)
	}
	old := keyFile + "." + Fingerprint(e)[24:] + ".retired-20250101T000000Z"
	for _, f := range []string{p, p + ".pub", old, old + ".pub", keyFile, filepath.Join(dir, "host-key.pub.asc")} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sec, pub := RetiredKeyFiles(keyFile)
	if !slices.Equal(sec, []string{p, old}) || !slices.Equal(pub, []string{p + ".pub", old + ".pub"}) {
		t.Fatalf("RetiredKeyFiles = %v, %v", sec, pub)
	}
}
