package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

type listCmd struct {
	JSON bool `arg:"--json" help:"machine-readable output"`
}

func (c *listCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	s, err := store.Open(ctx, cfg.Destination, cfg.Host, store.Read)
	if err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	type item struct {
		Name string    `json:"name"`
		Time time.Time `json:"time"`
		Size int64     `json:"size"`
	}
	var items []item
	err = s.List(ctx, "", func(i store.Info) error {
		if t, err := backup.ParseName(i.Name); err == nil {
			items = append(items, item{Name: i.Name, Time: t, Size: i.Size})
		}
		return nil
	})
	if err != nil {
		return a.fail(exitFailure, "%v", err)
	}
	slices.Reverse(items) // newest first
	if c.JSON {
		if items == nil {
			items = []item{}
		}
		out, _ := json.MarshalIndent(items, "", "  ")
		fmt.Fprintln(a.stdout, string(out))
		return exitOK
	}
	if len(items) == 0 {
		a.printf("no backups in %s\n", s)
		return exitOK
	}
	for _, i := range items {
		a.printf("%s  %10s  %s\n", i.Time.Format(time.RFC3339), units.Bytes(i.Size), i.Name)
	}
	return exitOK
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
