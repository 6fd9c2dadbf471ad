package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

type backupCmd struct{}

func (c *backupCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadJobConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	var prevAppendOnly *status.AppendOnly
	var res *backup.Result
	st, code := runJob(ctx, a, cfg, job[*status.Backup]{
		kind: status.JobBackup, file: status.BackupFile,
		empty: func() *status.Backup { return &status.Backup{} },
		begin: func(base status.Common, prev *status.Backup) *status.Backup {
			st := &status.Backup{Common: base, Destination: cfg.Destination.URL}
			if prev != nil {
				// History and the last success go on; so does the last
				// append-only verdict, until a run probes again.
				st.History, st.LastSuccess, prevAppendOnly = prev.History, prev.LastSuccess, prev.AppendOnly
			}
			return st
		},
		run: func(st *status.Backup) error {
			var err error
			res, err = c.backup(ctx, a, cfg, st)
			return err
		},
		end: func(st *status.Backup, err error) {
			recordBackup(st, res, err)
			st.AppendOnly = promiseAfterBackup(ctx, a, cfg, err, prevAppendOnly)
			run := st.Run()
			st.History = status.AddHistory(st.History, run)
			if st.State == status.OK {
				st.LastSuccess = &run
			}
		},
	})
	if code != exitOK {
		return code
	}
	a.printf("backup ok: %s/%s/%s: %d files, %s in, %s stored, %d warnings, signed by %s, %s\n",
		cfg.Destination.URL, cfg.Host, st.Object, st.Files, units.Bytes(st.BytesIn), units.Bytes(st.BytesOut),
		st.Warnings, st.Fingerprint, st.Duration().Round(1e7))
	for _, w := range st.WarningList {
		a.printf("  warning: %s\n", w)
	}
	printSkipped(a, st)
	return exitOK
}

// recordBackup copies what the backup found into its status; a failed run
// names no object: nothing trustworthy was stored under that name.
func recordBackup(st *status.Backup, res *backup.Result, err error) {
	if res != nil {
		st.Object, st.BytesOut, st.SHA256 = res.Name, res.BytesOut, res.SHA256
		st.BytesIn, st.Files, st.Dirs, st.Symlinks = res.Stats.BytesIn, res.Stats.Files, res.Stats.Dirs, res.Stats.Symlinks
		st.Warnings, st.WarningList = res.Stats.Warnings, res.Stats.WarningList
		st.KeyIDs, st.Signature = res.KeyIDs, res.Signature
		st.Skipped, st.SkippedList = res.Stats.Skipped, res.Stats.SkippedList
	}
	if err != nil {
		st.Object, st.SHA256, st.Signature = "", "", ""
	}
}

func (c *backupCmd) backup(ctx context.Context, a *app, cfg *config.Config, st *status.Backup) (*backup.Result, error) {
	keys, err := recipients(cfg)
	if err != nil {
		return nil, err
	}
	signer, err := signingKey(cfg, keys[0])
	if err != nil {
		return nil, err
	}
	st.Fingerprint = crypt.Fingerprint(keys[0])
	for _, k := range keys[1:] {
		st.Recipients = append(st.Recipients, crypt.Fingerprint(k))
	}
	s, err := store.Open(ctx, cfg.Destination, cfg.Host, store.Write)
	if err != nil {
		return nil, err
	}
	prog := newProgress(a, "backup")
	defer prog.Close()
	res, err := backup.Run(ctx, backup.Params{
		Host: cfg.Host, Sources: cfg.Sources, Exclude: cfg.Exclude, Recipients: keys, Signer: signer,
		Store: s, Now: a.now(), OnFile: prog.File, OnOutput: prog.Output,
	})
	return &res, err
}

// signingKey reads the host secret key, which signs each backup's
// statement (backup runs as root). It must be the key whose public half the
// backup is encrypted to: a mismatch means one of the two files was
// replaced, and a backup signed by one key and encrypted to another would
// fail every restore.
func signingKey(cfg *config.Config, host *openpgp.Entity) (*openpgp.Entity, error) {
	keys, err := crypt.ReadKeyFile(cfg.KeyFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("host secret key %s missing (it signs every backup): copy host-key.asc from the escrow zip (drym-%s/host-key.asc) to it, or run backup_runner init", cfg.KeyFile, cfg.Host)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("cannot read host secret key %s: permission denied (backup signs with it: run as root)", cfg.KeyFile)
	case err != nil:
		return nil, fmt.Errorf("host secret key: %v", err)
	}
	k := keys[0]
	if k.PrivateKey == nil {
		return nil, fmt.Errorf("%s holds no secret key (is it the public half?)", cfg.KeyFile)
	}
	if k.PrivateKey.Encrypted {
		return nil, fmt.Errorf("host secret key %s is protected by a passphrase: drym's host key has none (cron must use it)", cfg.KeyFile)
	}
	if crypt.Fingerprint(k) != crypt.Fingerprint(host) {
		return nil, fmt.Errorf("host secret key %s (%s) and public key %s (%s) disagree: restore the matching pair from the escrow zip",
			cfg.KeyFile, crypt.Fingerprint(k), cfg.PublicKeyFile(), crypt.Fingerprint(host))
	}
	return k, nil
}

// recipients returns the host public key first, then the extra recipients.
// Encrypting needs only public keys; the secret key only signs.
func recipients(cfg *config.Config) ([]*openpgp.Entity, error) {
	pub := cfg.PublicKeyFile()
	host, err := crypt.ReadKeyFile(pub)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("host public key %s missing: run backup_runner init", pub)
	}
	if err != nil {
		return nil, fmt.Errorf("host public key: %v", err)
	}
	keys := []*openpgp.Entity{host[0]}
	for _, r := range cfg.Recipients {
		extra, err := crypt.ReadKeyFile(r)
		if err != nil {
			return nil, fmt.Errorf("recipient key: %v", err)
		}
		keys = append(keys, extra...)
	}
	return keys, nil
}

func oneLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
