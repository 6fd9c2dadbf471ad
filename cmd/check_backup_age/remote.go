package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	backupname "github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

// remoteFacts is what the destination says about the recorded object.
type remoteFacts struct {
	Where  string // store URL, for messages
	Object string // "<host>/<name>", for messages
	// NoObject: the status file records a success without an object.
	NoObject bool
	Err      error // cannot use the store, or Stat of the object failed
	Size     int64
	ModTime  time.Time // the server's LastModified (a file's mtime)
	// Statement is the object's signed statement and its signature,
	// checked against the host's public keys.
	Statement evidence.Statement
	// Verify is set with --remote-verify: the whole object read and hashed.
	Verify *verifyFacts
}

type verifyFacts struct {
	Err    error
	Bytes  int64
	SHA256 string
}

// errNoSettings is reported for --remote with --state-dir but no settings
// file: the destination and its read credentials live there.
var errNoSettings = errors.New("--remote needs the settings file for the destination and read_profile: pass --config or set DRYM_CONFIG")

// gatherRemote asks the destination about the recorded object: a HEAD, the
// statement and its signature (two small GETs) however many backups are
// stored; with --remote-verify also the whole object.
func gatherRemote(ctx context.Context, cfg *config.Config, run *status.BackupRun, verify bool) *remoteFacts {
	if cfg == nil {
		return &remoteFacts{Err: errNoSettings}
	}
	rf := &remoteFacts{Where: cfg.Destination.URL}
	if run.Object == "" {
		rf.NoObject = true
		return rf
	}
	// The runner records the bare object name; the store is scoped to the
	// host. A "<host>/<name>" form is accepted too.
	sub, name := path.Split(run.Object)
	sub = strings.Trim(sub, "/")
	if sub == "" {
		sub = cfg.Host
	}
	// Messages name the destination as configured and the object as
	// "<host>/<name>" within it, as backup_runner prints them.
	rf.Object = sub + "/" + name
	plugin.Doing(ctx, "opening destination %s", cfg.Destination.URL)
	st, err := store.Open(ctx, cfg.Destination, sub, store.Read)
	if err != nil {
		rf.Err = err
		return rf
	}
	plugin.Doing(ctx, "asking %s for %s", st, name)
	info, err := st.Stat(ctx, name)
	if err != nil {
		rf.Err = err
		return rf
	}
	rf.Size, rf.ModTime = info.Size, info.ModTime
	keys, kerr := evidence.HostKeys(cfg.KeyFile)
	from := "host key " + cfg.PublicKeyFile()
	rf.Statement = evidence.ReadStatement(ctx, st, sub, name, info.Size, keys, from, false)
	if kerr != nil && rf.Statement.Err == nil && rf.Statement.ParseErr == nil && rf.Statement.SigErr == nil {
		rf.Statement.VerifyErr = fmt.Errorf("%w: %v", evidence.ErrNoKeys, kerr)
		rf.Statement.KeysFrom = from
	}
	if verify {
		rf.Verify = hashObject(ctx, st, name)
	}
	return rf
}

// hashObject reads the whole object through SHA-256.
func hashObject(ctx context.Context, st store.Store, name string) *verifyFacts {
	plugin.Doing(ctx, "reading all of %s from %s (--remote-verify)", name, st)
	rc, err := st.Open(ctx, name)
	if err != nil {
		return &verifyFacts{Err: err}
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return &verifyFacts{Err: err, Bytes: n}
	}
	return &verifyFacts{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}
}

// remoteError is how a failure to reach the recorded object reads: the
// object missing is CRITICAL, anything that stops the check from looking
// is UNKNOWN with the fix for its cause. ok is false when err is nil.
func remoteError(rf *remoteFacts) (s plugin.State, msg string, ok bool) {
	switch err := rf.Err; {
	case err == nil:
		return plugin.OK, "", false
	case errors.Is(err, store.ErrNotFound):
		return plugin.Critical, fmt.Sprintf("the last backup %s is missing from %s (deleted, or expired by a lifecycle rule?): run backup_runner backup and check the bucket",
			rf.Object, rf.Where), true
	case errors.Is(err, errNoSettings):
		return plugin.Unknown, err.Error(), true
	case errors.Is(err, fs.ErrPermission):
		return plugin.Unknown, fmt.Sprintf("cannot check the destination: %v (the check runs as user nagios: make the destination readable by group nagios, or drop --remote)", err), true
	case strings.HasPrefix(rf.Where, "s3://"):
		return plugin.Unknown, fmt.Sprintf("cannot check the destination: %v (check read_profile and its credentials in the settings; backup_runner list uses the same)", err), true
	}
	return plugin.Unknown, fmt.Sprintf("cannot check the destination: %v (is it mounted? backup_runner list reads it the same way)", rf.Err), true
}

// checkRemote compares what the destination holds with what was recorded:
// the object's existence, size and time, its signed statement and, with
// --remote-verify, its SHA-256. It notes exactly what was proven.
func checkRemote(r *plugin.Result, rf *remoteFacts, run *status.BackupRun) (proven string) {
	if rf.NoObject {
		r.Raise(plugin.Critical, "backup.json records a successful backup without an object name: the success cannot be confirmed in the destination: run backup_runner backup and check backup_runner status")
		return ""
	}
	if s, msg, bad := remoteError(rf); bad {
		r.Raise(s, msg)
		return ""
	}
	if rf.Size != run.BytesOut {
		r.Raise(plugin.Critical, fmt.Sprintf("the last backup %s in %s is %d bytes, the runner recorded %d: it is damaged; run backup_runner backup",
			rf.Object, rf.Where, rf.Size, run.BytesOut))
		return ""
	}
	if !sameRun(r, rf, run) {
		return ""
	}
	r.Addf("destination: %s holds %s: %d bytes as recorded, stored %s, within the recorded run", rf.Where, rf.Object, rf.Size, plugin.Stamp(rf.ModTime))
	proven = "size, time"
	missing := plugin.Critical
	if run.Signature == "" {
		missing = plugin.Warning // a legacy run: its sidecar was never signed
	}
	if !evidence.JudgeStatement(r, rf.Statement, evidence.StatementWording{
		Name: rf.Object, Where: rf.Where, Fix: "run backup_runner backup",
		Unsigned: plugin.Warning, MissingState: missing,
	}) {
		return proven
	}
	st := rf.Statement.Parsed
	if run.SHA256 != "" && st.SHA256 != strings.ToLower(run.SHA256) {
		r.Raise(plugin.Critical, fmt.Sprintf("the statement %s.sha256 in %s says sha256 %.16s…, the runner recorded %.16s…: the object is not the one uploaded; run backup_runner backup and find out who wrote it",
			rf.Object, rf.Where, st.SHA256, run.SHA256))
		return proven
	}
	switch {
	case rf.Statement.Signed():
		proven += ", signed statement"
	case rf.Statement.Parsed.Legacy:
		proven += ", unsigned sidecar"
	default:
		proven += ", statement (signature not checked)"
	}
	if rf.Verify == nil {
		r.Addf("object content not read: its sha256 is the statement's word (--remote-verify reads and hashes it)")
		return proven
	}
	return verified(r, rf, st.SHA256, proven)
}

// sameRun raises an object whose time (in its name, and the server's)
// does not fall within the recorded run: the status file and the
// destination disagree about what was backed up.
func sameRun(r *plugin.Result, rf *remoteFacts, run *status.BackupRun) bool {
	name := path.Base(rf.Object)
	made, err := backupname.ParseName(name)
	if err != nil {
		r.Raise(plugin.Critical, fmt.Sprintf("the recorded object %s is not a drym backup name: backup.json was altered or written by something else: run backup_runner backup", rf.Object))
		return false
	}
	from, to := run.Started.Truncate(time.Second).Add(-status.ClockSkew), run.Finished.Add(status.ClockSkew)
	var what string
	switch {
	case made.Before(from) || made.After(to):
		what = fmt.Sprintf("its name says it was made %s", plugin.Stamp(made))
	case !rf.ModTime.IsZero() && (rf.ModTime.Before(from) || rf.ModTime.After(to)):
		what = fmt.Sprintf("%s stored it %s", rf.Where, plugin.Stamp(rf.ModTime))
	default:
		return true
	}
	r.Raise(plugin.Critical, fmt.Sprintf("the object %s is not the recorded backup: %s, but the run recorded started %s and finished %s: run backup_runner backup and find out who wrote it",
		rf.Object, what, plugin.Stamp(run.Started), plugin.Stamp(run.Finished)))
	return false
}

// verified judges --remote-verify: the object read in full and hashed.
func verified(r *plugin.Result, rf *remoteFacts, want, proven string) string {
	v := rf.Verify
	switch {
	case v.Err != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("--remote-verify: reading %s failed after %s: %v (check the destination, or raise -t for a large backup)",
			rf.Object, units.Bytes(v.Bytes), v.Err))
		return proven
	case v.Bytes != rf.Size || v.SHA256 != want:
		r.Raise(plugin.Critical, fmt.Sprintf("--remote-verify: %s in %s hashes to %.16s… over %d bytes, its statement says %.16s…: the object is damaged or replaced: run backup_runner backup and find out who wrote it",
			rf.Object, rf.Where, v.SHA256, v.Bytes, want))
		return proven
	}
	r.Addf("object content: read all %d bytes, sha256 %s as stated", v.Bytes, v.SHA256)
	return proven + ", sha256 of all " + units.Bytes(v.Bytes)
}
