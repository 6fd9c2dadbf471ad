package main

import (
	"context"
	"fmt"
	"time"

	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
)

// storage is --host: the verdict on one host from the destination alone,
// as the monitoring server gives it (docs/CHECKS.md#monitoring-from-the-store).
func storage(ctx context.Context, a *args, now time.Time) plugin.Result {
	o, res, ok := openMonitoring(ctx, a.Monitoring)
	if !ok {
		return res
	}
	p, err := o.Params(a.Host, now, evidence.Window(a.Critical), false)
	if err != nil {
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("%v (see --help)", err)}
	}
	return evaluateStorage(evidence.Gather(ctx, p), *a, o.Path)
}

// evaluateStorage judges one host's evidence: pure, no I/O, no clock (the
// facts carry the time they were gathered at).
func evaluateStorage(h *evidence.Host, a args, settings string) plugin.Result {
	var r plugin.Result
	evidence.JudgeBackup(&r, h, evidence.Limits{Warning: a.Warning, Critical: a.Critical, Shrink: a.ShrinkWarning})
	r.Addf("thresholds: -w %s -c %s --shrink-warning %s; listed from %s (-c plus %s)", a.Warning, a.Critical, a.ShrinkWarning,
		plugin.Stamp(h.Listing.Start), plugin.HumanDuration(evidence.MaxUploadLag))
	r.Addf("monitoring settings: %s; %d requests", settings, h.Requests)
	r.Perfdata = append(r.Perfdata, plugin.Count("requests", int64(h.Requests)))
	return r
}

// openMonitoring loads the monitoring settings and opens their stores; ok
// is false with the result to report when that fails.
func openMonitoring(ctx context.Context, flag string) (*evidence.Opened, plugin.Result, bool) {
	s, err := evidence.LoadSettings(evidence.SettingsPath(flag))
	if err != nil {
		return nil, plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("%v: correct it (see --help)", err)}, false
	}
	o, err := evidence.Open(ctx, s)
	if err != nil {
		return nil, plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("cannot open the stores of %s: %v: correct the settings (see --help)", s.Path, err)}, false
	}
	return o, plugin.Result{}, true
}
