package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/restore"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

type testRestoreCmd struct {
	backupChoice
}

func (c *testRestoreCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadJobConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	var loc *located
	st, code := runJob(ctx, a, cfg, job[*status.TestRestore]{
		kind: status.JobTestRestore, file: status.TestRestoreFile,
		empty: func() *status.TestRestore { return &status.TestRestore{} },
		begin: func(base status.Common, prev *status.TestRestore) *status.TestRestore {
			st := &status.TestRestore{Common: base, Destination: cfg.Destination.URL}
			if prev != nil {
				st.LastSuccess = prev.LastSuccess
			}
			return st
		},
		// A name that is malformed or not in the destination is a usage
		// error: it says nothing about the backups, so the status file
		// (and the check reading it) is left as it was.
		prepare: func(st *status.TestRestore) error {
			if err := checkAllowUnsigned(c.Backup, c.AllowUnsigned); err != nil {
				return err
			}
			var err error
			loc, err = locateBackup(ctx, a, cfg, c.Backup, st.Started)
			if loc != nil {
				st.FutureCount, st.FutureObjects = loc.futureCount, loc.future
			}
			return err
		},
		run: func(st *status.TestRestore) error { return c.test(ctx, a, cfg, loc, st) },
		end: func(st *status.TestRestore, err error) {
			if err == nil {
				st.LastSuccess = st.Finished
			}
		},
		failed: func(st *status.TestRestore) {
			for _, m := range st.Mismatches {
				fmt.Fprintf(a.stderr, "  mismatch: %s\n", m)
			}
		},
	})
	if code != exitOK {
		return code
	}
	signed := "signed by " + st.SignedBy
	if st.Unsigned {
		signed = "UNSIGNED (accepted: --allow-unsigned)"
	}
	a.printf("test-restore ok: %s/%s/%s: %d files, %s verified against the manifest, object sha256 %s, %s, %s\n",
		cfg.Destination.URL, cfg.Host, st.Backup, st.Files, units.Bytes(st.Bytes), checked(st.SHA256Checked),
		signed, st.Duration().Round(1e7))
	return exitOK
}

func checked(ok bool) string {
	if ok {
		return "checked"
	}
	return "not recorded (no sidecar, not in backup.json)"
}

// test reads the whole object and verifies it, filling st as it learns.
func (c *testRestoreCmd) test(ctx context.Context, a *app, cfg *config.Config, loc *located, st *status.TestRestore) error {
	st.Backup, st.BackupTime = loc.name, loc.time
	ob, err := loc.open(ctx, a, cfg, c.AllowUnsigned)
	if err != nil {
		return err
	}
	defer ob.body.Close()
	st.SignedBy, st.Unsigned = ob.signedBy, ob.unsigned

	prog := newProgress(a, "test-restore")
	defer prog.Close()
	s := restore.Open(ctx, ob.body, ob.keys, prog.Output)
	rep, rerr := restore.Verify(ctx, s, prog.File)
	res, err := s.Finish(rerr, ob.want...)
	st.ObjectBytes, st.ObjectSHA256, st.SHA256Checked = res.ObjectBytes, res.ObjectSHA256, res.SHA256Checked
	st.Files, st.Bytes, st.Verified = rep.Files, rep.Bytes, rep.Verified
	st.Mismatches = rep.Problems.List
	// Which keys the object is for, from its own packets, and which of
	// ours decrypted it (a retired key for a backup older than a
	// rotation): not the current key by assumption.
	if r, rerr := ob.recipients(); rerr == nil {
		st.KeyIDs = r.KeyIDs
		if r.DecryptedBy != nil {
			st.Fingerprint = crypt.Fingerprint(r.DecryptedBy)
		}
	} else {
		a.log.Debug("cannot read the session key packets", "object", ob.name, "err", rerr)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", ob.name, err)
	case !rep.Verified:
		return fmt.Errorf("%s: %w", ob.name, restore.ErrNoManifest)
	case rep.Problems.Count > 0:
		return fmt.Errorf("%s: %d mismatches with the manifest, first: %s", ob.name, rep.Problems.Count, rep.Problems.List[0])
	}
	if !res.SHA256Checked {
		a.log.Warn("no recorded SHA-256 for the object (no sidecar, not in backup.json); the OpenPGP integrity check passed", "object", ob.name)
	}
	return nil
}

// located is a backup object found in the destination and judged by its
// signed statement, not yet read.
type located struct {
	store store.Store
	name  string
	time  time.Time
	keys  openpgp.EntityList
	trust backup.Trust
	// future names the objects dated more than status.ClockSkew ahead
	// (at most status.MaxListed); futureCount counts them all.
	future      []string
	futureCount int
}

// openedBackup is a backup object being read, with what it is checked
// against.
type openedBackup struct {
	name string
	time time.Time
	body io.ReadCloser
	keys openpgp.EntityList
	want []restore.Want
	// signedBy is the fingerprint of the key whose signature verified
	// (empty when unsigned is set: accepted with --allow-unsigned).
	signedBy string
	unsigned bool
	head     *headCapture
}

// openBackup finds the backup (latest or by name) in the destination with
// the read credentials, loads the secret key(s), checks the host's signed
// statement about the object, and opens it. A *usageError means the name
// was wrong.
func openBackup(ctx context.Context, a *app, cfg *config.Config, which string, allowUnsigned bool) (*openedBackup, error) {
	if err := checkAllowUnsigned(which, allowUnsigned); err != nil {
		return nil, err
	}
	loc, err := locateBackup(ctx, a, cfg, which, a.now())
	if err != nil {
		return nil, err
	}
	return loc.open(ctx, a, cfg, allowUnsigned)
}

// locateBackup loads the keys, resolves which (latest or a name) and
// judges the object's statement and signature: two small reads per object,
// before a byte of the object is read.
func locateBackup(ctx context.Context, a *app, cfg *config.Config, which string, now time.Time) (*located, error) {
	name, err := parseBackupName(cfg.Host, which)
	if err != nil {
		return nil, err
	}
	keys, err := secretKeys(cfg)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, cfg.Destination, cfg.Host, store.Read)
	if err != nil {
		return nil, err
	}
	loc := &located{store: s, keys: keys}
	if name == "" {
		ch, err := backup.Latest(ctx, s, cfg.Host, keys, now)
		loc.future, loc.futureCount = ch.Future, ch.FutureCount
		warnPassedOver(a, s, ch, err == nil)
		if err != nil {
			return loc, err
		}
		loc.trust = ch.Trust
	} else {
		info, err := s.Stat(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, &usageError{fmt.Errorf("backup %s not found in %s (see backup_runner list)", name, s)}
		case err != nil:
			return nil, fmt.Errorf("cannot stat %s in %s: %w", name, s, err)
		}
		if loc.trust, err = backup.CheckStatement(ctx, s, cfg.Host, name, info.Size, keys); err != nil {
			return loc, err
		}
		objs, err := backup.Objects(ctx, s)
		if err != nil {
			return loc, fmt.Errorf("cannot list %s: %w", s, err)
		}
		for _, o := range objs {
			if backup.Future(o.Name, now) {
				loc.futureCount++
				if len(loc.future) < status.MaxListed {
					loc.future = append(loc.future, o.Name)
				}
			}
		}
		if loc.futureCount > 0 {
			fmt.Fprintf(a.stderr, "backup_runner: warning: %d backups in %s are dated more than %s in the future (clock ahead, or planted): %s\n",
				loc.futureCount, s, status.ClockSkew, strings.Join(loc.future, ", "))
		}
	}
	loc.name = loc.trust.Name
	loc.time, _ = backup.ParseName(loc.name)
	return loc, nil
}

// warnPassedOver says which newer objects "latest" did not choose, and why
// (when none was chosen, the error says why for the newest).
func warnPassedOver(a *app, s store.Store, ch backup.Choice, chosen bool) {
	if ch.FutureCount > 0 {
		fmt.Fprintf(a.stderr, "backup_runner: warning: %d backups in %s are dated more than %s in the future and never count as latest (clock ahead, or planted): %s\n",
			ch.FutureCount, s, status.ClockSkew, strings.Join(ch.Future, ", "))
	}
	for _, t := range ch.Skipped {
		if !chosen {
			break
		}
		fmt.Fprintf(a.stderr, "backup_runner: warning: skipped %s: %v\n", t.Name, t.Err)
	}
}

// checkAllowUnsigned refuses --allow-unsigned without a name: latest is
// always a signed backup, so the flag would be ignored in silence.
func checkAllowUnsigned(which string, allow bool) error {
	if allow && (which == "" || which == "latest") {
		return &usageError{errors.New("--allow-unsigned needs --backup NAME: latest is always a signed backup (see backup_runner list for the unsigned ones)")}
	}
	return nil
}

// parseBackupName turns --backup into an object name, "" for latest; a name
// may be given bare or as <host>/<name>.
func parseBackupName(host, which string) (string, error) {
	if which == "" || which == "latest" {
		return "", nil
	}
	name := strings.TrimPrefix(which, host+"/")
	if !backup.IsName(name) {
		return "", &usageError{fmt.Errorf("--backup %q is not a backup name (<UTC time>-<32 hex>.tar.zst.gpg; see backup_runner list)", which)}
	}
	return name, nil
}

// open lets the object be read only if its statement is trusted (or it is
// a legacy object and allowUnsigned), with the SHA-256s it must have.
func (l *located) open(ctx context.Context, a *app, cfg *config.Config, allowUnsigned bool) (*openedBackup, error) {
	t := l.trust
	ob := &openedBackup{name: l.name, time: l.time, keys: l.keys}
	switch {
	case t.Err == nil:
		ob.signedBy = crypt.Fingerprint(t.Signer)
		ob.want = append(ob.want, restore.Want{SHA256: t.Want(), From: "the signed statement " + l.name + backup.SidecarSuffix})
	case t.Unsigned() && allowUnsigned:
		ob.unsigned = true
		fmt.Fprintf(a.stderr, "backup_runner: warning: %s is UNSIGNED: nothing proves this host made it; reading it because --allow-unsigned says so\n", l.name)
		if t.Want() != "" {
			ob.want = append(ob.want, restore.Want{SHA256: t.Want(), From: "the unsigned sidecar " + l.name + backup.SidecarSuffix})
		}
	default:
		return nil, t.Err
	}
	ob.want = append(ob.want, recordedSHA256(cfg, l.name)...)
	body, err := l.store.Open(ctx, l.name)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s/%s: %w", l.store, l.name, err)
	}
	ob.head = &headCapture{ReadCloser: body}
	ob.body = ob.head
	return ob, nil
}

// recipients parses the object's session key packets from its first bytes,
// as read: call it after the object was read.
func (ob *openedBackup) recipients() (crypt.Recipients, error) {
	return crypt.ReadRecipients(ob.head.bytes(), ob.keys)
}

// headCapture keeps the first crypt.MaxHead bytes read through it.
type headCapture struct {
	io.ReadCloser
	mu   sync.Mutex
	head []byte
}

func (h *headCapture) Read(p []byte) (int, error) {
	n, err := h.ReadCloser.Read(p)
	if n > 0 {
		h.mu.Lock()
		if room := crypt.MaxHead - len(h.head); room > 0 {
			h.head = append(h.head, p[:min(n, room)]...)
		}
		h.mu.Unlock()
	}
	return n, err
}

func (h *headCapture) bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head
}

// recordedSHA256 is the SHA-256 backup.json recorded for name, when it
// names that object: a second witness beside the statement.
func recordedSHA256(cfg *config.Config, name string) []restore.Want {
	var b status.Backup
	if err := status.Read(cfg.StatusPath(status.BackupFile), &b); err != nil {
		return nil
	}
	runs := append([]status.BackupRun{b.Run()}, b.History...)
	if b.LastSuccess != nil {
		runs = append(runs, *b.LastSuccess)
	}
	for _, r := range runs {
		if r.Object == name && r.SHA256 != "" {
			return []restore.Want{{SHA256: r.SHA256, From: cfg.StatusPath(status.BackupFile)}}
		}
	}
	return nil
}

// secretKeys reads the host secret key, and keys retired by `init
// --rotate-key` beside it, so backups made before a rotation still restore
// and their signatures still verify.
func secretKeys(cfg *config.Config) (openpgp.EntityList, error) {
	keys, err := crypt.ReadKeyFile(cfg.KeyFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("host secret key %s missing: copy host-key.asc from the escrow zip (drym-%s/host-key.asc) to it", cfg.KeyFile, cfg.Host)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("cannot read host secret key %s: permission denied (run as root)", cfg.KeyFile)
	case err != nil:
		return nil, fmt.Errorf("host secret key: %v", err)
	}
	if keys[0].PrivateKey == nil {
		return nil, fmt.Errorf("%s holds no secret key (is it the public half?)", cfg.KeyFile)
	}
	retired, _ := crypt.RetiredKeyFiles(cfg.KeyFile)
	for _, p := range retired {
		if old, err := crypt.ReadKeyFile(p); err == nil {
			keys = append(keys, old...)
		}
	}
	return keys, nil
}
