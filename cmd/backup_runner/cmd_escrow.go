package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/version"
)

type escrowCmd struct{}

func (c *escrowCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadJobConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	if cfg.Escrow.URL == "" {
		return a.fail(exitUsage, "no escrow destination in %s: add [escrow] url = \"dir:///path\" or \"s3://bucket/prefix\" and run backup_runner escrow again", cfg.Path)
	}
	return shipEscrow(ctx, a, cfg)
}

// shipEscrow builds the escrow zip and ships it to [escrow] url, recording
// the outcome in escrow.json. Shipping never replaces a zip: the same zip
// again is "already shipped"; a changed one goes under a new name.
func shipEscrow(ctx context.Context, a *app, cfg *config.Config) int {
	var res escrow.Shipped
	st, code := runJob(ctx, a, cfg, job[*status.Escrow]{
		kind: status.JobEscrow, file: status.EscrowFile,
		empty: func() *status.Escrow { return &status.Escrow{} },
		begin: func(base status.Common, _ *status.Escrow) *status.Escrow {
			return &status.Escrow{Common: base, Destination: cfg.Escrow.URL}
		},
		run: func(st *status.Escrow) error {
			var err error
			res, err = doEscrow(ctx, a, cfg, st)
			return err
		},
		end: func(st *status.Escrow, err error) {
			if err == nil {
				st.Zip, st.SHA256, st.AlreadyShipped = res.Name, res.SHA256, res.Already
			}
		},
	})
	if code != exitOK {
		return code
	}
	where := cfg.Escrow.URL
	if res.Already {
		note := "identical"
		if res.Note != "" {
			note = res.Note
		}
		a.printf("escrow already shipped: %s in %s (%s); kept\n", res.Name, where, note)
	} else {
		a.printf("escrow shipped: %s to %s (key %s, sha256 %s)\n", res.Name, where, st.Fingerprint, res.SHA256)
	}
	return exitOK
}

func doEscrow(ctx context.Context, a *app, cfg *config.Config, st *status.Escrow) (escrow.Shipped, error) {
	key, err := escrowKey(cfg)
	if err != nil {
		return escrow.Shipped{}, err
	}
	st.Fingerprint = crypt.Fingerprint(key)
	var team openpgp.EntityList
	for _, r := range cfg.Escrow.Recipients {
		keys, err := crypt.ReadKeyFile(r)
		if err != nil {
			return escrow.Shipped{}, fmt.Errorf("escrow recipient key: %v (fix [escrow] recipients in %s)", err, cfg.Path)
		}
		team = append(team, keys...)
	}
	z, err := escrow.Build(escrow.Params{Config: cfg, Key: key, Team: team, Now: a.now(), Version: version.Version})
	if err != nil {
		return escrow.Shipped{}, err
	}
	w, err := store.Open(ctx, cfg.Escrow.Remote, "", store.Write)
	if err != nil {
		return escrow.Shipped{}, fmt.Errorf("escrow destination: %w", err)
	}
	// Reading back is only needed when the name is taken; a failure to set
	// up read access is not a reason to keep the key on the host alone.
	r, err := store.Open(ctx, cfg.Escrow.Remote, "", store.Read)
	if err != nil {
		a.log.Warn("cannot read the escrow location to compare", "err", err)
		r = nil
	}
	return escrow.Ship(ctx, w, r, z)
}

// escrowKey reads the host's secret key and makes sure the public key file
// beside it (the one backups are encrypted to) is the same key: escrowing a
// key the backups are not encrypted to would be worse than none.
func escrowKey(cfg *config.Config) (*openpgp.Entity, error) {
	keys, err := crypt.ReadKeyFile(cfg.KeyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("host key %s missing: run backup_runner init", cfg.KeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("host key: %v (escrow runs as root: the secret key is readable only by root)", err)
	}
	key := keys[0]
	if key.PrivateKey == nil {
		return nil, fmt.Errorf("host key %s holds no secret key", cfg.KeyFile)
	}
	if key.PrivateKey.Encrypted {
		return nil, fmt.Errorf("host key %s is protected by a passphrase: drym needs it without one (cron uses it)", cfg.KeyFile)
	}
	pubPath := cfg.PublicKeyFile()
	pub, err := crypt.ReadKeyFile(pubPath)
	if err != nil {
		return nil, fmt.Errorf("host public key: %v (run backup_runner init to write it from the secret key)", err)
	}
	if fp, pfp := crypt.Fingerprint(key), crypt.Fingerprint(pub[0]); fp != pfp {
		return nil, fmt.Errorf("host key files disagree: %s is key %s but %s is key %s: backups go to the public key; move the wrong file away and run backup_runner init",
			cfg.KeyFile, fp, pubPath, pfp)
	}
	return key, nil
}
