package status

import "time"

// AppendOnly is what a backup run's probes found about the destination's
// append-only promise: the host's credentials can add objects but can
// neither delete nor replace them (backup.json "append_only"). It is absent
// for a dir:// destination, which cannot make that promise, and in files of
// runners that did not probe.
//
// The probes are cheap and leave nothing behind but one small fixed object:
// a conditional PUT of that object (twice when the first creates it), a
// DELETE of a random name that does not exist (plain and with
// versionId=null), and the bucket's versioning and Object Lock settings.
type AppendOnly struct {
	// Checked is when the probes ran. A run that could not probe (a failed
	// backup) carries the last result forward, so this may be older than
	// the run.
	Checked time.Time `json:"checked"`
	// Delete is "denied" or "allowed" (a DELETE with the backup
	// credentials), or "unknown".
	Delete string `json:"delete"`
	// DeleteVersion is the same for a DELETE of a version (versionId=null):
	// what removes an object for good, even from a versioned bucket.
	DeleteVersion string `json:"delete_version"`
	// Overwrite is "refused" (the server answered a repeated PUT with
	// If-None-Match: * by 412), "ignored" (it replaced the object), or
	// "unknown".
	Overwrite string `json:"overwrite"`
	// Versioning is "enabled", "suspended", "off", or "unknown" (not
	// readable with the backup credentials).
	Versioning string `json:"versioning"`
	// ObjectLock is "enabled" (with a default retention, so every new
	// object is locked), "off", or "unknown".
	ObjectLock string `json:"object_lock"`
	// Held is the verdict when the probes ran (see Holds): neither a delete
	// nor an overwrite can destroy a backup.
	Held bool `json:"held"`
	// Error says, in one line, why a probe gave "unknown".
	Error string `json:"error,omitempty"`
}

// Probe outcomes recorded in AppendOnly.
const (
	ProbeDenied    = "denied"
	ProbeAllowed   = "allowed"
	ProbeRefused   = "refused"
	ProbeIgnored   = "ignored"
	ProbeEnabled   = "enabled"
	ProbeSuspended = "suspended"
	ProbeOff       = "off"
	ProbeUnknown   = "unknown"
)

// Locked reports whether Object Lock keeps every new object for its
// retention period, whatever the credentials may do.
func (a *AppendOnly) Locked() bool { return a.ObjectLock == ProbeEnabled }

// VersionsKept reports whether a replaced or deleted object keeps its old
// bytes as an older version that these credentials cannot delete.
func (a *AppendOnly) VersionsKept() bool {
	return a.Locked() || a.Versioning == ProbeEnabled && a.DeleteVersion == ProbeDenied
}

// CanDelete reports whether the probes showed that the credentials can
// destroy a backup: delete a version for good, or delete an object whose
// old bytes nothing keeps.
func (a *AppendOnly) CanDelete() bool {
	if a.Locked() {
		return false
	}
	return a.DeleteVersion == ProbeAllowed || a.Delete == ProbeAllowed && !a.VersionsKept()
}

// CanOverwrite reports whether the probes showed that the server replaces
// an existing object although drym asked it not to, and nothing keeps the
// old bytes.
func (a *AppendOnly) CanOverwrite() bool {
	return a.Overwrite == ProbeIgnored && !a.VersionsKept()
}

// Holds reports whether the probes prove the promise: a backup can be
// neither deleted nor replaced with these credentials. An unknown probe
// proves nothing, so it does not hold.
func (a *AppendOnly) Holds() bool {
	if a.Locked() {
		return true
	}
	deleteSafe := a.DeleteVersion == ProbeDenied && (a.Delete == ProbeDenied || a.VersionsKept())
	overwriteSafe := a.Overwrite == ProbeRefused || a.VersionsKept()
	return deleteSafe && overwriteSafe
}
