package main

import (
	"context"

	"github.com/drym-backup/drym/internal/config"
)

type escrowCmd struct{}

func (c *escrowCmd) run(ctx context.Context, a *app) int {
	return a.fail(exitFailure, "escrow: not available in this build")
}

// shipEscrow builds the escrow zip and ships it to [escrow] url.
func shipEscrow(ctx context.Context, a *app, cfg *config.Config) int {
	return a.fail(exitFailure, "escrow: not available in this build")
}
