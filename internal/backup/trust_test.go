package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
)

// world is a dir store and the keys around it: the host key, a retired
// host key and an intruder's key.
type world struct {
	t                      *testing.T
	s                      *store.Dir
	host, retired, intrude *openpgp.Entity
	keys                   openpgp.EntityList // what a reader trusts
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, s: store.NewDir(t.TempDir())}
	var err error
	for _, k := range []**openpgp.Entity{&w.host, &w.retired, &w.intrude} {
		if *k, err = crypt.Generate("web1"); err != nil {
			t.Fatal(err)
		}
	}
	w.keys = openpgp.EntityList{w.host, w.retired}
	return w
}

// obj describes an object to plant and how its statement is made.
type obj struct {
	at      time.Time
	data    string
	stmt    string          // "signed" (v1), "legacy" (one line), "none"
	signer  *openpgp.Entity // nil: no .sig
	mutate  func(st *statement.Statement)
	sigOnly bool // a .sig but no statement
}

func (w *world) put(o obj) string {
	w.t.Helper()
	name, err := NewName(o.at)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := w.s.Put(ctx, name, strings.NewReader(o.data)); err != nil {
		w.t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(o.data))
	st := statement.Statement{Host: "web1", Object: name, Size: int64(len(o.data)), SHA256: hex.EncodeToString(sum[:])}
	if o.mutate != nil {
		o.mutate(&st)
	}
	var data []byte
	switch o.stmt {
	case "signed":
		data = st.Marshal()
	case "legacy":
		data = []byte(st.SHA256 + "  " + st.Object + "\n")
	}
	if data != nil && !o.sigOnly {
		if _, err := w.s.Put(ctx, name+SidecarSuffix, bytes.NewReader(data)); err != nil {
			w.t.Fatal(err)
		}
	}
	if o.signer != nil {
		if data == nil {
			data = st.Marshal()
		}
		sig, err := statement.Sign(data, o.signer)
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := w.s.Put(ctx, name+SignatureSuffix, bytes.NewReader(sig)); err != nil {
			w.t.Fatal(err)
		}
	}
	return name
}

func TestCheckStatement(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		o        obj
		want     error // nil: trusted
		unsigned bool
		signer   *openpgp.Entity
		says     string
	}{
		{"signed by the host key", obj{stmt: "signed", signer: w.host}, nil, false, w.host, ""},
		{"signed by a retired host key", obj{stmt: "signed", signer: w.retired}, nil, false, w.retired, ""},
		{"legacy sidecar, no signature", obj{stmt: "legacy"}, statement.ErrUnsigned, true, nil, "--allow-unsigned"},
		{"nothing beside it", obj{stmt: "none"}, statement.ErrUnsigned, true, nil, "--allow-unsigned"},
		{"statement without signature", obj{stmt: "signed"}, ErrNoSignature, false, nil, ".sig is missing"},
		{"signed by another key", obj{stmt: "signed", signer: nil}, statement.ErrOtherKey, false, nil, "do not restore it"},
		{"signature over another statement", obj{stmt: "signed", signer: w.host}, statement.ErrBadSignature, false, nil, "does not verify"},
		{"replayed statement of another object", obj{stmt: "signed", signer: w.host, mutate: func(s *statement.Statement) {
			s.Object = strings.Repeat("0", 16) + "T000000Z-" + strings.Repeat("a", 32) + Suffix
		}}, statement.ErrMismatch, false, nil, "names"},
		{"statement for another host", obj{stmt: "signed", signer: w.host, mutate: func(s *statement.Statement) { s.Host = "web2" }}, statement.ErrMismatch, false, nil, `host "web2"`},
		{"statement with another size", obj{stmt: "signed", signer: w.host, mutate: func(s *statement.Statement) { s.Size++ }}, statement.ErrMismatch, false, nil, "bytes"},
		{"legacy sidecar with a signature", obj{stmt: "legacy", signer: w.host}, statement.ErrMalformed, false, nil, "one-line"},
		{"signature without statement", obj{stmt: "signed", signer: w.host, sigOnly: true}, statement.ErrMalformed, false, nil, "the statement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.at, o.data = now, "object "+tc.name
			name := w.put(o)
			switch tc.name {
			case "signed by another key":
				// The intruder signs a statement that is right in
				// every other way.
				data, _ := os.ReadFile(w.s.Path(name + SidecarSuffix))
				sig, _ := statement.Sign(data, w.intrude)
				os.WriteFile(w.s.Path(name+SignatureSuffix), sig, 0o644)
				tc.says = crypt.Fingerprint(w.intrude)
			case "signature over another statement":
				data, _ := os.ReadFile(w.s.Path(name + SidecarSuffix))
				os.WriteFile(w.s.Path(name+SidecarSuffix), bytes.Replace(data, []byte("# size"), []byte("# size 0\n# was"), 1), 0o644)
			}
			info, err := w.s.Stat(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := CheckStatement(context.Background(), w.s, "web1", name, info.Size, w.keys)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if tr.Err != nil || tr.Signer != tc.signer || tr.Want() == "" || tr.Verdict() != "signed" {
					t.Fatalf("CheckStatement = %+v", tr)
				}
				return
			}
			if !errors.Is(tr.Err, tc.want) || tr.Unsigned() != tc.unsigned || tr.Signer != nil {
				t.Fatalf("CheckStatement: err %v (unsigned %v), want %v", tr.Err, tr.Unsigned(), tc.want)
			}
			t.Log(tr.Err)
			if msg := tr.Err.Error(); !strings.Contains(msg, name) || !strings.Contains(msg, tc.says) {
				t.Errorf("message %q should name %s and say %q", msg, name, tc.says)
			}
		})
	}
}

func TestLatest(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	t.Run("skips future, unsigned and untrusted objects", func(t *testing.T) {
		w := newWorld(t)
		w.put(obj{at: now.Add(-3 * time.Hour), data: "old", stmt: "signed", signer: w.retired})
		good := w.put(obj{at: now.Add(-2 * time.Hour), data: "good", stmt: "signed", signer: w.host})
		unsigned := w.put(obj{at: now.Add(-time.Hour), data: "legacy or planted", stmt: "legacy"})
		other := w.put(obj{at: now.Add(-time.Minute), data: "planted", stmt: "signed", signer: w.intrude})
		ahead := w.put(obj{at: now.Add(24 * time.Hour), data: "clock ahead", stmt: "signed", signer: w.host})
		planted := w.put(obj{at: now.Add(365 * 24 * time.Hour), data: "planted", stmt: "legacy"})
		ch, err := Latest(ctx, w.s, "web1", w.keys, now)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Name != good || ch.Signer != w.host || ch.FutureCount != 2 || len(ch.Future) != 2 || ch.Future[0] != planted || ch.Future[1] != ahead {
			t.Fatalf("Latest = %s signed by %v, future %d %v", ch.Name, ch.Signer, ch.FutureCount, ch.Future)
		}
		if len(ch.Skipped) != 2 || ch.Skipped[0].Name != other || ch.Skipped[1].Name != unsigned || !ch.Skipped[1].Unsigned() {
			t.Fatalf("skipped %+v", ch.Skipped)
		}
	})
	t.Run("within the clock skew counts", func(t *testing.T) {
		w := newWorld(t)
		w.put(obj{at: now.Add(-time.Hour), data: "a", stmt: "signed", signer: w.host})
		near := w.put(obj{at: now.Add(status.ClockSkew - time.Second), data: "b", stmt: "signed", signer: w.host})
		ch, err := Latest(ctx, w.s, "web1", w.keys, now)
		if err != nil || ch.Name != near || ch.FutureCount != 0 {
			t.Fatalf("Latest = %s, %d future, %v", ch.Name, ch.FutureCount, err)
		}
	})
	t.Run("bounded walk", func(t *testing.T) {
		w := newWorld(t)
		w.put(obj{at: now.Add(-48 * time.Hour), data: "good but too old", stmt: "signed", signer: w.host})
		for i := range MaxCandidates + 3 {
			w.put(obj{at: now.Add(-time.Duration(i+1) * time.Minute), data: fmt.Sprint(i), stmt: "legacy"})
		}
		ch, err := Latest(ctx, w.s, "web1", w.keys, now)
		if !errors.Is(err, ErrNoTrusted) || !strings.Contains(err.Error(), fmt.Sprintf("newest %d of %d", MaxCandidates, MaxCandidates+4)) ||
			len(ch.Skipped) != MaxCandidates {
			t.Fatalf("Latest = %s, %d skipped, %v", ch.Name, len(ch.Skipped), err)
		}
	})
	t.Run("only unsigned", func(t *testing.T) {
		w := newWorld(t)
		w.put(obj{at: now.Add(-time.Hour), data: "legacy", stmt: "legacy"})
		_, err := Latest(ctx, w.s, "web1", w.keys, now)
		if !errors.Is(err, ErrNoTrusted) || !strings.Contains(err.Error(), "--backup NAME --allow-unsigned") {
			t.Fatalf("Latest: %v", err)
		}
	})
	t.Run("only future", func(t *testing.T) {
		w := newWorld(t)
		w.put(obj{at: now.Add(time.Hour), data: "ahead", stmt: "signed", signer: w.host})
		ch, err := Latest(ctx, w.s, "web1", w.keys, now)
		if !errors.Is(err, ErrNoTrusted) || !strings.Contains(err.Error(), "in the future") || ch.FutureCount != 1 {
			t.Fatalf("Latest: %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		w := newWorld(t)
		if _, err := Latest(ctx, w.s, "web1", w.keys, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Latest: %v", err)
		}
	})
}

// Run stores the object, then its statement and the host key's signature
// over it; without a secret key it stores nothing.
func TestRunSigns(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pub := publicOnly(t, w.host)
	if _, err := Run(ctx, Params{Host: "web1", Sources: []string{src}, Recipients: pub, Store: w.s, Now: time.Now()}); err == nil {
		t.Fatal("Run without a signing key succeeded")
	}
	if objs, _ := Objects(ctx, w.s); len(objs) != 0 {
		t.Fatalf("an unsigned backup was stored: %v", objs)
	}
	// Nor without a time: a zero Now would name it in year 1.
	if _, err := Run(ctx, Params{Host: "web1", Sources: []string{src}, Recipients: pub, Signer: w.host, Store: w.s}); err == nil || !strings.Contains(err.Error(), "Params.Now is zero") {
		t.Fatalf("Run with a zero Now: %v", err)
	}
	if objs, _ := Objects(ctx, w.s); len(objs) != 0 {
		t.Fatalf("a backup without a time was stored: %v", objs)
	}
	res, err := Run(ctx, Params{Host: "web1", Sources: []string{src}, Recipients: pub, Signer: w.host, Store: w.s, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Signature != res.Name+SignatureSuffix || len(res.KeyIDs) != 1 {
		t.Fatalf("Result %+v", res)
	}
	k, _ := w.host.EncryptionKey(time.Now())
	if res.KeyIDs[0] != crypt.KeyID(k.PublicKey.KeyId) {
		t.Errorf("KeyIDs %v, want the host's encryption subkey %s", res.KeyIDs, crypt.KeyID(k.PublicKey.KeyId))
	}
	tr, err := CheckStatement(ctx, w.s, "web1", res.Name, res.BytesOut, pub)
	if err != nil || tr.Err != nil || tr.Want() != res.SHA256 || tr.Statement.Size != res.BytesOut {
		t.Fatalf("CheckStatement = %+v, %v", tr, err)
	}
}

func publicOnly(t *testing.T, e *openpgp.Entity) openpgp.EntityList {
	t.Helper()
	a, err := crypt.ArmorPublic(e)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypt.ParseKeys(a)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
