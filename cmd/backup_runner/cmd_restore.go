package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/drym-backup/drym/internal/restore"
	"github.com/drym-backup/drym/internal/units"
)

type restoreCmd struct {
	Backup        string   `arg:"--backup" help:"backup to restore: an object name or latest (the newest one signed by this host's key and not dated in the future)" default:"latest"`
	To            string   `arg:"--to,required" help:"directory to restore into (created if missing); nothing is written outside it" placeholder:"DIR"`
	Overwrite     bool     `arg:"--overwrite" help:"replace existing files (directories are merged, never replaced)"`
	AllowUnsigned bool     `arg:"--allow-unsigned" help:"accept a backup without a signature (made before drym signed its backups); it must be named with --backup"`
	Paths         []string `arg:"positional" help:"paths in the archive to restore, e.g. etc/nginx (all when none)"`
}

func (c *restoreCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	ob, err := openBackup(ctx, a, cfg, c.Backup, c.AllowUnsigned)
	var usage *usageError
	if errors.As(err, &usage) {
		return a.fail(exitUsage, "restore: %v", err)
	}
	if err != nil {
		return a.fail(exitFailure, "restore: %v", err)
	}
	defer ob.body.Close()

	prog := newProgress(a, "restore")
	s := restore.Open(ctx, ob.body, ob.keys, prog.Output)
	rep, rerr := restore.Extract(ctx, s, c.To, restore.Options{
		Paths: c.Paths, Overwrite: c.Overwrite, Owners: os.Geteuid() == 0, OnFile: prog.File,
	})
	res, err := s.Finish(rerr, ob.want...)
	prog.Close()

	for _, r := range rep.Refused.List {
		fmt.Fprintf(a.stderr, "backup_runner: not restored: %s\n", r)
	}
	if n := rep.Refused.Count - len(rep.Refused.List); n > 0 {
		fmt.Fprintf(a.stderr, "backup_runner: … and %d more not restored\n", n)
	}
	for _, m := range rep.Mismatches.List {
		fmt.Fprintf(a.stderr, "backup_runner: MISMATCH: %s\n", m)
	}
	if n := rep.Mismatches.Count - len(rep.Mismatches.List); n > 0 {
		fmt.Fprintf(a.stderr, "backup_runner: … and %d more mismatches\n", n)
	}
	for _, p := range rep.NotFound {
		fmt.Fprintf(a.stderr, "backup_runner: %s: not in backup %s (paths are as archived, without the leading /; see the manifest)\n", p, ob.name)
	}
	failed := false
	switch {
	case err != nil:
		failed = true
		a.fail(exitFailure, "restore of %s failed: %s (what was written so far is in %s)", ob.name, oneLine(interrupted(ctx, err).Error()), c.To)
	case !rep.Verified:
		fmt.Fprintf(a.stderr, "backup_runner: WARNING: unverified: %s has no drym manifest (%s), so the restored files could not be checked\n", ob.name, ".drym/manifest.json")
	}
	if err == nil && !res.SHA256Checked {
		a.log.Warn("no recorded SHA-256 for the object (no sidecar, not in backup.json); the OpenPGP integrity check passed", "object", ob.name)
	}
	if rep.Mismatches.Count > 0 || rep.Refused.Count > 0 || len(rep.NotFound) > 0 {
		failed = true
	}
	verdict := "verified against the manifest"
	if !rep.Verified {
		verdict = "UNVERIFIED"
	}
	if rep.Mismatches.Count > 0 {
		verdict = fmt.Sprintf("%d MISMATCHES with the manifest", rep.Mismatches.Count)
	}
	a.printf("restored %s into %s: %d files (%s), %d directories, %d symlinks, %d hard links; %s; %d not restored\n",
		ob.name, c.To, rep.Files, units.Bytes(rep.Bytes), rep.Dirs, rep.Symlinks, rep.Hardlinks, verdict, rep.Refused.Count)
	if failed {
		return exitFailure
	}
	return exitOK
}
