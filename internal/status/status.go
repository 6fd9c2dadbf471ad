// Package status reads and writes drym's status files: the contract between
// backup_runner, which writes one file per job, and the Nagios checks, which
// only read them.
//
// Every file is JSON with a schema version, written atomically (temp file in
// the same directory, fsync, rename, fsync of the directory) so a reader never
// sees half a file, and a crash or a full disk leaves the previous file intact.
package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/drym-backup/drym/internal/safefile"
)

// Schema is the version of the status file format this build writes and
// understands. Readers refuse other versions rather than guess.
const Schema = 1

// File names inside the state directory.
const (
	BackupFile      = "backup.json"
	TestRestoreFile = "test-restore.json"
	EscrowFile      = "escrow.json"
	LockFile        = "drym.lock"
)

// MaxFileSize bounds how much of a status file is read: real files are a few
// KiB, so anything larger is damage or an attack, not data.
const MaxFileSize = 1 << 20

// HistoryLen is how many past runs a status file carries.
const HistoryLen = 10

// MaxListed bounds lists of warnings and mismatches kept in a status file.
const MaxListed = 20

// State of a job.
type State string

// The states a job can be in.
const (
	Running State = "running"
	OK      State = "ok"
	Failed  State = "failed"
)

// Job names, recorded in every file so a file copied to the wrong name is
// caught.
const (
	JobBackup      = "backup"
	JobTestRestore = "test-restore"
	JobEscrow      = "escrow"
)

// Common holds the fields every status file has.
type Common struct {
	Schema   int       `json:"schema"`
	Job      string    `json:"job"`
	Host     string    `json:"host"`
	Version  string    `json:"version"`
	PID      int       `json:"pid"`
	State    State     `json:"state"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

// Base returns the common part of a status file (every status type embeds
// Common, so each has Base): what the runner's job lifecycle needs of any.
func (c *Common) Base() *Common { return c }

// Duration is how long the run took (zero while running).
func (c Common) Duration() time.Duration {
	if c.Finished.IsZero() {
		return 0
	}
	return c.Finished.Sub(c.Started)
}

// BackupRun is the outcome of one backup, as kept in the history and as the
// last success.
type BackupRun struct {
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	State       State     `json:"state"`
	Object      string    `json:"object,omitempty"`
	BytesIn     int64     `json:"bytes_in"`
	BytesOut    int64     `json:"bytes_out"`
	Files       int64     `json:"files"`
	Warnings    int64     `json:"warnings"`
	SHA256      string    `json:"sha256,omitempty"`
	Fingerprint string    `json:"key_fingerprint,omitempty"`
	// KeyIDs are the 16 upper-hex key IDs of every public-key encrypted
	// session key packet the backup wrote (the keys that can decrypt it).
	KeyIDs []string `json:"key_ids,omitempty"`
	// Signature is the name of the statement's signature object
	// (<object>.sig), empty when the object is unsigned.
	Signature string `json:"signature,omitempty"`
}

// Backup is backup.json.
type Backup struct {
	Common
	Destination string `json:"destination"`
	// Object is the name of the uploaded object relative to the destination
	// (<host>/<time>-<hex>.tar.zst.gpg).
	Object      string   `json:"object,omitempty"`
	BytesIn     int64    `json:"bytes_in"`
	BytesOut    int64    `json:"bytes_out"`
	Files       int64    `json:"files"`
	Dirs        int64    `json:"dirs"`
	Symlinks    int64    `json:"symlinks"`
	Warnings    int64    `json:"warnings"`
	WarningList []string `json:"warning_list,omitempty"`
	// Skipped counts the sockets, FIFOs and device nodes not archived;
	// SkippedList names the first of them ("path: socket").
	Skipped     int64    `json:"skipped"`
	SkippedList []string `json:"skipped_list,omitempty"`
	SHA256      string   `json:"sha256,omitempty"`
	Fingerprint string   `json:"key_fingerprint,omitempty"`
	Recipients  []string `json:"recipients,omitempty"`
	KeyIDs      []string `json:"key_ids,omitempty"`
	Signature   string   `json:"signature,omitempty"`
	// LastSuccess is the most recent run that ended ok, carried forward so a
	// check can judge a running or failed backup by the last good one.
	LastSuccess *BackupRun  `json:"last_success,omitempty"`
	History     []BackupRun `json:"history,omitempty"`
	// AppendOnly is what the last probes found about the destination's
	// append-only promise (appendonly.go); nil for a dir:// destination.
	AppendOnly *AppendOnly `json:"append_only,omitempty"`
}

// Run returns the summary of this run for the history.
func (b *Backup) Run() BackupRun {
	return BackupRun{
		Started: b.Started, Finished: b.Finished, State: b.State, Object: b.Object,
		BytesIn: b.BytesIn, BytesOut: b.BytesOut, Files: b.Files, Warnings: b.Warnings,
		SHA256: b.SHA256, Fingerprint: b.Fingerprint, KeyIDs: b.KeyIDs, Signature: b.Signature,
	}
}

// TestRestore is test-restore.json.
type TestRestore struct {
	Common
	Destination string `json:"destination"`
	// Backup is the object that was tested, and BackupTime when it was made.
	Backup        string    `json:"backup,omitempty"`
	BackupTime    time.Time `json:"backup_time,omitzero"`
	Files         int64     `json:"files"`
	Bytes         int64     `json:"bytes"`
	ObjectBytes   int64     `json:"object_bytes"`
	ObjectSHA256  string    `json:"object_sha256,omitempty"`
	SHA256Checked bool      `json:"sha256_checked"`
	// Fingerprint is the primary fingerprint of the key that decrypted
	// the object (a retired key for a backup made before a rotation).
	Fingerprint string `json:"key_fingerprint,omitempty"`
	// KeyIDs are the key IDs of the object's session key packets, as
	// parsed from the object itself.
	KeyIDs []string `json:"key_ids,omitempty"`
	// SignedBy is the fingerprint of the key whose signature over the
	// backup's statement verified; empty when Unsigned.
	SignedBy string `json:"signed_by,omitempty"`
	// Unsigned is true when an object without a signature (made before
	// drym signed its backups) was tested because --allow-unsigned asked.
	Unsigned bool `json:"unsigned"`
	// FutureCount counts the backup objects dated more than ClockSkew
	// after the run started; FutureObjects names them (newest first, at
	// most MaxListed). "latest" never chooses one of them.
	FutureCount   int      `json:"future_count"`
	FutureObjects []string `json:"future_objects,omitempty"`
	Mismatches    []string `json:"mismatches,omitempty"`
	// Verified is false when the archive had no manifest to verify against.
	Verified bool `json:"verified"`
	// LastSuccess is when a test restore last ended ok.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Escrow is escrow.json.
type Escrow struct {
	Common
	Zip         string `json:"zip,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	Fingerprint string `json:"key_fingerprint,omitempty"`
	Destination string `json:"destination,omitempty"`
	// AlreadyShipped is true when a byte-identical zip was already there.
	AlreadyShipped bool `json:"already_shipped,omitempty"`
}

// NewCommon starts the common part of a status for a job.
func NewCommon(job, host, version string, now time.Time) Common {
	return Common{
		Schema: Schema, Job: job, Host: host, Version: version,
		PID: os.Getpid(), State: Running, Started: now.UTC(),
	}
}

// Errors a reader distinguishes. Checks map ErrNotExist to "not set up"
// (CRITICAL) and the rest to UNKNOWN.
var (
	ErrNotExist      = errors.New("status file does not exist")
	ErrUnknownSchema = errors.New("unknown status schema")
	ErrCorrupt       = errors.New("status file is corrupt")
)

// Read parses the status file at path into v (a *Backup, *TestRestore or
// *Escrow) and validates it: known schema, the expected job, a known state,
// UTC timestamps in order. It does not compare times with the clock; that is
// the reader's policy (see CheckClock).
func Read(path string, v any) error {
	f, err := safefile.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, ErrNotExist)
		}
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := Parse(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Parse is Read without the file: it decodes and validates data into v.
func Parse(data []byte, v any) error {
	if len(data) > MaxFileSize {
		return fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, MaxFileSize)
	}
	var probe struct {
		Schema *int   `json:"schema"`
		Job    string `json:"job"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if probe.Schema == nil {
		return fmt.Errorf("%w: no schema field", ErrCorrupt)
	}
	if *probe.Schema != Schema {
		return fmt.Errorf("%w %d (this drym reads schema %d; upgrade drym on this host)", ErrUnknownSchema, *probe.Schema, Schema)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	c, want := common(v)
	if c == nil {
		return fmt.Errorf("status.Parse: unsupported type %T", v)
	}
	if c.Job != want {
		return fmt.Errorf("%w: job is %q, want %q", ErrCorrupt, c.Job, want)
	}
	switch c.State {
	case Running, OK, Failed:
	default:
		return fmt.Errorf("%w: unknown state %q", ErrCorrupt, c.State)
	}
	if c.Started.IsZero() {
		return fmt.Errorf("%w: no start time", ErrCorrupt)
	}
	if c.State != Running && c.Finished.IsZero() {
		return fmt.Errorf("%w: state %s without a finish time", ErrCorrupt, c.State)
	}
	if !c.Finished.IsZero() && c.Finished.Before(c.Started) {
		return fmt.Errorf("%w: finished before it started", ErrCorrupt)
	}
	if c.State == Failed && c.Error == "" {
		return fmt.Errorf("%w: failed without an error", ErrCorrupt)
	}
	return nil
}

func common(v any) (*Common, string) {
	switch s := v.(type) {
	case *Backup:
		return &s.Common, JobBackup
	case *TestRestore:
		return &s.Common, JobTestRestore
	case *Escrow:
		return &s.Common, JobEscrow
	}
	return nil, ""
}

// ClockSkew is how far in the future a timestamp may be before a reader
// distrusts the file (NTP steps and a check on another core are not news).
const ClockSkew = 5 * time.Minute

// ErrFuture means a status file holds a timestamp in the future: the clock was
// wrong when it was written, or is wrong now.
var ErrFuture = errors.New("timestamp in the future")

// CheckClock reports ErrFuture when any timestamp of c lies more than
// ClockSkew after now.
func CheckClock(c Common, now time.Time) error {
	for _, t := range []time.Time{c.Started, c.Finished} {
		if !t.IsZero() && t.Sub(now) > ClockSkew {
			return fmt.Errorf("%w: %s is %s ahead of this host's clock (check NTP)",
				ErrFuture, t.UTC().Format(time.RFC3339), t.Sub(now).Round(time.Second))
		}
	}
	return nil
}

// Write stores v as JSON at path atomically: a temp file in the same
// directory, fsync, rename over the old file, fsync of the directory. On any
// error the previous file is untouched and the temp file removed.
func Write(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	return WriteFileAtomic(path, data, 0o644)
}

// WriteFileAtomic writes data to path so that readers see either the old or
// the new content, never a mix or a truncated file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return safefile.SyncDir(dir)
}

// AddHistory prepends run to history, keeping at most HistoryLen entries.
func AddHistory(history []BackupRun, run BackupRun) []BackupRun {
	out := append([]BackupRun{run}, history...)
	if len(out) > HistoryLen {
		out = out[:HistoryLen]
	}
	return out
}
