package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/safefile"
)

type initCmd struct {
	Source         []string `arg:"--source,separate" help:"directory or file to back up (repeat)" placeholder:"PATH"`
	Exclude        []string `arg:"--exclude,separate" help:"glob of paths or names to leave out (repeat)" placeholder:"GLOB"`
	Dest           string   `arg:"--dest" help:"destination: dir:///path, /path or s3://bucket/prefix" placeholder:"URL"`
	Endpoint       string   `arg:"--endpoint" help:"S3 endpoint URL (S3-compatible servers)" placeholder:"URL"`
	Region         string   `arg:"--region" help:"S3 region"`
	PathStyle      bool     `arg:"--path-style" help:"S3 path-style addressing"`
	Profile        string   `arg:"--profile" help:"AWS profile for uploads (put-only is enough)"`
	ReadProfile    string   `arg:"--read-profile" help:"AWS profile for test-restore, restore, list and checks"`
	Escrow         string   `arg:"--escrow" help:"escrow destination: dir:///path or s3://bucket/prefix" placeholder:"URL"`
	EscrowEndpoint string   `arg:"--escrow-endpoint" help:"S3 endpoint for the escrow" placeholder:"URL"`
	EscrowProfile  string   `arg:"--escrow-profile" help:"AWS profile that ships the escrow zip (put-only is enough)"`
	EscrowRead     string   `arg:"--escrow-read-profile" help:"AWS profile check_key_escrow reads the escrow with"`
	EscrowTeam     []string `arg:"--escrow-recipient,separate" help:"team public key file: escrow the secret key encrypted to it (repeat)" placeholder:"FILE"`
	Recipient      []string `arg:"--recipient,separate" help:"extra public key file every backup is also encrypted to (repeat)" placeholder:"FILE"`
	StateDir       string   `arg:"--state-dir" help:"state directory [default: /var/lib/drym]" placeholder:"DIR"`
	KeyFile        string   `arg:"--key-file" help:"host secret key file [default: /etc/drym/host-key.asc]" placeholder:"FILE"`
	Host           string   `arg:"--host" help:"host name in object names [default: hostname]"`
	RotateKey      bool     `arg:"--rotate-key" help:"replace the host key with a new one (the old one is kept beside it)"`
}

func (c *initCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := c.settings(a)
	if err != nil {
		return a.fail(code, "%v", err)
	}
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	fp, created, err := c.hostKey(cfg)
	if err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	if created {
		a.printf("created host key %s (fingerprint %s)\n", cfg.KeyFile, fp)
	} else {
		a.printf("host key %s exists (fingerprint %s); kept\n", cfg.KeyFile, fp)
	}
	// The checks run as nagios: say now what they will not be able to read.
	for _, p := range []string{cfg.Path, cfg.PublicKeyFile(), cfg.StatusPath(".")} {
		if why := nagiosCannotRead(p); why != "" {
			a.printf("warning: %s: the checks, run as user nagios, will be UNKNOWN; give group nagios read access\n", why)
		}
	}
	if cfg.Escrow.URL == "" {
		a.printf("no escrow destination: the key exists only on this host. Set [escrow] url and run `backup_runner escrow`.\n")
		initDoctor(ctx, a, cfg)
		return exitOK
	}
	if code := shipEscrow(ctx, a, cfg); code != exitOK {
		return code
	}
	initDoctor(ctx, a, cfg)
	return exitOK
}

// settings writes the settings file from the flags when it is absent, or
// loads the existing one: init never rewrites settings an admin may have
// edited.
func (c *initCmd) settings(a *app) (*config.Config, int, error) {
	if _, err := os.Stat(a.cfgPath); err == nil {
		cfg, code, err := a.loadJobConfig()
		if err != nil {
			return nil, code, err
		}
		if c.Dest != "" || len(c.Source) > 0 {
			a.printf("settings %s exist; kept (edit the file to change them)\n", a.cfgPath)
		}
		return cfg, exitOK, nil
	}
	if len(c.Source) == 0 || c.Dest == "" {
		return nil, exitUsage, fmt.Errorf("%s does not exist: give --source and --dest to create it", a.cfgPath)
	}
	cfg := &config.Config{
		Host: c.Host, Sources: absAll(c.Source), Exclude: c.Exclude, StateDir: c.StateDir, KeyFile: c.KeyFile,
		Recipients: absAll(c.Recipient),
		Destination: config.Remote{
			URL: c.Dest, Endpoint: c.Endpoint, Region: c.Region, PathStyle: c.PathStyle,
			Profile: c.Profile, ReadProfile: c.ReadProfile,
		},
	}
	if c.Escrow != "" {
		cfg.Escrow.URL = c.Escrow
		cfg.Escrow.Endpoint = c.EscrowEndpoint
		cfg.Escrow.Profile = c.EscrowProfile
		cfg.Escrow.ReadProfile = c.EscrowRead
		cfg.Escrow.Recipients = absAll(c.EscrowTeam)
		cfg.Escrow.Region = c.Region
		cfg.Escrow.PathStyle = c.PathStyle
		if c.EscrowEndpoint == "" {
			cfg.Escrow.Endpoint = c.Endpoint
		}
	}
	if cfg.StateDir != "" {
		cfg.StateDir, _ = filepath.Abs(cfg.StateDir)
	}
	if cfg.KeyFile != "" {
		cfg.KeyFile, _ = filepath.Abs(cfg.KeyFile)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, exitUsage, fmt.Errorf("flags: %v", err)
	}
	cfg.Path = a.cfgPath
	if err := stateOwner(cfg); err != nil {
		return nil, exitUsage, err
	}
	data, err := cfg.Encode()
	if err != nil {
		return nil, exitFailure, err
	}
	if err := mkdirs(filepath.Dir(a.cfgPath), dirMode); err != nil {
		return nil, exitFailure, err
	}
	if err := writeNew(a.cfgPath, data, settingsMode); err != nil {
		return nil, exitFailure, err
	}
	cfg.Path = a.cfgPath
	a.printf("wrote settings %s\n", a.cfgPath)
	return cfg, exitOK, nil
}

func absAll(paths []string) []string {
	var out []string
	for _, p := range paths {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		out = append(out, p)
	}
	return out
}

// writeNew writes a file that must not exist yet, atomically.
func writeNew(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp-init"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Chmod(tmp, mode); err != nil { // the umask narrowed it
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return safefile.SyncDir(filepath.Dir(path))
}

// hostKey makes sure the host key exists: it creates one when absent, never
// replaces one unless --rotate-key, and restores a missing public half from
// the secret one.
func (c *initCmd) hostKey(cfg *config.Config) (fp string, created bool, err error) {
	pub := cfg.PublicKeyFile()
	_, serr := os.Stat(cfg.KeyFile)
	switch {
	case serr == nil && !c.RotateKey:
		keys, err := crypt.ReadKeyFile(cfg.KeyFile)
		if err != nil {
			return "", false, fmt.Errorf("host key: %v (fix or move the file away; init never replaces a key)", err)
		}
		if keys[0].PrivateKey == nil {
			return "", false, fmt.Errorf("host key %s holds no secret key", cfg.KeyFile)
		}
		if _, err := os.Stat(pub); errors.Is(err, os.ErrNotExist) {
			data, err := crypt.ArmorPublic(keys[0])
			if err != nil {
				return "", false, err
			}
			if err := writeNew(pub, data, 0o644); err != nil {
				return "", false, err
			}
		}
		return crypt.Fingerprint(keys[0]), false, nil
	case serr == nil && c.RotateKey:
		// Old backups still need the old key: keep it under a name that
		// says what it is.
		keys, err := crypt.ReadKeyFile(cfg.KeyFile)
		if err != nil {
			return "", false, fmt.Errorf("host key: %v", err)
		}
		// The first 16 hex digits of the fingerprint, as in the escrow
		// zip's name, so the two are matched by eye.
		retired := crypt.RetiredKeyPath(cfg.KeyFile, keys[0], time.Now())
		if err := os.Rename(cfg.KeyFile, retired); err != nil {
			return "", false, err
		}
		_ = os.Rename(pub, retired+".pub")
		if err := safefile.SyncDir(filepath.Dir(cfg.KeyFile)); err != nil {
			return "", false, err
		}
	case !errors.Is(serr, os.ErrNotExist):
		return "", false, fmt.Errorf("host key: %v", serr)
	}
	if err := mkdirs(filepath.Dir(cfg.KeyFile), dirMode); err != nil {
		return "", false, err
	}
	if _, err := os.Stat(pub); err == nil {
		// A public key without its secret: refuse to guess which is right.
		return "", false, fmt.Errorf("%s exists but %s does not: move the stray public key away, or restore the secret key from the escrow", pub, cfg.KeyFile)
	}
	e, err := crypt.Generate(cfg.Host)
	if err != nil {
		return "", false, err
	}
	if err := crypt.WriteKeyFiles(e, cfg.KeyFile, pub); err != nil {
		return "", false, err
	}
	return crypt.Fingerprint(e), true, nil
}
