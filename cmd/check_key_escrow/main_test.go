package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
)

// TestMain builds check_key_escrow and backup_runner once into DRYM_BIN.
func TestMain(m *testing.M) { plugintest.Main(m, "../backup_runner") }

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const (
	fpHost  = "3F2A9C0D11B24E6F8A7B5C4D3E2F1A0B99887766"
	fpOther = "D00DFEED0123456789ABCDEF0123456789ABCDEF"
	cfgPath = "/etc/drym/drym.toml"
	zipName = "drym-escrow-web1-3F2A9C0D11B24E6F-20260301.zip"
)

// defaults parses argv (empty: the flag defaults) as the check would.
func defaults(t testing.TB, argv ...string) args { return plugintest.Defaults[args](t, argv...) }

func settings() *config.Config {
	c := &config.Config{Host: "web1", Sources: []string{"/etc"}, StateDir: "/var/lib/drym", KeyFile: "/etc/drym/host-key.asc",
		Destination: config.Remote{URL: "s3://backups/drym", ReadProfile: "drym-read"},
		Escrow:      config.Escrow{Remote: config.Remote{URL: "s3://escrow/drym"}}}
	c.Path = cfgPath
	return c
}

func encode(c *config.Config) []byte {
	b, err := c.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// good is the facts of a healthy host, run as root.
func good() facts {
	cfg := settings()
	return facts{
		ConfigPath: cfgPath, Host: "web1", Settings: encode(cfg),
		PubPath: "/etc/drym/host-key.pub.asc", PubFP: fpHost,
		SecretPath: "/etc/drym/host-key.asc", SecretMode: 0o600, SecretUID: 0, SecretFP: fpHost, WantOwner: "root",
		BackupFP: fpHost,
		zipFacts: zipFacts{Where: "s3://escrow/drym", ZipName: zipName, ZipTime: now.Add(-9 * 24 * time.Hour), ZipSize: 20480,
			Zip: &escrow.Facts{Host: "web1", Fingerprint: fpHost, KeyCreated: now.Add(-400 * 24 * time.Hour), Config: cfg,
				Contents: map[string][]byte{escrow.MemberConfig: encode(cfg)}}},
	}
}

func with(mod func(*facts)) facts {
	f := good()
	mod(&f)
	return f
}

// Key IDs of the fixtures: the host key's encryption subkey, and one added
// to the host key after the escrow was shipped.
const (
	idEnc   = 0x1234
	idNew   = 0xABCDEF
	objName = "20260310T010000Z-0123456789abcdef0123456789abcdef.tar.zst.gpg"
)

// record is the public record of the fixture zip.
func record() *escrow.Record {
	sum := sha256.Sum256(encode(settings()))
	return &escrow.Record{Schema: escrow.RecordSchema, Host: "web1", Zip: zipName, ZipSize: 20480, ZipSHA256: strings.Repeat("5", 64),
		Fingerprint: fpHost, EncryptionKeyIDs: []string{"0000000000001234"}, SettingsSHA256: hex.EncodeToString(sum[:])}
}

// recordOnly is a healthy host checked as user nagios: the zip in the
// directory drop is 0600, its record speaks for it.
func recordOnly(mod func(*facts)) facts {
	return with(func(f *facts) {
		f.SecretFP, f.SecretReadErr = "", fmt.Errorf("open /etc/drym/host-key.asc: %w", fs.ErrPermission)
		f.Zip, f.Where = nil, "dir:///srv/escrow"
		f.ZipUnreadable = fmt.Errorf("open /srv/escrow/%s: %w", zipName, fs.ErrPermission)
		f.Record = record()
		f.PubEncIDs = []uint64{idEnc}
		if mod != nil {
			mod(f)
		}
	})
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name  string // also the golden file
		f     facts
		argv  []string
		state plugin.State
		first string
	}{
		{"ok", good(), nil, plugin.OK, "holds host key 3F2A9C0D11B24E6F, the same as the public key file, the last backup's key, the secret key file; key never expires"},
		{"ok_as_nagios", with(func(f *facts) {
			f.SecretFP, f.SecretReadErr = "", fmt.Errorf("open /etc/drym/host-key.asc: %w", fs.ErrPermission)
		}), nil, plugin.OK, "the same as the public key file, the last backup's key; key never expires"},
		{"ok_secret_dir_closed", with(func(f *facts) {
			f.SecretFP, f.SecretStatErr = "", fmt.Errorf("stat /etc/drym/host-key.asc: %w", fs.ErrPermission)
		}), nil, plugin.OK, "OK"},
		{"ok_no_backup_yet", with(func(f *facts) { f.BackupFP, f.BackupErr = "", status.ErrNotExist }), nil, plugin.OK, "the same as the public key file, the secret key file"},
		{"ok_expires_later", with(func(f *facts) { f.Zip.KeyExpires = now.Add(90 * 24 * time.Hour) }), nil, plugin.OK, "key expires in 90d"},
		{"warning_expiry", with(func(f *facts) { f.Zip.KeyExpires = now.Add(20 * 24 * time.Hour) }), nil, plugin.Warning, "expires in 20d"},
		{"critical_expiry", with(func(f *facts) { f.Zip.KeyExpires = now.Add(3 * 24 * time.Hour) }), nil, plugin.Critical, "within --expiry-critical 7d"},
		{"critical_expired", with(func(f *facts) { f.Zip.KeyExpires = now.Add(-time.Hour) }), nil, plugin.Critical, "expired 1h ago"},
		{"critical_escrow_other_key", with(func(f *facts) { f.Zip.Fingerprint = fpOther }), nil, plugin.Critical,
			"the escrowed key D00DFEED01234567 is not the host key 3F2A9C0D11B24E6F (/etc/drym/host-key.pub.asc): the escrow cannot decrypt this host's backups: run backup_runner escrow"},
		{"critical_public_changed", with(func(f *facts) { f.PubFP, f.BackupFP = fpOther, fpOther }), nil, plugin.Critical,
			"host key files disagree: secret key /etc/drym/host-key.asc is 3F2A9C0D11B24E6F, public key /etc/drym/host-key.pub.asc is D00DFEED01234567"},
		{"critical_secret_changed", with(func(f *facts) { f.SecretFP = fpOther }), nil, plugin.Critical, "host key files disagree"},
		{"critical_backup_key", with(func(f *facts) { f.BackupFP = fpOther }), nil, plugin.Critical,
			"the last backup was encrypted to key D00DFEED01234567 but the host key is 3F2A9C0D11B24E6F: run backup_runner backup, then backup_runner escrow"},
		{"critical_other_host", with(func(f *facts) { f.Zip.Host = "db2"; f.Zip.Fingerprint = fpOther }), nil, plugin.Critical, "is for host db2, not web1"},
		{"critical_no_zip", with(func(f *facts) {
			f.Zip, f.FindErr = nil, fmt.Errorf("s3://escrow/drym: no drym-escrow-web1-*.zip: %w", store.ErrNotFound)
		}), nil, plugin.Critical, "no escrow zip for web1 in s3://escrow/drym: the host key exists only on this host: run backup_runner escrow"},
		{"critical_zip_file_missing", with(func(f *facts) {
			f.Zip, f.Where, f.FindErr = nil, "/tmp/x.zip", fmt.Errorf("open /tmp/x.zip: %w", fs.ErrNotExist)
		}), nil, plugin.Critical, "no escrow zip for web1 in /tmp/x.zip"},
		{"critical_broken_zip", with(func(f *facts) {
			f.Zip, f.ZipErr = nil, escrow.Broken("member \"drym-web1/restore.sh\" fails its CRC check: the zip is damaged")
		}), nil, plugin.Critical, "is unusable: member \"drym-web1/restore.sh\" fails its CRC check: the zip is damaged: run backup_runner escrow"},
		{"unknown_cannot_list", with(func(f *facts) {
			f.Zip, f.FindErr = nil, errors.New("s3://escrow/drym: ListObjectsV2 denied (AccessDenied): check the credentials and the bucket policy for this profile")
		}), nil, plugin.Unknown, "cannot read the escrow location"},
		{"critical_no_escrow", facts{ConfigPath: cfgPath, Host: "web1", NoEscrow: true}, nil, plugin.Critical, "no escrow configured"},
		{"critical_not_set_up", facts{SettingsErr: &plugin.NotSetUpError{Missing: "no settings file /etc/drym/drym.toml"}}, nil, plugin.Critical, "not set up: run backup_runner init"},
		{"critical_no_public_key", with(func(f *facts) {
			f.PubFP, f.PubErr = "", fmt.Errorf("open /etc/drym/host-key.pub.asc: %w", fs.ErrNotExist)
		}), nil, plugin.Critical, "no host key: /etc/drym/host-key.pub.asc is missing: run backup_runner init"},
		{"critical_no_secret_key", with(func(f *facts) {
			f.SecretFP, f.SecretStatErr = "", fmt.Errorf("stat /etc/drym/host-key.asc: %w", fs.ErrNotExist)
		}), nil, plugin.Critical, "the secret host key /etc/drym/host-key.asc is missing"},
		{"warning_stale", with(func(f *facts) {
			c := settings()
			c.Sources = append(c.Sources, "/srv")
			c.Destination.URL = "s3://backups2/drym"
			f.Settings = encode(c)
		}), nil, plugin.Warning, "escrow is stale: the escrowed settings differ from /etc/drym/drym.toml (destination.url, sources): run backup_runner escrow"},
		{"warning_mode", with(func(f *facts) { f.SecretMode = 0o644 }), nil, plugin.Warning, "is mode 0644, readable beyond its owner: chmod 600 /etc/drym/host-key.asc"},
		{"warning_owner", with(func(f *facts) { f.SecretUID = 1000 }), nil, plugin.Warning, "owned by uid 1000, not root: chown root /etc/drym/host-key.asc"},
		{"warning_escrow_failed", with(func(f *facts) {
			f.EscrowRun = &status.Escrow{Common: status.Common{Host: "web1", State: status.Failed, Error: "s3://escrow/drym: PutObject denied", Finished: now.Add(-2 * time.Hour)}}
		}), nil, plugin.Warning, "the last backup_runner escrow failed 2h ago"},
		{"warning_zip_age", good(), []string{"-w", "7d", "-c", "30d"}, plugin.Warning, "is 9d old, older than 7d (-w)"},
		{"critical_team_missing", with(func(f *facts) {
			f.Zip.SecretEncrypted, f.Zip.SecretRecipients = true, []uint64{0x1111}
			f.Team = map[string][]uint64{"/etc/drym/team.asc": {0x2222, 0x3333}}
			f.TeamFP = map[string]string{"/etc/drym/team.asc": fpOther}
		}), nil, plugin.Critical, "not encrypted to team key D00DFEED01234567 (/etc/drym/team.asc)"},
		{"ok_team", with(func(f *facts) {
			f.Zip.SecretEncrypted, f.Zip.SecretRecipients = true, []uint64{0x3333}
			f.Team = map[string][]uint64{"/etc/drym/team.asc": {0x2222, 0x3333}}
			f.TeamFP = map[string]string{"/etc/drym/team.asc": fpOther}
		}), nil, plugin.OK, "OK"},
		{"critical_subkey_not_escrowed", with(func(f *facts) {
			f.PubEncIDs = []uint64{idEnc, idNew}
			f.ZipEncIDs = []uint64{idEnc}
		}), nil, plugin.Critical, "the escrowed key lacks the secret of encryption subkey 0000000000ABCDEF of the host key (/etc/drym/host-key.pub.asc): backups encrypted to it cannot be decrypted with the escrow: run backup_runner escrow"},
		{"critical_backup_key_ids", with(func(f *facts) {
			f.PubEncIDs, f.ZipEncIDs = []uint64{idEnc}, []uint64{idEnc}
			f.BackupKeyIDs, f.BackupObject = []string{"0000000000ABCDEF"}, objName
		}), nil, plugin.Critical, "the last backup " + objName + " was encrypted to key ID 0000000000ABCDEF, which the escrowed key cannot decrypt: run backup_runner escrow"},
		{"ok_backup_key_ids_and_recipient", with(func(f *facts) {
			f.PubEncIDs, f.ZipEncIDs = []uint64{idEnc}, []uint64{idEnc}
			f.BackupKeyIDs, f.BackupObject = []string{"0000000000001234", "00000000000077AA"}, objName
			f.RecipientIDs = []uint64{0x77AA}
		}), nil, plugin.OK, "holds host key 3F2A9C0D11B24E6F"},
		{"ok_record_as_nagios", recordOnly(nil), nil, plugin.OK,
			"escrow zip " + zipName + " (9d old, 20480 bytes as recorded, in dir:///srv/escrow) is recorded as holding host key 3F2A9C0D11B24E6F, the same as the public key file, the last backup's key; key never expires (not opened: not readable by this user; its public record speaks)"},
		{"unknown_record_missing", recordOnly(func(f *facts) { f.Record = nil }), nil, plugin.Unknown,
			"escrow zip " + zipName + " is not readable by this user (as intended for a bare secret key) and there is no public record " + zipName + ".json beside it: run backup_runner escrow"},
		{"critical_record_size", recordOnly(func(f *facts) { f.ZipSize = 10 }), nil, plugin.Critical,
			"escrow zip " + zipName + " in dir:///srv/escrow is 10 bytes, its record says 20480: it was damaged or replaced"},
		{"critical_record_other_key", recordOnly(func(f *facts) { f.Record.Fingerprint = fpOther }), nil, plugin.Critical,
			"the escrowed key D00DFEED01234567 is not the host key 3F2A9C0D11B24E6F"},
		{"critical_record_subkey_not_escrowed", recordOnly(func(f *facts) { f.PubEncIDs = []uint64{idEnc, idNew} }), nil, plugin.Critical,
			"the escrowed key lacks the secret of encryption subkey 0000000000ABCDEF"},
		{"warning_record_stale", recordOnly(func(f *facts) { f.Record.SettingsSHA256 = strings.Repeat("0", 64) }), nil, plugin.Warning,
			"escrow is stale: the escrowed settings (as recorded in " + zipName + ".json) differ from /etc/drym/drym.toml: run backup_runner escrow"},
		{"critical_record_escrow_json", recordOnly(func(f *facts) {
			f.EscrowRun = &status.Escrow{Common: status.Common{Host: "web1", State: status.OK, Finished: now.Add(-9 * 24 * time.Hour)}, Zip: zipName, SHA256: strings.Repeat("e", 64)}
		}), nil, plugin.Critical, "escrow.json says " + zipName + " was shipped with sha256 eeeeeeeeeeeeeeee…, its record says"},
		{"critical_record_not_the_zip", with(func(f *facts) {
			f.PubEncIDs, f.ZipEncIDs, f.ZipSHA256 = []uint64{idEnc}, []uint64{idEnc}, strings.Repeat("a", 64)
			f.Record = record()
		}), nil, plugin.Critical, "the record " + zipName + ".json does not describe the zip beside it: it says sha256 5555555555555555…, the zip has aaaaaaaaaaaaaaaa…"},
		{"unknown_drop_not_listable", with(func(f *facts) {
			f.Zip, f.Where = nil, "dir:///srv/escrow"
			f.FindErr = &fs.PathError{Op: "open", Path: "/srv/escrow", Err: fs.ErrPermission}
		}), nil, plugin.Unknown, "cannot read the escrow location: open /srv/escrow: permission denied (the check runs as user nagios: let group nagios list the drop directory"},
		{"unknown_host_mismatch", with(func(f *facts) {
			f.BackupRun = &status.Backup{Common: status.Common{Host: "db2"}}
		}), nil, plugin.Unknown, `backup.json is of host "db2" but the settings /etc/drym/drym.toml are for host "web1"`},
		{"critical_worst_of_several", with(func(f *facts) {
			f.SecretMode = 0o640
			f.Zip.Fingerprint = fpOther
			f.Settings = append(f.Settings, []byte("\n[metrics]\n  textfile = \"/x\"\n")...)
		}), nil, plugin.Critical, "the escrowed key D00DFEED01234567 is not the host key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := evaluate(tc.f, defaults(t, tc.argv...), now)
			plugintest.Judge(t, tc.name, r, plugintest.Verdict{State: tc.state, First: tc.first})
		})
	}
}

func TestDiffSettings(t *testing.T) {
	a := settings()
	b := settings()
	if d := diffSettings(encode(a), encode(b)); len(d) != 0 {
		t.Fatalf("same settings differ: %v", d)
	}
	b.Escrow.Recipients = []string{"/etc/drym/team.asc"}
	b.Exclude = []string{"*.tmp"}
	if d := diffSettings(encode(a), encode(b)); strings.Join(d, " ") != "escrow.recipients exclude" {
		t.Fatalf("diff %v", d)
	}
}

func TestEvaluateBackupKeyWithoutPublicKey(t *testing.T) {
	f := with(func(f *facts) {
		f.PubFP, f.PubErr = "", fmt.Errorf("open /etc/drym/host-key.pub.asc: %w", fs.ErrPermission)
		f.SecretFP, f.SecretReadErr = "", fmt.Errorf("open /etc/drym/host-key.asc: %w", fs.ErrPermission)
		f.BackupFP = fpOther
	})
	r := evaluate(f, defaults(t), now)
	if r.State != plugin.Critical || !strings.Contains(r.FirstLine(), "is not the key D00DFEED01234567 the last backup was encrypted to") {
		t.Fatalf("%s", plugin.Format(r))
	}
}

// zipProblem's precedence: no zip is CRITICAL, a location that cannot be
// read UNKNOWN with the hint of its kind, a damaged zip CRITICAL.
func TestZipProblem(t *testing.T) {
	for _, tc := range []struct {
		where    string
		find     error
		broken   error
		state    plugin.State
		has, not string
	}{
		{"s3://e/k", nil, nil, plugin.OK, "", ""},
		{"s3://e/k", fmt.Errorf("x: %w", store.ErrNotFound), nil, plugin.Critical, "no escrow zip for web1", ""},
		{"/tmp/x.zip", fmt.Errorf("open: %w", fs.ErrNotExist), nil, plugin.Critical, "no escrow zip for web1", ""},
		{"s3://e/k", errors.New("ListObjectsV2 denied"), nil, plugin.Unknown, "read_profile", ""},
		{"dir:///srv/escrow", &fs.PathError{Op: "open", Path: "/srv/escrow", Err: fs.ErrPermission}, nil, plugin.Unknown, "group nagios", "read_profile"},
		{"dir:///srv/escrow", errors.New("input/output error"), nil, plugin.Unknown, "is it mounted?", "read_profile"},
		{"s3://e/k", nil, escrow.Broken("truncated"), plugin.Critical, "is unusable: truncated", ""},
	} {
		s, msg, bad := zipProblem(zipFacts{Where: tc.where, ZipName: zipName, FindErr: tc.find, ZipErr: tc.broken}, "web1", cfgPath)
		if s != tc.state || bad != (s != plugin.OK) || !strings.Contains(msg, tc.has) || tc.not != "" && strings.Contains(msg, tc.not) {
			t.Errorf("%s %v %v: %s %q", tc.where, tc.find, tc.broken, s, msg)
		}
	}
}
