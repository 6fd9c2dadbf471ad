package main

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/drym-backup/drym/internal/archive"
	"github.com/drym-backup/drym/internal/restore"
	"github.com/drym-backup/drym/internal/status"
)

// filesCmd lists what a backup holds. It reads and verifies the whole
// object first, as test-restore does (without writing test-restore.json):
// a listing of a damaged backup would promise files a restore cannot give.
type filesCmd struct {
	backupChoice
	Long  bool     `arg:"-l,--long" help:"also type and mode, size and mtime (UTC), and link targets"`
	Paths []string `arg:"positional" help:"list only these paths and what is below them (as on the host, /srv/www, or as archived, srv/www)"`
}

func (c *filesCmd) run(ctx context.Context, a *app) int {
	ob, code := c.openChosen(ctx, a, "files", c.Paths)
	if ob == nil {
		return code
	}
	defer ob.body.Close()
	prog := newProgress(a, "files")
	s := restore.Open(ctx, ob.body, ob.keys, prog.Output)
	l, lerr := restore.List(ctx, s, prog.File)
	res, err := s.Finish(lerr, ob.want...)
	prog.Close()
	switch {
	case err != nil:
		return a.fail(exitFailure, "files: %s: %s; nothing listed", ob.name, oneLine(interrupted(ctx, err).Error()))
	case l.Problems.Count > 0:
		for _, m := range l.Problems.List {
			fmt.Fprintf(a.stderr, "  mismatch: %s\n", m)
		}
		return a.fail(exitFailure, "files: %s: %d mismatches with the manifest, first: %s; nothing listed", ob.name, l.Problems.Count, l.Problems.List[0])
	}
	verdict := "verified against its manifest"
	if !l.Verified {
		verdict = "UNVERIFIED: it has no drym manifest, so only its OpenPGP integrity check vouches for it"
	}
	sha := "object sha256 checked"
	if !res.SHA256Checked {
		sha = "object sha256 not recorded (no sidecar, not in backup.json)"
	}

	var keep []string
	for _, p := range c.Paths {
		keep = append(keep, restore.ArchivedPath(p))
	}
	found := map[string]bool{}
	n := 0
	l.Each(func(name string, it restore.Item) bool {
		if len(keep) > 0 {
			match := false
			for _, k := range keep {
				if k == "" || name == k || strings.HasPrefix(name, k+"/") {
					match, found[k] = true, true
				}
			}
			if !match {
				return true
			}
		}
		n++
		if c.Long {
			link := ""
			switch it.Type {
			case archive.TypeSymlink:
				link = " -> " + quotePath(it.Link)
			case archive.TypeHardlink:
				link = " link to " + quotePath("/"+it.Link)
			}
			a.printf("%s %12d %s %s%s\n", modeString(it), it.Size, mtimeText(it.MTime), quotePath("/"+name), link)
		} else {
			a.printf("%s\n", quotePath("/"+name))
		}
		return true
	})
	missing := 0
	for i, k := range keep {
		if !found[k] {
			missing++
			fmt.Fprintf(a.stderr, "backup_runner: %s: not in backup %s\n", c.Paths[i], ob.name)
		}
	}
	if !l.Verified {
		fmt.Fprintf(a.stderr, "backup_runner: WARNING: %s is %s\n", ob.name, verdict)
	} else if !a.quiet {
		fmt.Fprintf(a.stderr, "backup_runner: %d paths of %s, %s, %s\n", n, ob.name, verdict, sha)
	}
	if missing > 0 {
		return exitFailure
	}
	return exitOK
}

// quotePath shows a name as it is when it prints safely, else Go-quoted
// (\xe9 for a byte that is not UTF-8, \n for a newline), so that one line is
// one path and nothing is lost; bash's $'…' takes the quoted form back.
func quotePath(p string) string {
	if utf8.ValidString(p) && strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return p
	}
	q := strconv.Quote(p)
	return "$'" + strings.ReplaceAll(q[1:len(q)-1], "'", `\'`) + "'"
}

func modeString(it restore.Item) string {
	m := fs.FileMode(it.Mode & 0o777)
	if it.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if it.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if it.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch it.Type {
	case archive.TypeDir:
		m |= fs.ModeDir
	case archive.TypeSymlink:
		m |= fs.ModeSymlink
	case archive.TypeHardlink:
		return "h" + m.String()[1:]
	}
	return m.String()
}

func mtimeText(sec int64) string { return time.Unix(sec, 0).UTC().Format(time.RFC3339) }

// printSkipped lists, after a backup, the sockets, FIFOs and device nodes
// it did not archive: they hold no data, but their absence after a restore
// should surprise nobody.
func printSkipped(a *app, st *status.Backup) {
	if st.Skipped == 0 {
		return
	}
	a.printf("  %d skipped: sockets, FIFOs and device nodes are not archived (they hold no data)\n", st.Skipped)
	for _, s := range st.SkippedList {
		a.printf("  skipped: %s\n", s)
	}
	if n := st.Skipped - int64(len(st.SkippedList)); n > 0 {
		a.printf("  … and %d more\n", n)
	}
}
