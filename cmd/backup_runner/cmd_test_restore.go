package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/restore"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
	"github.com/drym-backup/drym/internal/version"
)

type testRestoreCmd struct {
	Backup string `arg:"--backup" help:"backup to test: an object name or latest" default:"latest"`
}

func (c *testRestoreCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadJobConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	lock, err := status.TryLock(cfg.StateDir, status.JobTestRestore)
	if err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	defer lock.Unlock()

	path := cfg.StatusPath(status.TestRestoreFile)
	st := &status.TestRestore{
		Common:      status.NewCommon(status.JobTestRestore, cfg.Host, version.Version, a.now()),
		Destination: cfg.Destination.URL,
	}
	var prev status.TestRestore
	if err := status.Read(path, &prev); err == nil {
		st.LastSuccess = prev.LastSuccess
	} else if !errors.Is(err, status.ErrNotExist) {
		a.log.Warn("previous test-restore status unreadable; replacing it", "err", err)
	}
	if err := status.Write(path, st); err != nil {
		return a.fail(exitFailure, "%v", err)
	}

	err = c.test(ctx, a, cfg, st)
	if err = a.endJob(ctx, &st.Common, err); err == nil {
		st.LastSuccess = st.Finished
	}
	if werr := status.Write(path, st); werr != nil {
		return a.fail(exitFailure, "test-restore %s but %v", st.State, werr)
	}
	writeMetrics(a, cfg)
	if err != nil {
		for _, m := range st.Mismatches {
			fmt.Fprintf(a.stderr, "  mismatch: %s\n", m)
		}
		return a.fail(exitFailure, "test-restore failed: %s", st.Error)
	}
	a.printf("test-restore ok: %s/%s/%s: %d files, %s verified against the manifest, object sha256 %s, %s\n",
		cfg.Destination.URL, cfg.Host, st.Backup, st.Files, units.Bytes(st.Bytes), checked(st.SHA256Checked),
		st.Duration().Round(1e7))
	return exitOK
}

func checked(ok bool) string {
	if ok {
		return "checked"
	}
	return "not recorded (no sidecar, not in backup.json)"
}

// test reads the whole object and verifies it, filling st as it learns.
func (c *testRestoreCmd) test(ctx context.Context, a *app, cfg *config.Config, st *status.TestRestore) error {
	ob, err := openBackup(ctx, a, cfg, c.Backup)
	if err != nil {
		return err
	}
	defer ob.body.Close()
	st.Backup, st.BackupTime, st.Fingerprint = ob.name, ob.time, ob.fingerprint

	prog := newProgress(a, "test-restore")
	defer prog.Close()
	s := restore.Open(ctx, ob.body, ob.keys, prog.Output)
	rep, rerr := restore.Verify(ctx, s, prog.File)
	res, err := s.Finish(rerr, ob.want...)
	st.ObjectBytes, st.ObjectSHA256, st.SHA256Checked = res.ObjectBytes, res.ObjectSHA256, res.SHA256Checked
	st.Files, st.Bytes, st.Verified = rep.Files, rep.Bytes, rep.Verified
	st.Mismatches = rep.Problems.List
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

// openedBackup is a backup object being read, with what it is checked
// against.
type openedBackup struct {
	name        string
	time        time.Time
	body        io.ReadCloser
	keys        openpgp.EntityList
	fingerprint string
	want        []restore.Want
}

// openBackup finds the backup (latest or by name) in the destination with the
// read credentials, loads the secret key(s) and the SHA-256 the object must
// have, and opens it.
func openBackup(ctx context.Context, a *app, cfg *config.Config, which string) (*openedBackup, error) {
	keys, err := secretKeys(cfg)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, cfg.Destination, cfg.Host, store.Read)
	if err != nil {
		return nil, err
	}
	name, err := resolveBackup(ctx, s, cfg.Host, which)
	if err != nil {
		return nil, err
	}
	ob := &openedBackup{name: name, keys: keys, fingerprint: crypt.Fingerprint(keys[0])}
	ob.time, _ = backup.ParseName(name)
	if ob.want, err = wantSHA256(ctx, a, cfg, s, name); err != nil {
		return nil, err
	}
	if ob.body, err = s.Open(ctx, name); err != nil {
		return nil, fmt.Errorf("cannot read %s/%s: %w", s, name, err)
	}
	return ob, nil
}

// resolveBackup turns --backup into an object name: "latest" is the newest
// backup name in the store; a name may be given bare or as <host>/<name>.
func resolveBackup(ctx context.Context, s store.Store, host, which string) (string, error) {
	if which == "" || which == "latest" {
		last, err := store.Latest(ctx, s, backup.IsName)
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("no backups in %s: run backup_runner backup first", s)
		}
		if err != nil {
			return "", fmt.Errorf("cannot list %s: %w", s, err)
		}
		return last.Name, nil
	}
	name := strings.TrimPrefix(which, host+"/")
	if !backup.IsName(name) {
		return "", fmt.Errorf("--backup %q is not a backup name (see backup_runner list)", which)
	}
	if _, err := s.Stat(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("backup %s not found in %s (see backup_runner list)", name, s)
		}
		return "", fmt.Errorf("cannot stat %s in %s: %w", name, s, err)
	}
	return name, nil
}

// maxSidecar bounds a sidecar read: a real one is 64 hex, two spaces, a name.
const maxSidecar = 4096

// wantSHA256 collects the SHA-256s recorded for name: the .sha256 sidecar in
// the store, and backup.json when it names that object. A sidecar that is
// missing is tolerated (the OpenPGP integrity check still runs); one that
// is garbled or names another object is a failure.
func wantSHA256(ctx context.Context, a *app, cfg *config.Config, s store.Store, name string) ([]restore.Want, error) {
	var want []restore.Want
	sc := name + backup.SidecarSuffix
	r, err := s.Open(ctx, sc)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.log.Warn("no checksum sidecar", "sidecar", sc)
	case err != nil:
		return nil, fmt.Errorf("cannot read the checksum sidecar %s: %w", sc, err)
	default:
		data, rerr := io.ReadAll(io.LimitReader(r, maxSidecar))
		r.Close()
		if rerr != nil {
			return nil, fmt.Errorf("cannot read the checksum sidecar %s: %w", sc, rerr)
		}
		sum, err := parseSidecar(data, name)
		if err != nil {
			return nil, fmt.Errorf("checksum sidecar %s: %v", sc, err)
		}
		want = append(want, restore.Want{SHA256: sum, From: "the sidecar " + sc})
	}
	var b status.Backup
	if err := status.Read(cfg.StatusPath(status.BackupFile), &b); err == nil {
		runs := append([]status.BackupRun{b.Run()}, b.History...)
		if b.LastSuccess != nil {
			runs = append(runs, *b.LastSuccess)
		}
		for _, r := range runs {
			if r.Object == name && r.SHA256 != "" {
				want = append(want, restore.Want{SHA256: r.SHA256, From: cfg.StatusPath(status.BackupFile)})
				break
			}
		}
	}
	return want, nil
}

// parseSidecar reads "<64 hex>  <name>\n" (sha256sum's format).
func parseSidecar(data []byte, name string) (string, error) {
	f := strings.Fields(string(data))
	if len(f) != 2 || len(f[0]) != 64 || strings.Trim(strings.ToLower(f[0]), "0123456789abcdef") != "" {
		return "", errors.New("not in sha256sum format")
	}
	if strings.TrimPrefix(f[1], "*") != name {
		return "", fmt.Errorf("names %q, not this object", f[1])
	}
	return strings.ToLower(f[0]), nil
}

// secretKeys reads the host secret key, and keys retired by `init
// --rotate-key` beside it, so backups made before a rotation still restore.
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
	retired, _ := filepath.Glob(cfg.KeyFile + ".*.retired-*")
	for _, p := range retired {
		if strings.HasSuffix(p, ".pub") {
			continue
		}
		if old, err := crypt.ReadKeyFile(p); err == nil {
			keys = append(keys, old...)
		}
	}
	return keys, nil
}
