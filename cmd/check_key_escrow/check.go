package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/status"
)

// facts is everything gather found; evaluate judges it without I/O.
type facts struct {
	SettingsErr error
	ConfigPath  string
	Host        string
	// Settings is the current settings file in canonical form (Encode).
	Settings []byte
	// NoEscrow: no [escrow] url and no --zip.
	NoEscrow bool

	PubPath string
	PubFP   string
	PubErr  error
	// PubEncIDs are the encryption-capable (sub)keys of the host public
	// key: the escrow must hold the secret of every one.
	PubEncIDs []uint64

	SecretPath    string
	SecretStatErr error // ErrNotExist: missing; permission: cannot tell (fine as nagios)
	SecretMode    os.FileMode
	SecretUID     int
	SecretFP      string
	SecretReadErr error // permission denied as nagios is normal
	WantUID       int
	WantOwner     string
	OwnerErr      error

	BackupFP  string // key the last successful backup was encrypted to
	BackupErr error  // ErrNotExist is fine: no backup yet is check_backup_age's concern
	// BackupKeyIDs are the key IDs the last successful backup was really
	// encrypted to (backup.json key_ids, and test-restore.json's when it
	// tested that object), and BackupObject that backup.
	BackupKeyIDs []string
	BackupObject string
	// RecipientIDs are the key IDs of the settings' extra recipients
	// (their keys are not the escrow's business); RecipientsErr a key file
	// that could not be read.
	RecipientIDs  []uint64
	RecipientsErr error

	EscrowRun *status.Escrow // escrow.json, when readable
	EscrowErr error          // escrow.json unreadable (ErrNotExist is fine: an older install)
	BackupRun *status.Backup // backup.json, when readable

	// Team maps each [escrow] recipients file to the key IDs of its keys.
	Team    map[string][]uint64
	TeamFP  map[string]string
	TeamErr error

	zipFacts
}

// zipFacts is what the escrow location says about the host's newest zip.
type zipFacts struct {
	Where   string // escrow location, or the --zip file
	ZipName string
	ZipTime time.Time
	// ZipSize is the zip's size as listed (or stat'ed): known even when
	// the zip cannot be read.
	ZipSize int64
	FindErr error // store.ErrNotFound / fs.ErrNotExist: no zip; else cannot look
	Zip     *escrow.Facts
	ZipErr  error // the zip is unusable
	// ZipSHA256 is the hash of the bytes read.
	ZipSHA256 string
	// ZipUnreadable is why this user may not read the zip (a bare secret
	// key in a directory drop is 0600): the record stands in for it.
	ZipUnreadable error
	// ZipEncIDs are the encryption key IDs the zip holds: with their
	// secret for a bare secret key member, as the public key member says
	// for a secret encrypted to the team. ZipKeyErr: the escrowed keys
	// could not be parsed for them.
	ZipEncIDs []uint64
	ZipKeyErr error
	// Record is the public record <zip>.json shipped beside the zip.
	Record    *escrow.Record
	RecordErr error
}

// gather does all the I/O: settings, key files, status files, the zip.
func gather(ctx context.Context, a *args) facts {
	var f facts
	cfg, stateDir, err := a.Settings(ctx)
	if err != nil {
		f.SettingsErr = err
		return f
	}
	if cfg == nil {
		f.SettingsErr = errors.New("check_key_escrow needs the settings file (host, key file, [escrow] url): pass --config or set DRYM_CONFIG")
		return f
	}
	f.ConfigPath, f.Host = cfg.Path, cfg.Host
	// Without the canonical form the settings cannot be compared with the
	// escrowed copy: say so rather than report a stale escrow.
	if f.Settings, err = cfg.Encode(); err != nil {
		f.SettingsErr = fmt.Errorf("cannot put the settings %s in canonical form to compare them with the escrowed copy: %w", cfg.Path, err)
		return f
	}
	if cfg.Escrow.URL == "" && a.Zip == "" {
		f.NoEscrow = true
		return f
	}
	publicKey(ctx, cfg, &f)
	secret(ctx, a, cfg, &f)
	statusFiles(ctx, stateDir, &f)
	recipients(cfg, &f)
	if a.Zip != "" {
		zipFile(ctx, a.Zip, &f.zipFacts)
	} else {
		zipStore(ctx, cfg, &f.zipFacts)
	}
	return f
}

func publicKey(ctx context.Context, cfg *config.Config, f *facts) {
	f.PubPath = cfg.PublicKeyFile()
	plugin.Doing(ctx, "reading public key %s", f.PubPath)
	keys, err := crypt.ReadKeyFile(f.PubPath)
	if err != nil {
		f.PubErr = err
		return
	}
	f.PubFP = crypt.Fingerprint(keys[0])
	f.PubEncIDs = evidence.EncryptionKeyIDs(keys[0])
}

func secret(ctx context.Context, a *args, cfg *config.Config, f *facts) {
	f.SecretPath = cfg.KeyFile
	f.WantOwner = a.KeyOwner
	if u, err := user.Lookup(a.KeyOwner); err != nil {
		f.OwnerErr = err
	} else {
		f.WantUID, _ = strconv.Atoi(u.Uid)
	}
	plugin.Doing(ctx, "looking at secret key %s", f.SecretPath)
	fi, err := os.Stat(f.SecretPath)
	if err != nil {
		f.SecretStatErr = err
		return
	}
	f.SecretMode = fi.Mode()
	f.SecretUID = -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.SecretUID = int(st.Uid)
	}
	keys, err := crypt.ReadKeyFile(f.SecretPath)
	if err != nil {
		f.SecretReadErr = err
		return
	}
	f.SecretFP = crypt.Fingerprint(keys[0])
}

// statusFiles reads backup.json (the last backup's key and key IDs),
// test-restore.json (the key IDs it parsed from the object it tested) and
// escrow.json.
func statusFiles(ctx context.Context, stateDir string, f *facts) {
	bpath := filepath.Join(stateDir, status.BackupFile)
	plugin.Doing(ctx, "reading %s", bpath)
	var b status.Backup
	if f.BackupErr = status.Read(bpath, &b); f.BackupErr == nil {
		f.BackupRun = &b
		last := b.LastSuccess
		if b.State == status.OK {
			r := b.Run()
			last = &r
		}
		if last != nil {
			f.BackupFP, f.BackupKeyIDs, f.BackupObject = last.Fingerprint, slices.Clone(last.KeyIDs), last.Object
		}
	}
	var tr status.TestRestore
	if err := status.Read(filepath.Join(stateDir, status.TestRestoreFile), &tr); err == nil && f.BackupObject != "" &&
		filepath.Base(tr.Backup) == filepath.Base(f.BackupObject) && tr.Host == b.Host {
		// What the test restore read from the object's own packets joins
		// what the runner recorded it wrote; the same ID counts once.
		for _, id := range tr.KeyIDs {
			if !slices.Contains(f.BackupKeyIDs, id) {
				f.BackupKeyIDs = append(f.BackupKeyIDs, id)
			}
		}
	}
	var e status.Escrow
	if err := status.Read(filepath.Join(stateDir, status.EscrowFile), &e); err == nil {
		f.EscrowRun = &e
	} else if !errors.Is(err, status.ErrNotExist) {
		f.EscrowErr = err
	}
}

// recipients reads the key IDs of the settings' extra recipients and of
// the [escrow] team.
func recipients(cfg *config.Config, f *facts) {
	for _, r := range cfg.Recipients {
		keys, err := crypt.ReadKeyFile(r)
		if err != nil {
			f.RecipientsErr = err
			continue
		}
		for _, k := range keys {
			f.RecipientIDs = append(f.RecipientIDs, escrow.KeyIDs(k)...)
		}
	}
	if len(cfg.Escrow.Recipients) == 0 {
		return
	}
	f.Team, f.TeamFP = map[string][]uint64{}, map[string]string{}
	for _, r := range cfg.Escrow.Recipients {
		keys, err := crypt.ReadKeyFile(r)
		if err != nil {
			f.TeamErr = err
			break
		}
		for _, k := range keys {
			f.Team[r] = append(f.Team[r], escrow.KeyIDs(k)...)
		}
		f.TeamFP[r] = crypt.Fingerprint(keys[0])
	}
}

// inspect opens zip bytes fully and notes which encryption keys they hold.
func (z *zipFacts) inspect(data []byte) {
	sum := sha256.Sum256(data)
	z.ZipSHA256 = hex.EncodeToString(sum[:])
	z.Zip, z.ZipErr = escrow.Inspect(bytes.NewReader(data), int64(len(data)), escrow.DefaultLimits)
	if z.Zip != nil {
		z.ZipEncIDs, z.ZipKeyErr = evidence.EscrowedKeyIDs(z.Zip)
	}
}
