package main

import (
	"context"
	"fmt"
	"time"

	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
)

// proofWindow is how far back --host looks for the newest backup to prove
// the escrow against: a week of daily backups, and the upload lag.
const proofWindow = 7*24*time.Hour + evidence.MaxUploadLag

// storage is --host: the office-side proof that HOST's newest escrow zip
// opens its newest backup (docs/CHECKS.md#monitoring-from-the-store).
func storage(ctx context.Context, a *args, now time.Time) plugin.Result {
	s, err := evidence.LoadSettings(evidence.SettingsPath(a.Monitoring))
	if err != nil {
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("%v: correct it (see --help)", err)}
	}
	o, err := evidence.Open(ctx, s)
	if err != nil {
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("cannot open the stores of %s: %v: correct the settings (see --help)", s.Path, err)}
	}
	p, err := o.Params(a.Host, now, proofWindow, true)
	if err != nil {
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("%v (see --help)", err)}
	}
	return evaluateProof(evidence.Gather(ctx, p), s.Path)
}

// evaluateProof judges the proof: pure, no I/O, no clock.
func evaluateProof(h *evidence.Host, settings string) plugin.Result {
	var r plugin.Result
	evidence.JudgeEscrowProof(&r, h)
	r.Addf("monitoring settings: %s; %d requests", settings, h.Requests)
	return r
}
