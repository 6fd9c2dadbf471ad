package main

import (
	"fmt"
	"time"

	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/status"
)

// checkAppendOnly judges what the last backup's probes found about the
// destination's append-only promise (backup.json "append_only"): the host's
// credentials may add backups but neither delete nor replace them. A file
// without the record (a dir:// destination, an older runner) says nothing
// either way, so neither does the check.
//
//   - CRITICAL: the credentials can destroy a backup (delete it, or delete a
//     version for good) and nothing keeps the old bytes;
//   - WARNING: the server ignores If-None-Match and neither versioning nor
//     Object Lock keeps the bytes it replaces;
//   - WARNING: a probe could not tell. Not OK, since the promise is unproven;
//     not UNKNOWN, since the backup itself is known to be fine and UNKNOWN
//     would hide its age behind a probe's hiccup.
func checkAppendOnly(r *plugin.Result, b *status.Backup) {
	a := b.AppendOnly
	if a == nil {
		return
	}
	const fix = "then run backup_runner doctor"
	when := a.Checked.UTC().Format(time.RFC3339)
	switch {
	case a.CanDelete():
		how := "may delete objects and nothing keeps old versions"
		if a.DeleteVersion == status.ProbeAllowed {
			how = "may delete object versions for good"
		}
		r.Raise(plugin.Critical, fmt.Sprintf("this host can delete its backups in %s: its credentials %s (probed %s); deny s3:DeleteObject and s3:DeleteObjectVersion to them (plugins.d/s3/backup-put-only-policy.json), %s",
			b.Destination, how, when, fix))
	case a.CanOverwrite():
		r.Raise(plugin.Warning, fmt.Sprintf("%s ignores If-None-Match and neither versioning nor Object Lock protects the bucket: a compromised host can overwrite the backups it knows the names of (probed %s); enable bucket versioning or Object Lock, %s",
			b.Destination, when, fix))
	case !a.Holds():
		why := "a probe could not tell"
		if a.Error != "" {
			why += ": " + a.Error
		}
		r.Raise(plugin.Warning, fmt.Sprintf("cannot confirm that %s is append-only for this host (%s; probed %s): run backup_runner doctor", b.Destination, why, when))
	}
	verdict := "holds"
	switch {
	case !a.Holds():
		verdict = "does not hold"
	case a.Locked():
		verdict = "holds for the Object Lock retention"
	}
	r.Addf("append-only: %s (probed %s: delete %s, version delete %s, overwrite %s, versioning %s, object lock %s)",
		verdict, when, a.Delete, a.DeleteVersion, a.Overwrite, a.Versioning, a.ObjectLock)
	if a.Delete == status.ProbeAllowed && a.VersionsKept() {
		r.Addf("append-only: the credentials may delete, but a delete only hides a backup behind a delete marker: old versions are kept")
	}
}
