package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/safefile"
	"github.com/drym-backup/drym/internal/store"
)

// zipFile reads the zip given with --zip (and the record beside it, when
// there is one).
func zipFile(ctx context.Context, path string, z *zipFacts) {
	z.Where, z.ZipName = path, filepath.Base(path)
	plugin.Doing(ctx, "reading %s", path)
	fi, err := os.Stat(path)
	if err != nil {
		z.FindErr = err
		return
	}
	if !fi.Mode().IsRegular() {
		z.ZipErr = escrow.Broken("not a regular file")
		return
	}
	z.ZipTime, z.ZipSize = fi.ModTime(), fi.Size()
	if data, err := safefile.ReadFile(path+escrow.RecordSuffix, escrow.MaxRecord); err == nil {
		z.Record, z.RecordErr = escrow.ParseRecord(data, z.ZipName)
	} else if !errors.Is(err, os.ErrNotExist) {
		z.RecordErr = err
	}
	file, err := os.Open(path)
	if err != nil {
		if store.IsDenied(err) {
			z.ZipUnreadable = err
		} else {
			z.FindErr = err
		}
		return
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, escrow.DefaultLimits.MaxZip+1))
	if err != nil {
		z.FindErr = err
		return
	}
	z.inspect(data)
}

// zipStore finds the host's newest zip in the escrow location (one
// listing), reads its public record (one small GET) and, when this user
// may, the zip itself (one GET of a few KiB).
func zipStore(ctx context.Context, cfg *config.Config, z *zipFacts) {
	z.Where = cfg.Escrow.URL
	plugin.Doing(ctx, "opening escrow location %s", cfg.Escrow.URL)
	s, err := store.Open(ctx, cfg.Escrow.Remote, "", store.Read)
	if err != nil {
		z.FindErr = err
		return
	}
	plugin.Doing(ctx, "listing %s for %s%s-*.zip", s, escrow.NamePrefix, cfg.Host)
	info, err := escrow.Latest(ctx, s, cfg.Host)
	if err != nil {
		z.FindErr = err
		return
	}
	z.ZipName, z.ZipTime, z.ZipSize = info.Name, info.ModTime, info.Size
	readZip(ctx, s, z)
}

// readZip reads the record and the zip of z.ZipName from s.
func readZip(ctx context.Context, s store.Store, z *zipFacts) {
	plugin.Doing(ctx, "reading %s from %s", escrow.RecordName(z.ZipName), s)
	data, err := store.ReadRange(ctx, s, escrow.RecordName(z.ZipName), 0, escrow.MaxRecord+1)
	switch {
	case err == nil:
		z.Record, z.RecordErr = escrow.ParseRecord(data, z.ZipName)
	case !errors.Is(err, store.ErrNotFound):
		z.RecordErr = err
	}
	plugin.Doing(ctx, "reading %s from %s", z.ZipName, s)
	data, err = store.ReadRange(ctx, s, z.ZipName, 0, escrow.DefaultLimits.MaxZip+1)
	switch {
	case store.IsDenied(err):
		z.ZipUnreadable = err
	case errors.Is(err, store.ErrNotFound):
		z.FindErr = err // listed a moment ago, gone now
	case err != nil:
		z.FindErr = err
	case int64(len(data)) > escrow.DefaultLimits.MaxZip:
		z.ZipErr = escrow.Broken("larger than %d bytes", escrow.DefaultLimits.MaxZip)
	default:
		z.inspect(data)
	}
}
