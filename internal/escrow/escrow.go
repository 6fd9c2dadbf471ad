// Package escrow builds, ships and inspects the escrow zip: the copy of the
// host key (with the settings and the restore steps) that lives off the host,
// so that a dead server does not take the only key to its backups with it.
//
// The zip is named drym-escrow-<host>-<fingerprint16>-<yyyymmdd>.zip and holds,
// under drym-<host>/, the secret key (host-key.asc, or host-key.asc.gpg when
// it is encrypted to the team's keys), the public key, the settings, RESTORE.md,
// restore.sh and SHA256SUMS (docs/REFERENCE.md#escrow-zips).
//
// Build is deterministic: the same key, settings and day give the same bytes,
// so shipping again is recognised as "already shipped" and nothing is ever
// overwritten. Inspect reads a zip that may be hostile (it comes back from a
// store the host does not control) with bounds on everything, and never
// writes to disk.
package escrow

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
)

// Member names inside drym-<host>/.
const (
	MemberSecret          = "host-key.asc"
	MemberSecretEncrypted = "host-key.asc.gpg"
	MemberPublic          = "host-key.pub.asc"
	MemberConfig          = "drym.toml"
	MemberRestoreDoc      = "RESTORE.md"
	MemberRestoreScript   = "restore.sh"
	MemberSums            = "SHA256SUMS"
)

// NamePrefix starts every escrow zip name.
const NamePrefix = "drym-escrow-"

//go:embed restore.sh
var restoreScript []byte

//go:embed RESTORE.md.tmpl
var restoreDocText string

// restoreDoc is parsed when an escrow zip is first built, not at start:
// parsing it cost every check binary that imports this package milliseconds.
var restoreDoc = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("RESTORE.md").Parse(restoreDocText))
})

// Folder is the one top-level folder of a host's zip.
func Folder(host string) string { return "drym-" + host }

// Name returns the zip name for host, key fingerprint and day (UTC). rev > 1
// is a second zip of the same day whose content differs (the settings
// changed twice in a day): the earlier one is kept, never replaced.
func Name(host, fingerprint string, day time.Time, rev int) string {
	fp := strings.ToUpper(fingerprint)
	if len(fp) > 16 {
		fp = fp[:16]
	}
	n := NamePrefix + host + "-" + fp + "-" + day.UTC().Format("20060102")
	if rev > 1 {
		n += "-" + strconv.Itoa(rev)
	}
	return n + ".zip"
}

// NameInfo is what a zip name says.
type NameInfo struct {
	Fingerprint16 string
	Day           time.Time
	Rev           int // 1 for the first zip of a day
}

var nameTail = regexp.MustCompile(`^([0-9A-F]{16})-(\d{8})(?:-([2-9]|[1-9]\d{1,3}))?\.zip$`)

// ParseName reports whether name is an escrow zip name of host, and what it
// says.
func ParseName(host, name string) (NameInfo, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix+host+"-")
	if !ok {
		return NameInfo{}, false
	}
	m := nameTail.FindStringSubmatch(rest)
	if m == nil {
		return NameInfo{}, false
	}
	day, err := time.Parse("20060102", m[2])
	if err != nil {
		return NameInfo{}, false
	}
	rev := 1
	if m[3] != "" {
		rev, _ = strconv.Atoi(m[3])
	}
	return NameInfo{Fingerprint16: m[1], Day: day, Rev: rev}, true
}

// Params is what goes into a zip.
type Params struct {
	Config *config.Config
	// Key is the host key, with its secret half.
	Key *openpgp.Entity
	// Team are the [escrow] recipients: when given, the secret key member
	// is encrypted to them (host-key.asc.gpg) instead of stored bare.
	Team openpgp.EntityList
	// Now dates the zip name.
	Now time.Time
	// Version is the drym version, for the public record.
	Version string
}

// Zip is a built escrow zip.
type Zip struct {
	Host        string
	Fingerprint string
	Day         time.Time
	Data        []byte
	SHA256      string
	// Record is the zip's public record, but for the zip's name, size and
	// hash, which Ship fills in once the name is known.
	Record Record
}

// Name is the zip's name for revision rev (1 for the first of the day).
func (z *Zip) Name(rev int) string { return Name(z.Host, z.Fingerprint, z.Day, rev) }

// Build makes the escrow zip. Member times are the key's creation time and
// members come in a fixed order, so the same inputs give the same bytes
// (except host-key.asc.gpg, which OpenPGP encrypts with a fresh session
// key each time; Equivalent handles that case).
func Build(p Params) (*Zip, error) {
	if p.Config == nil || p.Key == nil {
		return nil, errors.New("escrow: settings and host key are required")
	}
	if p.Key.PrivateKey == nil {
		return nil, errors.New("escrow: the host key has no secret half: the escrow must hold the key that decrypts the backups")
	}
	host := p.Config.Host
	fp := crypt.Fingerprint(p.Key)
	secretName, secret, err := secretMember(p)
	if err != nil {
		return nil, err
	}
	public, err := crypt.ArmorPublic(p.Key)
	if err != nil {
		return nil, err
	}
	settings, err := p.Config.Encode()
	if err != nil {
		return nil, fmt.Errorf("escrow: cannot encode settings: %w", err)
	}
	doc, err := restoreSteps(p)
	if err != nil {
		return nil, err
	}
	members := []member{
		{secretName, secret, 0o600},
		{MemberPublic, public, 0o644},
		{MemberConfig, settings, 0o644},
		{MemberRestoreDoc, doc, 0o644},
		{MemberRestoreScript, restoreScript, 0o755},
	}
	var sums bytes.Buffer
	for _, m := range members {
		h := sha256.Sum256(m.data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(h[:]), m.name)
	}
	members = append(members, member{MemberSums, sums.Bytes(), 0o644})
	data, err := writeZip(Folder(host), p.Key.PrimaryKey.CreationTime, members)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	settingsSum := sha256.Sum256(settings)
	rec := Record{
		Schema: RecordSchema, Host: host, Fingerprint: fp, EncryptionKeyIDs: EncryptionKeyIDs(p.Key, true),
		SecretEncrypted: len(p.Team) > 0, SettingsSHA256: hex.EncodeToString(settingsSum[:]),
		PublicKey: string(public), Shipped: p.Now.UTC().Truncate(time.Second), Version: p.Version,
	}
	for _, e := range p.Team {
		for _, id := range KeyIDs(e) {
			rec.SecretRecipients = append(rec.SecretRecipients, fmt.Sprintf("%016X", id))
		}
	}
	return &Zip{Host: host, Fingerprint: fp, Day: p.Now.UTC(), Data: data, SHA256: hex.EncodeToString(sum[:]), Record: rec}, nil
}

// secretMember is the secret key member: bare (host-key.asc), or encrypted
// to [escrow] recipients (host-key.asc.gpg).
func secretMember(p Params) (name string, data []byte, err error) {
	secret, err := crypt.ArmorSecret(p.Key)
	if err != nil {
		return "", nil, err
	}
	if len(p.Team) == 0 {
		return MemberSecret, secret, nil
	}
	var buf bytes.Buffer
	w, err := crypt.Encrypt(&buf, p.Team)
	if err != nil {
		return "", nil, fmt.Errorf("escrow: encrypting the secret key to [escrow] recipients: %w", err)
	}
	if _, err := w.Write(secret); err != nil {
		return "", nil, err
	}
	if err := w.Close(); err != nil {
		return "", nil, err
	}
	return MemberSecretEncrypted, buf.Bytes(), nil
}

// restoreSteps renders RESTORE.md for this host and destination.
func restoreSteps(p Params) ([]byte, error) {
	var team []string
	for _, e := range p.Team {
		team = append(team, crypt.Fingerprint(e))
	}
	host := p.Config.Host
	dd := docData{
		Host: host, Fingerprint: crypt.Fingerprint(p.Key), Folder: Folder(host), Destination: p.Config.Destination,
		Encrypted: len(p.Team) > 0, Team: team, Created: p.Key.PrimaryKey.CreationTime.UTC().Format(time.RFC3339),
	}
	if loc, err := config.ParseURL(p.Config.Destination.URL); err == nil {
		dd.S3, dd.DirPath = loc.Scheme == "s3", loc.Path
		dd.S3Base = strings.TrimSuffix(loc.String(), "/")
	}
	var doc bytes.Buffer
	if err := restoreDoc().Execute(&doc, dd); err != nil {
		return nil, err
	}
	return doc.Bytes(), nil
}

// writeZip writes members under folder/. Zip times are DOS times (2-second
// resolution, 1980 onwards); every member gets the key's creation time,
// fixed for the key's life, unlike the clock: the same members give the
// same bytes.
func writeZip(folder string, created time.Time, members []member) ([]byte, error) {
	mtime := created.UTC().Truncate(2 * time.Second)
	if mtime.Year() < 1980 {
		mtime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, m := range members {
		h := &zip.FileHeader{Name: folder + "/" + m.name, Method: zip.Deflate, Modified: mtime}
		h.SetMode(m.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(m.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type member struct {
	name string
	data []byte
	mode fs.FileMode
}

type docData struct {
	Host, Fingerprint, Folder string
	Destination               config.Remote
	Encrypted                 bool
	Team                      []string
	Created                   string
	S3                        bool
	DirPath, S3Base           string
}

// requiredMembers are the members every zip has besides the secret key.
var requiredMembers = []string{MemberPublic, MemberConfig, MemberRestoreDoc, MemberRestoreScript, MemberSums}

// Equivalent reports whether two inspected zips escrow the same thing: the
// same members with the same content, except that an encrypted secret key
// member only has to be addressed to the same keys (its bytes differ on
// every build).
func Equivalent(a, b *Facts) bool {
	if a.Host != b.Host || a.Fingerprint != b.Fingerprint || a.SecretEncrypted != b.SecretEncrypted {
		return false
	}
	if len(a.Contents) != len(b.Contents) {
		return false
	}
	for name, da := range a.Contents {
		db, ok := b.Contents[name]
		if !ok {
			return false
		}
		if name == MemberSums || name == MemberSecretEncrypted {
			continue
		}
		if !bytes.Equal(da, db) {
			return false
		}
	}
	if a.SecretEncrypted {
		return equalIDs(a.SecretRecipients, b.SecretRecipients)
	}
	return true
}

func equalIDs(a, b []uint64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
