package evidence

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/drym-backup/drym/internal/crypt"
)

func encrypted(t *testing.T, to ...*openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := crypt.Encrypt(&buf, to)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("backup data "), 4096))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOpenProof(t *testing.T) {
	host, _ := crypt.Generate("web1")
	team, _ := crypt.Generate("team")
	other, _ := crypt.Generate("web1")
	msg := encrypted(t, host, team)
	head := msg[:HeadSize]

	ids, err := Recipients(head)
	if err != nil || len(ids) != 2 {
		t.Fatalf("recipients %v %v", ids, err)
	}
	if id, err := OpenProof(head, host); err != nil || id != EncryptionKeyIDs(host)[0] {
		t.Fatalf("host key: %x %v", id, err)
	}
	if _, err := OpenProof(head, team); err != nil {
		t.Fatalf("team key: %v", err)
	}
	if _, err := OpenProof(head, other); !errors.Is(err, ErrCannotOpen) || !strings.Contains(err.Error(), "no session key packet") {
		t.Fatalf("other key: %v", err)
	}
	// The session key packets intact, the data's first block altered: the
	// key decrypts a session key, the quick check catches the rest.
	r := bytes.NewReader(head)
	pr := packet.NewReader(r)
	for {
		p, err := pr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.(*packet.SymmetricallyEncrypted); ok {
			break
		}
	}
	bad := bytes.Clone(head)
	bad[len(head)-r.Len()+14] ^= 0x5a
	if _, err := OpenProof(bad, host); !errors.Is(err, ErrCannotOpen) || !strings.Contains(err.Error(), "quick check") {
		t.Fatalf("altered first block: %v", err)
	}
	// Only its public half: nothing decrypts.
	pubOnly, _ := crypt.ParseKeys(mustArmorPublic(t, host))
	if _, err := OpenProof(head, pubOnly[0]); !errors.Is(err, ErrCannotOpen) {
		t.Fatalf("public key: %v", err)
	}
	if _, err := Recipients(nil); err == nil {
		t.Fatal("empty object has recipients")
	}
	if _, err := OpenProof([]byte("not openpgp at all"), host); err == nil || errors.Is(err, ErrCannotOpen) {
		t.Fatalf("garbage: %v", err)
	}
}

func mustArmorPublic(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	b, err := crypt.ArmorPublic(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
