// Package version holds drym's version, stamped at build time by the
// Makefile with -ldflags "-X github.com/drym-backup/drym/internal/version.Version=…"
// from `git describe`.
package version

// Version is "dev" in a plain `go build`.
var Version = "dev"
