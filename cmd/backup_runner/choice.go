package main

import (
	"context"
	"errors"

	"github.com/drym-backup/drym/internal/restore"
)

// backupChoice is how the commands that read one backup (test-restore,
// restore, files) name it. go-arg takes the embedded struct's flags as the
// command's own.
type backupChoice struct {
	Backup        string `arg:"--backup" help:"the backup: an object name, or latest (the newest one signed by this host's key and not dated in the future)" default:"latest"`
	AllowUnsigned bool   `arg:"--allow-unsigned" help:"accept a backup without a signature (made before drym signed its backups); it must be named with --backup"`
}

// openChosen is the start restore and files share: the PATHs checked (a
// bad one is a usage error, found before anything is read), the settings
// loaded, and the chosen backup's signed statement checked and the object
// opened. On failure it returns the exit code, the message printed.
func (c backupChoice) openChosen(ctx context.Context, a *app, verb string, paths []string) (*openedBackup, int) {
	if err := restore.CleanPaths(paths); err != nil {
		return nil, a.fail(exitUsage, "%s: %v", verb, err)
	}
	cfg, code, err := a.loadConfig()
	if err != nil {
		return nil, a.fail(code, "%v", err)
	}
	ob, err := openBackup(ctx, a, cfg, c.Backup, c.AllowUnsigned)
	var usage *usageError
	switch {
	case errors.As(err, &usage):
		return nil, a.fail(exitUsage, "%s: %v", verb, err)
	case err != nil:
		return nil, a.fail(exitFailure, "%s: %v", verb, err)
	}
	return ob, exitOK
}
