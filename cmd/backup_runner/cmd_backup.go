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
	"github.com/drym-backup/drym/internal/version"
)

type backupCmd struct{}

func (c *backupCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	lock, err := status.TryLock(cfg.StateDir, status.JobBackup)
	if err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	defer lock.Unlock()

	path := cfg.StatusPath(status.BackupFile)
	st := &status.Backup{
		Common:      status.NewCommon(status.JobBackup, cfg.Host, version.Version, a.now()),
		Destination: cfg.Destination.URL,
	}
	// Carry the history and the last success forward; a previous file that
	// cannot be read is replaced, but said.
	var prev status.Backup
	if err := status.Read(path, &prev); err == nil {
		st.History, st.LastSuccess = prev.History, prev.LastSuccess
	} else if !errors.Is(err, status.ErrNotExist) {
		a.log.Warn("previous backup status unreadable; starting a new history", "err", err)
	}
	if err := status.Write(path, st); err != nil {
		return a.fail(exitFailure, "%v", err)
	}

	res, err := c.backup(ctx, a, cfg, st)
	err = a.endJob(ctx, &st.Common, err)
	if res != nil {
		st.Object, st.BytesOut, st.SHA256 = res.Name, res.BytesOut, res.SHA256
		st.BytesIn, st.Files, st.Dirs, st.Symlinks = res.Stats.BytesIn, res.Stats.Files, res.Stats.Dirs, res.Stats.Symlinks
		st.Warnings, st.WarningList = res.Stats.Warnings, res.Stats.WarningList
		st.Skipped, st.SkippedList = res.Stats.Skipped, res.Stats.SkippedList
	}
	if err != nil {
		st.Object, st.SHA256 = "", "" // nothing was stored under that name
	}
	run := st.Run()
	st.History = status.AddHistory(st.History, run)
	if st.State == status.OK {
		st.LastSuccess = &run
	}
	if werr := status.Write(path, st); werr != nil {
		return a.fail(exitFailure, "backup %s but %v", st.State, werr)
	}
	writeMetrics(a, cfg)
	if err != nil {
		return a.fail(exitFailure, "backup failed: %s", st.Error)
	}
	a.printf("backup ok: %s/%s/%s: %d files, %s in, %s stored, %d warnings, %s\n",
		cfg.Destination.URL, cfg.Host, st.Object, st.Files, units.Bytes(st.BytesIn), units.Bytes(st.BytesOut),
		st.Warnings, st.Duration().Round(1e7))
	for _, w := range st.WarningList {
		a.printf("  warning: %s\n", w)
	}
	printSkipped(a, st)
	return exitOK
}

func (c *backupCmd) backup(ctx context.Context, a *app, cfg *config.Config, st *status.Backup) (*backup.Result, error) {
	keys, err := recipients(cfg)
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
		Host: cfg.Host, Sources: cfg.Sources, Exclude: cfg.Exclude, Recipients: keys,
		Store: s, Now: a.now(), OnFile: prog.File, OnOutput: prog.Output,
	})
	return &res, err
}

// recipients returns the host public key first, then the extra recipients.
// Encrypting needs only public keys: the backup never touches the secret.
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
