package main

import "context"

type restoreCmd struct {
	Backup string   `arg:"--backup" help:"backup to restore: an object name or latest" default:"latest"`
	To     string   `arg:"--to,required" help:"directory to restore into" placeholder:"DIR"`
	Paths  []string `arg:"positional" help:"paths in the archive to restore (all when none)"`
}

func (c *restoreCmd) run(ctx context.Context, a *app) int {
	return a.fail(exitFailure, "restore: not available in this build")
}
