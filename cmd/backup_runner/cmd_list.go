package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

type listCmd struct {
	JSON bool `arg:"--json" help:"machine-readable output"`
}

// listItem is one backup object as list shows it.
type listItem struct {
	Name string    `json:"name"`
	Time time.Time `json:"time"`
	Size int64     `json:"size"`
	// Signature is "signed" (a good signature by the host key or a
	// retired one, and the statement agrees with the object), "unsigned"
	// (legacy: no signature), "untrusted" (any other failure: see
	// Problem) or "unchecked" (the host's public key could not be read).
	Signature string `json:"signature"`
	SignedBy  string `json:"signed_by,omitempty"`
	Problem   string `json:"problem,omitempty"`
	// Future is true when the name is dated more than 5 minutes after
	// now: never latest.
	Future bool `json:"future"`
	// Latest marks the object test-restore and restore choose as latest.
	Latest bool `json:"latest"`
}

// listWorkers bounds the statement checks in flight (two small reads each).
const listWorkers = 8

func (c *listCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	s, err := store.Open(ctx, cfg.Destination, cfg.Host, store.Read)
	if err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	items, err := listBackups(ctx, a, cfg, s)
	if err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	if c.JSON {
		out, _ := json.MarshalIndent(items, "", "  ")
		fmt.Fprintln(a.stdout, string(out))
		return exitOK
	}
	if len(items) == 0 {
		a.printf("no backups in %s\n", s)
		return exitOK
	}
	printBackups(a, items)
	return exitOK
}

// listBackups lists the backup objects in s, newest first, each judged by
// its signed statement (two small reads, listWorkers at a time), and marks
// the one "latest" means.
func listBackups(ctx context.Context, a *app, cfg *config.Config, s store.Store) ([]listItem, error) {
	objs, err := backup.Objects(ctx, s)
	if err != nil {
		return nil, err
	}
	keys, kerr := publicKeys(cfg)
	if kerr != nil {
		fmt.Fprintf(a.stderr, "backup_runner: warning: signatures not checked: %v\n", kerr)
	}
	now := a.now()
	items := make([]listItem, len(objs))
	errs := make([]error, len(objs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, listWorkers)
	for i, o := range objs {
		t, _ := backup.ParseName(o.Name)
		items[i] = listItem{Name: o.Name, Time: t, Size: o.Size, Future: backup.Future(o.Name, now), Signature: "unchecked"}
		if kerr != nil {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tr, err := backup.CheckStatement(ctx, s, cfg.Host, o.Name, o.Size, keys)
			if err != nil {
				errs[i] = err
				return
			}
			it := &items[i]
			switch {
			case tr.Err == nil:
				it.Signature, it.SignedBy = "signed", crypt.Fingerprint(tr.Signer)
			case tr.Unsigned():
				it.Signature = "unsigned"
			default:
				it.Signature, it.Problem = "untrusted", tr.Err.Error()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	markLatest(items)
	return items, nil
}

// markLatest makes the same choice as backup.Latest: the newest signed
// object not dated in the future, among the newest MaxCandidates of those.
func markLatest(items []listItem) {
	cands := 0
	for i := range items {
		if items[i].Future {
			continue
		}
		if cands++; cands > backup.MaxCandidates {
			return
		}
		if items[i].Signature == "signed" {
			items[i].Latest = true
			return
		}
	}
}

// printBackups prints one line a backup with its marks, then what the
// marks mean, for the marks present.
func printBackups(a *app, items []listItem) {
	var future, unsigned, untrusted int
	for _, i := range items {
		marks := []string{i.Signature}
		switch i.Signature {
		case "unsigned":
			marks[0], unsigned = "UNSIGNED", unsigned+1
		case "untrusted":
			marks[0], untrusted = "UNTRUSTED", untrusted+1
		}
		if i.Future {
			marks, future = append(marks, "FUTURE"), future+1
		}
		if i.Latest {
			marks = append(marks, "latest")
		}
		a.printf("%s  %10s  %s  %s\n", i.Time.Format(time.RFC3339), units.Bytes(i.Size), i.Name, strings.Join(marks, " "))
		if i.Problem != "" {
			a.printf("    %s\n", i.Problem)
		}
	}
	if future > 0 {
		a.printf("FUTURE: %d dated more than %s ahead of this host's clock (clock was ahead, or planted): never latest\n", future, status.ClockSkew)
	}
	if unsigned > 0 {
		a.printf("UNSIGNED: %d without a signature (made before drym signed its backups, or planted): read only with --backup NAME --allow-unsigned\n", unsigned)
	}
	if untrusted > 0 {
		a.printf("UNTRUSTED: %d whose signature or statement is wrong: not made by this host, or altered; do not restore them\n", untrusted)
	}
}

// publicKeys reads the host public key and the retired ones beside the
// secret key file: enough to verify signatures without root.
func publicKeys(cfg *config.Config) (openpgp.EntityList, error) {
	keys, err := crypt.ReadKeyFile(cfg.PublicKeyFile())
	if err != nil {
		return nil, fmt.Errorf("host public key: %v (run backup_runner init)", err)
	}
	_, retired := crypt.RetiredKeyFiles(cfg.KeyFile)
	for _, p := range retired {
		if old, err := crypt.ReadKeyFile(p); err == nil {
			keys = append(keys, old...)
		}
	}
	return keys, nil
}

type statusCmd struct {
	JSON bool `arg:"--json" help:"the three status files as one JSON object"`
}

func (c *statusCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	var b status.Backup
	var tr status.TestRestore
	var e status.Escrow
	berr := status.Read(cfg.StatusPath(status.BackupFile), &b)
	terr := status.Read(cfg.StatusPath(status.TestRestoreFile), &tr)
	eerr := status.Read(cfg.StatusPath(status.EscrowFile), &e)
	if c.JSON {
		out := map[string]any{}
		put := func(k string, v any, err error) {
			if err != nil {
				out[k] = map[string]string{"error": err.Error()}
			} else {
				out[k] = v
			}
		}
		put("backup", b, berr)
		put("test_restore", tr, terr)
		put("escrow", e, eerr)
		data, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(a.stdout, string(data))
		return exitOK
	}
	now := a.now()
	a.printf("host %s, settings %s, state %s\n", cfg.Host, cfg.Path, cfg.StateDir)
	if berr != nil {
		a.printf("backup:       %v\n", berr)
	} else {
		a.printf("backup:       %s, %s ago (%s)\n", describe(b.Common), ago(now, b.Common), b.Destination)
		if b.Object != "" {
			a.printf("              %s: %d files, %s in, %s stored, %d warnings, sha256 %s\n",
				b.Object, b.Files, units.Bytes(b.BytesIn), units.Bytes(b.BytesOut), b.Warnings, short(b.SHA256))
		}
		if b.State != status.OK && b.LastSuccess != nil {
			a.printf("              last success %s ago: %s\n", now.Sub(b.LastSuccess.Finished).Round(time.Second), b.LastSuccess.Object)
		}
		if b.AppendOnly != nil {
			a.printf("              append-only: %s\n", appendOnlyLine(b.AppendOnly))
		}
	}
	if terr != nil {
		a.printf("test-restore: %v\n", terr)
	} else {
		a.printf("test-restore: %s, %s ago: %s (%d files, %s verified)\n", describe(tr.Common), ago(now, tr.Common),
			tr.Backup, tr.Files, units.Bytes(tr.Bytes))
		switch {
		case tr.SignedBy != "":
			a.printf("              signed by %s, decrypted with %s\n", tr.SignedBy, tr.Fingerprint)
		case tr.Unsigned:
			a.printf("              UNSIGNED (read because --allow-unsigned asked)\n")
		}
		if tr.FutureCount > 0 {
			a.printf("              warning: %d backups dated in the future (never latest): %s\n", tr.FutureCount, strings.Join(tr.FutureObjects, ", "))
		}
		for _, m := range tr.Mismatches {
			a.printf("              mismatch: %s\n", m)
		}
	}
	if eerr != nil {
		a.printf("escrow:       %v\n", eerr)
	} else {
		a.printf("escrow:       %s, %s ago: %s → %s (key %s)\n", describe(e.Common), ago(now, e.Common), e.Zip, e.Destination, e.Fingerprint)
	}
	return exitOK
}

func describe(c status.Common) string {
	if c.State == status.Failed {
		return "FAILED: " + c.Error
	}
	return string(c.State)
}

func ago(now time.Time, c status.Common) time.Duration {
	t := c.Finished
	if t.IsZero() {
		t = c.Started
	}
	return now.Sub(t).Round(time.Second)
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
