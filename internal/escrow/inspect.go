package escrow

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
)

// Limits bound what Inspect accepts. A real escrow zip is about 20 KiB with
// members of a few KiB; everything far beyond that is damage or an attack
// (a zip bomb must cost bounded memory and time, not the monitoring host).
type Limits struct {
	MaxZip     int64 // size of the zip itself
	MaxEntries int   // entries in the central directory
	MaxMember  int64 // uncompressed bytes of one member
	MaxTotal   int64 // uncompressed bytes of all members
	MaxRatio   int64 // uncompressed/compressed of a member larger than ratioFloor
}

// DefaultLimits fit real zips a hundred times over.
var DefaultLimits = Limits{MaxZip: 8 << 20, MaxEntries: 32, MaxMember: 1 << 20, MaxTotal: 4 << 20, MaxRatio: 100}

// ratioFloor: small members may compress very well (a short, repetitive
// file); the ratio only says "bomb" for larger ones.
const ratioFloor = 64 << 10

// ErrBroken is every reason Inspect refuses a zip (errors.Is): the escrow
// copy is not usable, and a new one must be shipped. The reason itself is
// a *BrokenError's (errors.As).
var ErrBroken = errors.New("escrow zip is unusable")

// BrokenError is why a zip is unusable; it is ErrBroken.
type BrokenError struct {
	Reason string // "member \"drym-web1/restore.sh\" fails its CRC check: …"
}

func (e *BrokenError) Error() string { return ErrBroken.Error() + ": " + e.Reason }

// Is makes a BrokenError ErrBroken.
func (e *BrokenError) Is(target error) bool { return target == ErrBroken }

// Broken is a *BrokenError whose reason is formatted like fmt.Sprintf.
func Broken(format string, a ...any) error {
	return &BrokenError{Reason: fmt.Sprintf(format, a...)}
}

// Facts is what an escrow zip holds, as far as the checks care.
type Facts struct {
	// Host is the host named by the folder drym-<host>/.
	Host string
	// Fingerprint is that of the public key member (the secret member, when
	// bare, has been checked to be the same key).
	Fingerprint string
	// SecretEncrypted is true for host-key.asc.gpg; SecretRecipients are
	// the key IDs it is encrypted to.
	SecretEncrypted  bool
	SecretRecipients []uint64
	KeyCreated       time.Time
	// KeyExpires is when the key (or its encryption subkey) expires; zero
	// when it never does.
	KeyExpires time.Time
	// Config is the escrowed settings file.
	Config *config.Config
	// Contents holds every member by its name inside the folder.
	Contents map[string][]byte
	// Uncompressed is the total of all members.
	Uncompressed int64
}

// Inspect reads a zip of size bytes from r and checks it fully: bounded
// entry count, sizes and ratios; safe member names in one drym-<host>/
// folder; every member read to its end (so its CRC is checked); the required
// members present; SHA256SUMS matching; the keys parseable and the bare
// secret key (when there is one) the same key as the public one. Every error
// wraps ErrBroken. Nothing is written anywhere.
func Inspect(r io.ReaderAt, size int64, lim Limits) (*Facts, error) {
	if size == 0 {
		return nil, Broken("empty file (0 bytes)")
	}
	if size > lim.MaxZip {
		return nil, Broken("%d bytes, more than the %d a real escrow zip could be", size, lim.MaxZip)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, Broken("not a readable zip: %v", err)
	}
	if len(zr.File) == 0 {
		return nil, Broken("the zip has no members")
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, Broken("%d entries, more than %d", len(zr.File), lim.MaxEntries)
	}
	f := &Facts{Contents: map[string][]byte{}}
	var total int64
	for _, zf := range zr.File {
		name, err := f.admit(zf, lim)
		if err != nil {
			return nil, err
		}
		if name == "" { // the folder's own entry
			continue
		}
		data, err := readMember(zf, min(lim.MaxMember, lim.MaxTotal-total))
		if err != nil {
			return nil, err
		}
		total += int64(len(data))
		f.Contents[name] = data
	}
	f.Uncompressed = total
	if f.Host == "" {
		return nil, Broken("no drym-<host>/ folder")
	}
	for _, m := range requiredMembers {
		if _, ok := f.Contents[m]; !ok {
			return nil, Broken("member %s/%s is missing", Folder(f.Host), m)
		}
	}
	_, bare := f.Contents[MemberSecret]
	_, enc := f.Contents[MemberSecretEncrypted]
	switch {
	case bare && enc:
		return nil, Broken("holds both %s and %s", MemberSecret, MemberSecretEncrypted)
	case !bare && !enc:
		return nil, Broken("no secret key member (%s or %s): the escrow cannot decrypt anything", MemberSecret, MemberSecretEncrypted)
	}
	if err := checkSums(f); err != nil {
		return nil, err
	}
	if err := f.parseKeys(); err != nil {
		return nil, err
	}
	cfg, err := config.Parse(Folder(f.Host)+"/"+MemberConfig, f.Contents[MemberConfig])
	if err != nil {
		return nil, Broken("escrowed settings: %v", err)
	}
	f.Config = cfg
	return f, nil
}

// admit checks one zip entry before a byte of it is read: a safe name in
// the one drym-<host>/ folder, a known member seen once, a regular file,
// within the size and ratio bounds. It returns the member's name inside the
// folder ("" for the folder's own entry).
func (f *Facts) admit(zf *zip.File, lim Limits) (string, error) {
	folder, name, err := splitName(zf.Name)
	if err != nil {
		return "", err
	}
	if f.Host == "" {
		f.Host = folder
	} else if folder != f.Host {
		return "", Broken("members in two folders (drym-%s/ and drym-%s/)", f.Host, folder)
	}
	if name == "" {
		if zf.UncompressedSize64 != 0 {
			return "", Broken("folder entry %q has content", zf.Name)
		}
		return "", nil
	}
	_, dup := f.Contents[name]
	switch {
	case !knownMember(name):
		return "", Broken("unexpected member %q (an escrow zip holds only %s)", zf.Name, strings.Join(allMembers, ", "))
	case dup:
		return "", Broken("member %q appears twice", zf.Name)
	case !zf.Mode().IsRegular():
		return "", Broken("member %q is not a regular file (%s)", zf.Name, zf.Mode().Type())
	case zf.UncompressedSize64 > uint64(lim.MaxMember):
		return "", Broken("member %q claims %d bytes, more than %d", zf.Name, zf.UncompressedSize64, lim.MaxMember)
	case zf.UncompressedSize64 > ratioFloor && (zf.CompressedSize64 == 0 || zf.UncompressedSize64/zf.CompressedSize64 > uint64(lim.MaxRatio)):
		return "", Broken("member %q compresses %d bytes into %d: a zip bomb, not an escrow", zf.Name, zf.UncompressedSize64, zf.CompressedSize64)
	}
	return name, nil
}

var allMembers = []string{MemberSecret, MemberSecretEncrypted, MemberPublic, MemberConfig, MemberRestoreDoc, MemberRestoreScript, MemberSums}

func knownMember(name string) bool { return slices.Contains(allMembers, name) }

// splitName checks a member name and splits it into the host of its folder
// and the name inside ("" for the folder itself). Names that could leave the
// folder when unzipped are refused, whatever unzip would make of them.
func splitName(raw string) (host, name string, err error) {
	if raw == "" || strings.ContainsAny(raw, "\\\x00") || strings.HasPrefix(raw, "/") || strings.Contains(raw, ":") {
		return "", "", Broken("unsafe member name %q", raw)
	}
	for _, part := range strings.Split(strings.TrimSuffix(raw, "/"), "/") {
		if part == ".." || part == "." || part == "" {
			return "", "", Broken("unsafe member name %q (empty, '.' or '..' parts)", raw)
		}
	}
	if path.Clean(raw) != strings.TrimSuffix(raw, "/") {
		return "", "", Broken("unsafe member name %q", raw)
	}
	folder, name, _ := strings.Cut(raw, "/")
	host, ok := strings.CutPrefix(folder, "drym-")
	if !ok || !config.ValidHost(host) {
		return "", "", Broken("member %q is not under a drym-<host>/ folder", raw)
	}
	if strings.Contains(name, "/") {
		return "", "", Broken("unexpected member %q (no subfolders in an escrow zip)", raw)
	}
	return host, name, nil
}

// readMember reads a member fully (the CRC is checked at its end) and at
// most limit bytes, whatever its header claims.
func readMember(zf *zip.File, limit int64) ([]byte, error) {
	if limit <= 0 {
		return nil, Broken("members add up to more than the limit")
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, Broken("member %q: %v", zf.Name, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(rc, limit+1))
	if err != nil {
		if errors.Is(err, zip.ErrChecksum) {
			return nil, Broken("member %q fails its CRC check: the zip is damaged", zf.Name)
		}
		return nil, Broken("member %q: %v", zf.Name, err)
	}
	if n > limit {
		return nil, Broken("member %q is larger than %d bytes", zf.Name, limit)
	}
	return buf.Bytes(), nil
}

// checkSums verifies SHA256SUMS: every other member listed, every listed
// member present and matching.
func checkSums(f *Facts) error {
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(f.Contents[MemberSums]))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			return Broken("%s: bad line %q", MemberSums, line)
		}
		name = strings.TrimPrefix(name, "*")
		data, present := f.Contents[name]
		if !present {
			return Broken("%s lists %s, which is not in the zip", MemberSums, name)
		}
		h := sha256.Sum256(data)
		if !strings.EqualFold(sum, hex.EncodeToString(h[:])) {
			return Broken("%s: %s does not match its checksum: the member was altered", MemberSums, name)
		}
		listed[name] = true
	}
	for name := range f.Contents {
		if name != MemberSums && !listed[name] {
			return Broken("%s does not list %s", MemberSums, name)
		}
	}
	return nil
}

func (f *Facts) parseKeys() error {
	pub, err := crypt.ParseKeys(f.Contents[MemberPublic])
	if err != nil {
		return Broken("%s: %v", MemberPublic, err)
	}
	if len(pub) != 1 {
		return Broken("%s holds %d keys, want 1", MemberPublic, len(pub))
	}
	f.Fingerprint = crypt.Fingerprint(pub[0])
	f.KeyCreated = pub[0].PrimaryKey.CreationTime.UTC()
	f.KeyExpires = Expiry(pub[0])
	if data, ok := f.Contents[MemberSecret]; ok {
		sec, err := crypt.ParseKeys(data)
		if err != nil {
			return Broken("%s: %v", MemberSecret, err)
		}
		if len(sec) != 1 || sec[0].PrivateKey == nil {
			return Broken("%s holds no single secret key", MemberSecret)
		}
		if got := crypt.Fingerprint(sec[0]); got != f.Fingerprint {
			return Broken("%s is key %s but %s is key %s", MemberSecret, got, MemberPublic, f.Fingerprint)
		}
		if sec[0].PrivateKey.Encrypted {
			return Broken("%s is protected by a passphrase: the runner and restore.sh cannot use it", MemberSecret)
		}
		return nil
	}
	f.SecretEncrypted = true
	ids, err := Recipients(f.Contents[MemberSecretEncrypted])
	if err != nil {
		return Broken("%s: %v", MemberSecretEncrypted, err)
	}
	f.SecretRecipients = ids
	return nil
}

// Recipients returns the key IDs an OpenPGP message is encrypted to,
// reading only its leading packets (nothing is decrypted).
func Recipients(msg []byte) ([]uint64, error) {
	pr := packet.NewReader(bytes.NewReader(msg))
	var ids []uint64
	for {
		p, err := pr.Next()
		if err != nil {
			return nil, fmt.Errorf("not an OpenPGP message: %v", err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			ids = append(ids, p.KeyId)
		case *packet.SymmetricallyEncrypted, *packet.AEADEncrypted:
			if len(ids) == 0 {
				return nil, errors.New("not encrypted to any key")
			}
			slices.Sort(ids)
			return ids, nil
		default:
			return nil, fmt.Errorf("unexpected %T packet: not an encrypted message", p)
		}
	}
}

// KeyIDs returns the IDs a message to e may be addressed to: its primary key
// and its subkeys.
func KeyIDs(e *openpgp.Entity) []uint64 {
	ids := []uint64{e.PrimaryKey.KeyId}
	for _, s := range e.Subkeys {
		ids = append(ids, s.PublicKey.KeyId)
	}
	return ids
}

// EncryptionKeyIDs returns the IDs (16 upper-case hex digits) of every key of
// e that can encrypt: the primary key and subkeys whose self-signature
// allows encryption (keys without usable flags count, as gpg counts them).
// With withSecret, only those whose secret half is present and usable.
// A backup encrypted to any one of them is decryptable with e only when its
// secret is there: comparing primary fingerprints alone missed an
// encryption subkey added later.
func EncryptionKeyIDs(e *openpgp.Entity, withSecret bool) []string {
	var ids []string
	add := func(id uint64, priv *packet.PrivateKey) {
		if withSecret && (priv == nil || priv.Dummy()) {
			return
		}
		ids = append(ids, fmt.Sprintf("%016X", id))
	}
	if sig, _ := e.PrimarySelfSignature(); sig != nil && sig.FlagsValid && (sig.FlagEncryptCommunications || sig.FlagEncryptStorage) {
		add(e.PrimaryKey.KeyId, e.PrivateKey)
	}
	for _, s := range e.Subkeys {
		if s.Sig != nil && (!s.Sig.FlagsValid || s.Sig.FlagEncryptCommunications || s.Sig.FlagEncryptStorage) && s.PublicKey.PubKeyAlgo.CanEncrypt() {
			add(s.PublicKey.KeyId, s.PrivateKey)
		}
	}
	sort.Strings(ids)
	return ids
}

// Expiry returns when e stops being usable: the earliest expiry of the
// primary key and its encryption subkeys; zero when none expires.
func Expiry(e *openpgp.Entity) time.Time {
	var exp time.Time
	consider := func(created time.Time, sig *packet.Signature) {
		if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
			return
		}
		t := created.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second).UTC()
		if exp.IsZero() || t.Before(exp) {
			exp = t
		}
	}
	if sig, _ := e.PrimarySelfSignature(); sig != nil {
		consider(e.PrimaryKey.CreationTime, sig)
	}
	for _, s := range e.Subkeys {
		if s.Sig != nil && s.Sig.FlagsValid && (s.Sig.FlagEncryptCommunications || s.Sig.FlagEncryptStorage) {
			consider(s.PublicKey.CreationTime, s.Sig)
		}
	}
	return exp
}
