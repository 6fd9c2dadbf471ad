// Package evidencetest stocks a destination and an escrow location with
// what drym hosts put there: real encrypted objects, signed statements,
// escrow zips and their public records, stored at chosen times. The
// storage-side checks' tests judge hosts from these, on a real S3 server
// or in a directory.
package evidencetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/testutil"
)

// Sink is where objects go: a bucket or a directory. Put stores data under
// key and sets its stored time (LastModified) to at.
type Sink interface {
	Put(t testing.TB, key string, data []byte, at time.Time)
	Delete(t testing.TB, key string)
}

// S3Sink writes into srv's bucket as root, and sets stored times where the
// server allows it (testutil.S3Server.Backdate); elsewhere a stored time
// more than a minute from now is a test bug, caught here.
func S3Sink(srv *testutil.S3Server) Sink { return s3Sink{srv} }

type s3Sink struct{ srv *testutil.S3Server }

func (s s3Sink) Put(t testing.TB, key string, data []byte, at time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.srv.Root().PutObject(ctx, &s3.PutObjectInput{Bucket: &s.srv.Bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	if !s.srv.Backdate(key, at) {
		if d := time.Until(at); d < -time.Minute || d > time.Minute {
			t.Fatalf("%s cannot store %s as of %s: only objects stored now (see testutil.S3Server.Backdate)", s.srv.Engine, key, at.Format(time.RFC3339))
		}
	}
}

func (s s3Sink) Delete(t testing.TB, key string) {
	t.Helper()
	if _, err := s.srv.Root().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &s.srv.Bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
}

// DirSink writes files under dir.
func DirSink(dir string) Sink { return dirSink(dir) }

type dirSink string

func (d dirSink) Put(t testing.TB, key string, data []byte, at time.Time) {
	t.Helper()
	p := filepath.Join(string(d), filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
}

func (d dirSink) Delete(t testing.TB, key string) {
	t.Helper()
	if err := os.Remove(filepath.Join(string(d), filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
}

// Host is one drym host: its key and where its objects go.
type Host struct {
	Name string
	Key  *openpgp.Entity
	// Prefix is the destination's key prefix ("drym" for s3://bucket/drym,
	// "" for a directory), EscrowPrefix the escrow location's.
	Prefix, EscrowPrefix string
	Sink                 Sink
}

// NewHost makes a host with a fresh key.
func NewHost(t testing.TB, name, prefix, escrowPrefix string, sink Sink) *Host {
	t.Helper()
	k, err := crypt.Generate(name)
	if err != nil {
		t.Fatal(err)
	}
	return &Host{Name: name, Key: k, Prefix: prefix, EscrowPrefix: escrowPrefix, Sink: sink}
}

// Backup is what Backup stored, by full key.
type Backup struct {
	Name                         string // the object's name in the host's folder
	Object, Statement, Signature string // full keys
	Data, StatementData, SigData []byte
	Made, Stored                 time.Time
}

// Path is the full key of name in the host's folder.
func (h *Host) Path(name string) string { return path.Join(h.Prefix, h.Name, name) }

// Backup stores a backup named at made and stored at stored: size bytes of
// data encrypted to to (the host key when none is given), its statement
// signed by the host key.
func (h *Host) Backup(t testing.TB, made, stored time.Time, size int, to ...*openpgp.Entity) Backup {
	t.Helper()
	if len(to) == 0 {
		to = []*openpgp.Entity{h.Key}
	}
	var buf bytes.Buffer
	w, err := crypt.Encrypt(&buf, to)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, size)
	rand.Read(plain)
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return h.Put(t, made, stored, buf.Bytes(), h.Key)
}

// Put stores data as a backup named at made, stored at stored, with a
// statement signed by signer (none when signer is nil).
func (h *Host) Put(t testing.TB, made, stored time.Time, data []byte, signer *openpgp.Entity) Backup {
	t.Helper()
	var hexb [16]byte
	rand.Read(hexb[:])
	name := made.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(hexb[:]) + ".tar.zst.gpg"
	sum := sha256.Sum256(data)
	st := statement.Statement{Host: h.Name, Object: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	b := Backup{Name: name, Object: h.Path(name), Statement: h.Path(name + statement.SidecarSuffix), Signature: h.Path(name + statement.SignatureSuffix),
		Data: data, StatementData: st.Marshal(), Made: made, Stored: stored}
	h.Sink.Put(t, b.Object, data, stored)
	h.Sink.Put(t, b.Statement, b.StatementData, stored)
	if signer != nil {
		sig, err := statement.Sign(b.StatementData, signer)
		if err != nil {
			t.Fatal(err)
		}
		b.SigData = sig
		h.Sink.Put(t, b.Signature, sig, stored)
	}
	return b
}

// Escrow ships an escrow zip of the host's current key (and its public
// record) dated day and stored at stored; it returns the zip's full key.
func (h *Host) Escrow(t testing.TB, day, stored time.Time) string {
	t.Helper()
	cfg := &config.Config{Host: h.Name, Sources: []string{"/etc"}, StateDir: "/var/lib/drym", KeyFile: "/etc/drym/host-key.asc",
		Destination: config.Remote{URL: "s3://bucket/" + h.Prefix}}
	z, err := escrow.Build(escrow.Params{Config: cfg, Key: h.Key, Now: day})
	if err != nil {
		t.Fatal(err)
	}
	f, err := escrow.Inspect(bytes.NewReader(z.Data), int64(len(z.Data)), escrow.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := evidence.EscrowedKeyIDs(f)
	if err != nil {
		t.Fatal(err)
	}
	set := sha256.Sum256(f.Contents[escrow.MemberConfig])
	rec := &escrow.Record{Schema: escrow.RecordSchema, Host: h.Name, Zip: z.Name(1), ZipSize: int64(len(z.Data)), ZipSHA256: z.SHA256,
		Fingerprint: z.Fingerprint, SettingsSHA256: hex.EncodeToString(set[:]), PublicKey: string(f.Contents[escrow.MemberPublic]),
		Shipped: stored.UTC(), Version: "test"}
	for _, id := range ids {
		rec.EncryptionKeyIDs = append(rec.EncryptionKeyIDs, evidence.FormatID(id))
	}
	data, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	key := path.Join(h.EscrowPrefix, z.Name(1))
	h.Sink.Put(t, key, z.Data, stored)
	h.Sink.Put(t, key+escrow.RecordSuffix, data, stored)
	return key
}

// PinKey writes the host's public key into dir as <host>.pub.asc.
func (h *Host) PinKey(t testing.TB, dir string) {
	t.Helper()
	pub, err := crypt.ArmorPublic(h.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, h.Name+".pub.asc"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
}

// AddSubkey adds an encryption subkey to the host key, as gpg
// --quick-add-key <fpr> cv25519 encr does: new backups are encrypted to it,
// and an escrow shipped before it cannot open them.
func (h *Host) AddSubkey(t testing.TB) {
	t.Helper()
	// Key times have one-second resolution: the new subkey must be the
	// newer one for encryption to choose it (and not dated in the future).
	time.Sleep(1100 * time.Millisecond)
	c := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519, Time: time.Now}
	if err := h.Key.AddEncryptionSubkey(c); err != nil {
		t.Fatal(err)
	}
}
