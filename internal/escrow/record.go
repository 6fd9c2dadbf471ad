package escrow

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RecordSuffix ends the name of the public record shipped beside each zip:
// drym-escrow-<host>-<fp16>-<yyyymmdd>[-n].zip.json.
const RecordSuffix = ".json"

// RecordSchema is the record format this build writes and reads.
const RecordSchema = 1

// MaxRecord bounds what a reader accepts for a record (real ones are a few
// KiB, mostly the armored public key).
const MaxRecord = 64 << 10

// Record is the public half of an escrow: what was shipped, said without the
// secret key. The zip holds the bare secret key (unless [escrow] recipients
// encrypt it), so the user that monitoring runs as must not read it; the
// record lets that user check the escrow anyway: that a zip of this name,
// size and hash was shipped, for which key and encryption subkeys, and with
// which settings. The record is written with the same never-overwrite rule
// as the zip, readable by everyone (the zip is not, in a directory drop).
//
// A record is the host's word. The full proof opens the zip where it is
// kept (check_key_escrow run there, or as root).
type Record struct {
	Schema  int    `json:"schema"`
	Host    string `json:"host"`
	Zip     string `json:"zip"`
	ZipSize int64  `json:"zip_size"`
	// ZipSHA256 is the SHA-256 of the zip's bytes.
	ZipSHA256   string `json:"zip_sha256"`
	Fingerprint string `json:"key_fingerprint"`
	// EncryptionKeyIDs are the 16-hex-digit IDs of every encryption-capable
	// (sub)key of the escrowed key whose secret is in the zip.
	EncryptionKeyIDs []string `json:"encryption_key_ids"`
	// SecretEncrypted is true when the secret key member is encrypted to
	// [escrow] recipients, whose key IDs are SecretRecipients.
	SecretEncrypted  bool     `json:"secret_encrypted,omitempty"`
	SecretRecipients []string `json:"secret_recipients,omitempty"`
	// SettingsSHA256 is the SHA-256 of the escrowed drym.toml.
	SettingsSHA256 string `json:"settings_sha256"`
	// PublicKey is the armored public key in the zip.
	PublicKey string    `json:"public_key"`
	Shipped   time.Time `json:"shipped"`
	Version   string    `json:"version"`
}

// RecordName is the record's name for the zip named zip.
func RecordName(zip string) string { return zip + RecordSuffix }

// ErrRecord wraps every reason ParseRecord refuses a record.
var ErrRecord = errors.New("escrow record is unusable")

// ParseRecord decodes and validates a record shipped beside zip.
func ParseRecord(data []byte, zip string) (*Record, error) {
	if len(data) > MaxRecord {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrRecord, MaxRecord)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecord, err)
	}
	switch {
	case r.Schema != RecordSchema:
		return nil, fmt.Errorf("%w: schema %d (this drym reads %d; upgrade drym)", ErrRecord, r.Schema, RecordSchema)
	case r.Zip != zip:
		return nil, fmt.Errorf("%w: it describes %q, not %q", ErrRecord, r.Zip, zip)
	case len(r.ZipSHA256) != 64 || strings.Trim(r.ZipSHA256, "0123456789abcdef") != "":
		return nil, fmt.Errorf("%w: bad zip_sha256", ErrRecord)
	case r.ZipSize <= 0:
		return nil, fmt.Errorf("%w: bad zip_size", ErrRecord)
	case r.Fingerprint == "" || len(r.EncryptionKeyIDs) == 0:
		return nil, fmt.Errorf("%w: no key", ErrRecord)
	}
	return &r, nil
}

// Marshal renders the record as shipped.
func (r *Record) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
