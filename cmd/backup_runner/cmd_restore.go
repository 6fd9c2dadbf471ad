package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/drym-backup/drym/internal/restore"
	"github.com/drym-backup/drym/internal/units"
)

type restoreCmd struct {
	backupChoice
	To             string   `arg:"--to,required" help:"directory to restore into (created if missing); nothing is written outside it, and nothing at all until the whole backup is verified" placeholder:"DIR"`
	Overwrite      bool     `arg:"--overwrite" help:"replace existing files and give existing directories the archived owner, mode and ACLs (directories are merged, never replaced)"`
	KeepUnverified bool     `arg:"--keep-unverified" help:"when the backup fails verification, keep what was unpacked in DIR/UNVERIFIED-<time>-<hex> (mode 0700) instead of removing it"`
	Paths          []string `arg:"positional" help:"paths to restore, as on the host (/srv/www) or as archived (srv/www); all when none. backup_runner files lists them"`
}

func (c *restoreCmd) run(ctx context.Context, a *app) int {
	ob, code := c.openChosen(ctx, a, "restore", c.Paths)
	if ob == nil {
		return code
	}
	defer ob.body.Close()

	prog := newProgress(a, "restore")
	s := restore.Open(ctx, ob.body, ob.keys, prog.Output)
	st, xerr := restore.Extract(ctx, s, c.To, restore.Options{
		Paths: c.Paths, Overwrite: c.Overwrite, Owners: os.Geteuid() == 0, OnFile: prog.File,
	})
	res, err := s.Finish(xerr, ob.want...)
	prog.Close()
	if st == nil {
		return a.fail(exitFailure, "restore of %s failed: %s; nothing was restored", ob.name, oneLine(interrupted(ctx, err).Error()))
	}
	if why := unproven(ctx, st.Report, err, ob.name); why != "" {
		return c.discard(a, st, ob.name, why)
	}
	if !st.Report.Verified {
		fmt.Fprintf(a.stderr, "backup_runner: WARNING: unverified: %s has no drym manifest (%s), so the restored files could not be checked\n", ob.name, ".drym/manifest.json")
	}
	if !res.SHA256Checked {
		a.log.Warn("no recorded SHA-256 for the object (no sidecar, not in backup.json); the OpenPGP integrity check passed", "object", ob.name)
	}
	return c.commit(ctx, a, st, ob.name)
}

// unproven says why the backup is not proven ("" when it is): proven means
// the OpenPGP integrity check and the object's SHA-256 passed (err is
// Finish's), every member matched the manifest, and every path asked for
// was there. Only then is anything moved into place.
func unproven(ctx context.Context, rep restore.ExtractReport, err error, name string) string {
	switch {
	case err != nil:
		return oneLine(interrupted(ctx, err).Error())
	case rep.Mismatches.Count > 0:
		return fmt.Sprintf("%d mismatches with the manifest, first: %s", rep.Mismatches.Count, rep.Mismatches.List[0])
	case len(rep.NotFound) > 0:
		return fmt.Sprintf("%s is not in the backup (paths are as on the host, /srv/www, or as archived, srv/www; backup_runner files --backup %s lists them)", strings.Join(rep.NotFound, ", "), name)
	}
	return ""
}

// discard throws away (or, with --keep-unverified, keeps and labels) what
// was unpacked of a backup that is not proven, and fails.
func (c *restoreCmd) discard(a *app, st *restore.Staged, name, why string) int {
	rep := st.Report
	for _, m := range rep.Mismatches.List {
		fmt.Fprintf(a.stderr, "backup_runner: MISMATCH: %s\n", m)
	}
	if n := rep.Mismatches.Count - len(rep.Mismatches.List); n > 0 {
		fmt.Fprintf(a.stderr, "backup_runner: … and %d more mismatches\n", n)
	}
	where := fmt.Sprintf("nothing was written to %s", c.To)
	if c.KeepUnverified {
		if kept, kerr := st.Keep(name[:min(16, len(name))]); kerr == nil {
			where = fmt.Sprintf("what was unpacked is kept, UNVERIFIED (do not trust it), in %s", kept)
		} else {
			where = fmt.Sprintf("the unverified files could not be kept (%v)", kerr)
			st.Discard()
		}
	} else if derr := st.Discard(); derr != nil {
		where = fmt.Sprintf("nothing was moved into %s, but its staging directory %s could not be removed: %v", c.To, st.StagingPath(), derr)
	}
	return a.fail(exitFailure, "restore of %s failed: %s; %s", name, why, where)
}

// commit moves a proven backup into place and reports what came back and
// what did not.
func (c *restoreCmd) commit(ctx context.Context, a *app, st *restore.Staged, name string) int {
	rep := st.Report
	cr := st.Commit(ctx)
	refused := rep.Refused.Count + cr.Refused.Count
	list := func(label string, p restore.Problems) {
		for _, r := range p.List {
			fmt.Fprintf(a.stderr, "backup_runner: %s: %s\n", label, r)
		}
		if n := p.Count - len(p.List); n > 0 {
			fmt.Fprintf(a.stderr, "backup_runner: … and %d more %s\n", n, label)
		}
	}
	list("not restored", rep.Refused)
	list("not restored", cr.Refused)
	list("attribute not restored", cr.Attrs)
	if cr.Unprivileged > 0 {
		fmt.Fprintf(a.stderr, "backup_runner: not run as root: owners and %d privileged attributes (file capabilities, trusted.*, security.*) were not restored\n", cr.Unprivileged)
	}
	if cr.Copied > 0 {
		fmt.Fprintf(a.stderr, "backup_runner: %d entries were copied, not moved: their place is on another file system than %s\n", cr.Copied, c.To)
	}
	verdict := "verified against the manifest"
	if !rep.Verified {
		verdict = "UNVERIFIED"
	}
	if cr.Interrupted {
		return a.fail(exitFailure, "restore of %s interrupted (SIGINT/SIGTERM) while moving into %s: %d files, %d directories are in place, complete; the rest was not restored",
			name, c.To, cr.Files, cr.Dirs)
	}
	a.printf("restored %s into %s: %d files (%s), %d directories, %d symlinks, %d hard links; %s; %d not restored, %d attributes not restored\n",
		name, c.To, cr.Files, units.Bytes(cr.Bytes), cr.Dirs, cr.Symlinks, cr.Hardlinks, verdict, refused, cr.Attrs.Count)
	if refused > 0 || cr.Attrs.Count > 0 {
		return exitFailure
	}
	return exitOK
}
