package main

import (
	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/metrics"
)

// writeMetrics rewrites the node_exporter textfile from the three status
// files when [metrics] textfile is set. Every job calls it after writing its
// own status file. A failure is a warning, not a failed job: the status files
// (what the checks read) are already written, and failing a good backup over
// a metrics directory would be worse than a stale textfile.
func writeMetrics(a *app, cfg *config.Config) {
	path := cfg.Metrics.Textfile
	if path == "" {
		a.log.Debug("metrics: no [metrics] textfile set; skipped")
		return
	}
	jobs := metrics.Gather(cfg.StateDir)
	for _, j := range jobs {
		if j.Problem != "" {
			a.log.Debug("metrics: status unusable, reported as not ok", "job", j.Name, "problem", j.Problem)
		}
	}
	data := metrics.Render(cfg.Host, jobs)
	if err := metrics.WriteFile(path, data); err != nil {
		a.log.Warn("metrics textfile not written", "path", path, "err", err)
		return
	}
	a.log.Debug("metrics: textfile written", "path", path, "bytes", len(data))
}
