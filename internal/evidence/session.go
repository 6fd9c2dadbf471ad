package evidence

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/drym-backup/drym/internal/escrow"
)

// HeadSize is how much of an object is read to parse its session key
// packets and the first block of its encrypted data: a PKESK packet is
// about a hundred bytes per recipient.
const HeadSize = 8 << 10

// Recipients returns the key IDs of the public-key encrypted session key
// packets at the start of an object (head is its first bytes).
func Recipients(head []byte) ([]uint64, error) {
	if len(head) == 0 {
		return nil, errors.New("the object is empty")
	}
	return escrow.Recipients(head)
}

// ErrCannotOpen means the escrowed key does not open a backup: none of its
// session key packets decrypts with it, or the session key it yields does
// not decrypt the data's first block.
var ErrCannotOpen = errors.New("the escrowed key cannot open the backup")

// OpenProof proves that key (a secret key) opens the object whose first
// bytes are head: it decrypts a session key packet addressed to one of
// key's subkeys and checks the first block of the encrypted data against
// the quick check OpenPGP puts there (the last two octets of the random
// prefix, repeated). Only a few KiB are needed, never the whole object.
// It returns the key ID that opened it.
func OpenProof(head []byte, key *openpgp.Entity) (uint64, error) {
	pr := packet.NewReader(bytes.NewReader(head))
	var eks []*packet.EncryptedKey
	var data *packet.SymmetricallyEncrypted
	for data == nil {
		p, err := pr.Next()
		if err != nil {
			return 0, fmt.Errorf("not an OpenPGP message drym reads: %v", err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			eks = append(eks, p)
		case *packet.SymmetricallyEncrypted:
			data = p
		default:
			return 0, fmt.Errorf("unexpected %T packet before the encrypted data", p)
		}
	}
	if data.Version != 1 || !data.IntegrityProtected {
		return 0, fmt.Errorf("encrypted data of version %d (drym writes SEIPDv1 with MDC)", data.Version)
	}
	keys := openpgp.EntityList{key}
	for _, ek := range eks {
		for _, k := range keys.KeysById(ek.KeyId) {
			if k.PrivateKey == nil || k.PrivateKey.Encrypted || k.PrivateKey.Dummy() {
				continue
			}
			if err := ek.Decrypt(k.PrivateKey, &packet.Config{}); err != nil {
				continue
			}
			if err := quickCheck(data.Contents, ek.CipherFunc, ek.Key); err != nil {
				return ek.KeyId, fmt.Errorf("%w: the session key of packet %s decrypts but %v", ErrCannotOpen, FormatID(ek.KeyId), err)
			}
			return ek.KeyId, nil
		}
	}
	ids := make([]uint64, len(eks))
	for i, ek := range eks {
		ids[i] = ek.KeyId
	}
	return 0, fmt.Errorf("%w: no session key packet (for %s) decrypts with it", ErrCannotOpen, FormatIDs(ids))
}

// quickCheck decrypts the first block of SEIPDv1 data (CFB with a zero IV,
// no resynchronisation) and checks OpenPGP's quick check: the random
// prefix's last two octets are repeated right after it.
func quickCheck(r io.Reader, cf packet.CipherFunction, sk []byte) error {
	switch cf {
	case packet.CipherAES128, packet.CipherAES192, packet.CipherAES256:
	default:
		return fmt.Errorf("cipher %d is not one drym writes (AES)", cf)
	}
	if len(sk) != cf.KeySize() {
		return errors.New("the session key has the wrong size")
	}
	b, err := aes.NewCipher(sk)
	if err != nil {
		return err
	}
	bs := b.BlockSize()
	ct := make([]byte, bs+2)
	if _, err := io.ReadFull(r, ct); err != nil {
		return fmt.Errorf("the object ends before its first block: %v", err)
	}
	pt := cfbBlocks(b, ct)
	if pt[bs-2] != pt[bs] || pt[bs-1] != pt[bs+1] {
		return errors.New("its first block fails the quick check (wrong key, or damaged data)")
	}
	return nil
}

// cfbBlocks decrypts ct in CFB mode from a zero IV: each plaintext block is
// its ciphertext block XOR the encryption of the previous ciphertext block.
func cfbBlocks(b cipher.Block, ct []byte) []byte {
	bs := b.BlockSize()
	pt := make([]byte, len(ct))
	prev := make([]byte, bs)
	ks := make([]byte, bs)
	for off := 0; off < len(ct); off += bs {
		b.Encrypt(ks, prev)
		end := min(off+bs, len(ct))
		for i := off; i < end; i++ {
			pt[i] = ct[i] ^ ks[i-off]
		}
		if end-off == bs {
			copy(prev, ct[off:end])
		}
	}
	return pt
}
