package main

import "context"

type testRestoreCmd struct {
	Backup string `arg:"--backup" help:"backup to test: an object name or latest" default:"latest"`
}

func (c *testRestoreCmd) run(ctx context.Context, a *app) int {
	return a.fail(exitFailure, "test-restore: not available in this build")
}
