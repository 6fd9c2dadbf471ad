package main

import (
	"fmt"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
)

// stateOwner refuses a state directory whose status files belong to another
// host. Two settings files sharing one state dir (the default) would write
// each other's status files, and one host's failures would read as the
// other's success. A file that cannot be read says nothing about its owner
// and does not block: the job replaces it and says so.
func stateOwner(cfg *config.Config) error {
	var b status.Backup
	var tr status.TestRestore
	var e status.Escrow
	for _, f := range []struct {
		name string
		v    any
		c    *status.Common
	}{{status.BackupFile, &b, &b.Common}, {status.TestRestoreFile, &tr, &tr.Common}, {status.EscrowFile, &e, &e.Common}} {
		if status.Read(cfg.StatusPath(f.name), f.v) != nil {
			continue
		}
		if f.c.Host != cfg.Host {
			return fmt.Errorf("state directory %s belongs to host %q (%s), but %s is for host %q: give each settings file its own state_dir",
				cfg.StateDir, f.c.Host, f.name, cfg.Path, cfg.Host)
		}
	}
	return nil
}

// loadJobConfig loads the settings for a job that writes a status file, and
// makes sure the state directory is this host's.
func (a *app) loadJobConfig() (*config.Config, int, error) {
	cfg, code, err := a.loadConfig()
	if err != nil {
		return nil, code, err
	}
	if err := stateOwner(cfg); err != nil {
		return nil, exitUsage, err
	}
	return cfg, exitOK, nil
}
