package main

import "github.com/drym-backup/drym/internal/config"

// writeMetrics writes the node_exporter textfile when [metrics] textfile is
// set.
func writeMetrics(a *app, cfg *config.Config) {}
