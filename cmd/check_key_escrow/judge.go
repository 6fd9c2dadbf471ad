package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	nagios "github.com/atc0005/go-nagios"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
)

const fixEscrow = "run backup_runner escrow"

// evaluate judges the facts: pure, no I/O, no clock. Each part judges one
// witness (the key files, the status files, the last backup's keys, the
// zip or its record) and raises what it finds; the worst finding wins.
func evaluate(f facts, a args, now time.Time) plugin.Result {
	if r, done := unusable(f); done {
		return r
	}
	var r plugin.Result
	judgeKeyFiles(&r, f)
	judgeStatusFiles(&r, f, now)
	judgeBackupKeys(&r, f)
	if f.TeamErr != nil {
		r.Raise(plugin.Unknown, fmt.Sprintf("[escrow] recipients: %v (fix the key file or the list in %s)", f.TeamErr, f.ConfigPath))
	}
	held := judgeZip(&r, f, a, now)
	if r.State == plugin.OK && held == nil {
		r.Raise(plugin.Unknown, "no escrow zip was examined (a drym bug: run with -v and report it)")
	}
	if r.State == plugin.OK {
		r.Summary = okSummary(f, held, now)
	}
	details(&r, f, a, held, now)
	return r
}

// unusable is the result when the escrow cannot be judged at all: no
// usable settings, no escrow configured, or status files of another host.
func unusable(f facts) (plugin.Result, bool) {
	switch {
	case f.SettingsErr != nil && errors.Is(f.SettingsErr, plugin.ErrNotSetUp):
		return plugin.SettingsResult(f.SettingsErr), true
	case f.SettingsErr != nil:
		return plugin.Result{State: plugin.Unknown, Summary: f.SettingsErr.Error()}, true
	case f.NoEscrow:
		return plugin.Result{State: plugin.Critical, Summary: fmt.Sprintf(
			"no escrow configured: the host key exists only on this host and dies with it: add [escrow] url = \"dir:///…\" or \"s3://…\" to %s, then %s", f.ConfigPath, fixEscrow)}, true
	}
	if b := f.BackupRun; b != nil {
		if res, bad := plugin.HostMismatch(status.BackupFile, b.Host, f.ConfigPath, f.Host); bad {
			return res, true
		}
	}
	if e := f.EscrowRun; e != nil {
		if res, bad := plugin.HostMismatch(status.EscrowFile, e.Host, f.ConfigPath, f.Host); bad {
			return res, true
		}
	}
	return plugin.Result{}, false
}

// judgeKeyFiles raises what the host's own key files say: missing,
// unreadable, too open, owned by the wrong user, or disagreeing.
func judgeKeyFiles(r *plugin.Result, f facts) {
	switch {
	case errors.Is(f.PubErr, fs.ErrNotExist):
		r.Raise(plugin.Critical, fmt.Sprintf("no host key: %s is missing: run backup_runner init", f.PubPath))
	case f.PubErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read the host public key: %v (it must be readable by user nagios: chmod 644 %s)", f.PubErr, f.PubPath))
	}
	switch {
	case errors.Is(f.SecretStatErr, fs.ErrNotExist):
		r.Raise(plugin.Critical, fmt.Sprintf("the secret host key %s is missing (test restores and restores on this host fail): copy host-key.asc from the escrow zip back to it, or run backup_runner init --rotate-key and then backup_runner escrow", f.SecretPath))
		return
	case f.SecretStatErr != nil:
		r.Addf("secret key %s: cannot look at it (%v); not compared", f.SecretPath, f.SecretStatErr)
		return
	}
	if f.SecretMode.Perm()&0o077 != 0 {
		r.Raise(plugin.Warning, fmt.Sprintf("the secret host key %s is mode %04o, readable beyond its owner: chmod 600 %s", f.SecretPath, f.SecretMode.Perm(), f.SecretPath))
	}
	switch {
	case f.OwnerErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("--key-owner %s: %v (give an existing user, e.g. --key-owner root)", f.WantOwner, f.OwnerErr))
	case f.SecretUID != f.WantUID:
		r.Raise(plugin.Warning, fmt.Sprintf("the secret host key %s is owned by uid %d, not %s: chown %s %s", f.SecretPath, f.SecretUID, f.WantOwner, f.WantOwner, f.SecretPath))
	}
	switch {
	case f.SecretReadErr != nil && errors.Is(f.SecretReadErr, fs.ErrPermission):
		r.Addf("secret key %s: not readable by this user (as intended); not compared", f.SecretPath)
	case f.SecretReadErr != nil:
		r.Raise(plugin.Critical, fmt.Sprintf("the secret host key is unusable: %v: restore host-key.asc from the escrow zip, or run backup_runner init --rotate-key and then backup_runner escrow", f.SecretReadErr))
	case f.PubFP != "" && f.SecretFP != f.PubFP:
		r.Raise(plugin.Critical, fmt.Sprintf("host key files disagree: secret key %s is %s, public key %s is %s: backups go to the public key; put the matching pair back (from the escrow zip), or run backup_runner init --rotate-key, then backup_runner escrow",
			f.SecretPath, short(f.SecretFP), f.PubPath, short(f.PubFP)))
	}
}

// judgeStatusFiles raises damaged or future-dated status files: doubt,
// and doubt is never OK; plugin.StatusError words them as the other
// checks do.
func judgeStatusFiles(r *plugin.Result, f facts, now time.Time) {
	raise := func(res plugin.Result) { r.Raise(res.State, res.Summary) }
	if f.EscrowErr != nil {
		raise(plugin.StatusError(f.EscrowErr, "", fixEscrow))
	}
	if f.EscrowRun != nil {
		if err := status.CheckClock(f.EscrowRun.Common, now); err != nil {
			raise(plugin.StatusError(fmt.Errorf("%s: %w", status.EscrowFile, err), "", fixEscrow))
		}
	}
	if f.BackupRun != nil {
		if err := status.CheckClock(f.BackupRun.Common, now); err != nil {
			raise(plugin.StatusError(fmt.Errorf("%s: %w", status.BackupFile, err), "", "run backup_runner backup"))
		}
	}
	if f.BackupErr != nil && !errors.Is(f.BackupErr, status.ErrNotExist) {
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot compare with the last backup's key: %v (check_backup_age reports the same file)", f.BackupErr))
	}
}

// judgeBackupKeys raises a last backup encrypted to another key than the
// host key.
func judgeBackupKeys(r *plugin.Result, f facts) {
	if f.BackupFP != "" && f.PubFP != "" && f.BackupFP != f.PubFP {
		r.Raise(plugin.Critical, fmt.Sprintf("the last backup was encrypted to key %s but the host key is %s: run backup_runner backup, then backup_runner escrow",
			short(f.BackupFP), short(f.PubFP)))
	}
}

// held is what the escrow was found to hold, from the zip itself or, when
// this user may not read it, from its public record.
type held struct {
	Fingerprint string
	EncIDs      []uint64
	// Opened: the zip was read and inspected; else the record speaks.
	Opened          bool
	SecretEncrypted bool
	Expires         time.Time
	Created         time.Time
}

// zipProblem is how a failure to find or read the zip reads: no zip is
// CRITICAL, a location that cannot be read UNKNOWN with the fix for its
// kind (a directory drop is about permissions, S3 about read_profile), a
// damaged zip CRITICAL. ok is false when the zip was found.
func zipProblem(z zipFacts, host, configPath string) (s plugin.State, msg string, bad bool) {
	switch {
	case errors.Is(z.FindErr, store.ErrNotFound) || errors.Is(z.FindErr, fs.ErrNotExist):
		return plugin.Critical, fmt.Sprintf("no escrow zip for %s in %s: the host key exists only on this host: %s", host, z.Where, fixEscrow), true
	case z.FindErr != nil && strings.HasPrefix(z.Where, "s3://"):
		return plugin.Unknown, fmt.Sprintf("cannot read the escrow location: %v (check [escrow] read_profile and its credentials in %s)", z.FindErr, configPath), true
	case z.FindErr != nil && store.IsDenied(z.FindErr):
		return plugin.Unknown, fmt.Sprintf("cannot read the escrow location: %v (the check runs as user nagios: let group nagios list the drop directory; the zips in it stay 0600, their .json records 0644)", z.FindErr), true
	case z.FindErr != nil:
		return plugin.Unknown, fmt.Sprintf("cannot read the escrow location: %v (is it mounted? backup_runner escrow ships there)", z.FindErr), true
	case z.ZipErr != nil:
		why := z.ZipErr.Error()
		var broken *escrow.BrokenError
		if errors.As(z.ZipErr, &broken) {
			why = broken.Reason
		}
		return plugin.Critical, fmt.Sprintf("escrow zip %s in %s is unusable: %s: %s to ship a good one, and find out what damaged it",
			z.ZipName, z.Where, why, fixEscrow), true
	}
	return plugin.OK, "", false
}

// judgeZip judges the newest zip: opened when this user may read it, else
// through its public record. It returns what the escrow holds (nil when
// nothing could be examined).
func judgeZip(r *plugin.Result, f facts, a args, now time.Time) *held {
	if s, msg, bad := zipProblem(f.zipFacts, f.Host, f.ConfigPath); bad {
		r.Raise(s, msg)
		return nil
	}
	var h *held
	switch {
	case f.Zip != nil:
		h = judgeOpened(r, f)
	case f.ZipUnreadable != nil:
		h = judgeRecordOnly(r, f)
	}
	if h == nil {
		return nil
	}
	judgeHeldKeys(r, f, h)
	judgeExpiry(r, h.Expires, a, now)
	age := max(now.Sub(f.ZipTime), 0)
	switch {
	case a.Critical.AlertAge(age):
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s is %s old, %s (-c): %s", f.ZipName, plugin.HumanDuration(age), a.Critical.Describe(), fixEscrow))
	case a.Warning.AlertAge(age):
		r.Raise(plugin.Warning, fmt.Sprintf("escrow zip %s is %s old, %s (-w): %s", f.ZipName, plugin.HumanDuration(age), a.Warning.Describe(), fixEscrow))
	}
	return h
}

// judgeOpened compares an intact zip with the host (and with its record,
// when there is one).
func judgeOpened(r *plugin.Result, f facts) *held {
	z := f.Zip
	if z.Host != f.Host || z.Config.Host != f.Host {
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s is for host %s, not %s: it cannot restore this host: %s", f.ZipName, z.Host, f.Host, fixEscrow))
	}
	if f.ZipKeyErr != nil {
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s: cannot list the escrowed keys: %v: %s", f.ZipName, f.ZipKeyErr, fixEscrow))
	}
	if f.Team != nil && z.SecretEncrypted {
		for _, file := range slices.Sorted(maps.Keys(f.Team)) {
			if !slices.ContainsFunc(f.Team[file], func(id uint64) bool { return slices.Contains(z.SecretRecipients, id) }) {
				r.Raise(plugin.Critical, fmt.Sprintf("the escrowed secret key is not encrypted to team key %s (%s): that team cannot open it: %s",
					short(f.TeamFP[file]), file, fixEscrow))
			}
		}
	}
	if z.SecretEncrypted {
		r.Addf("secret key member: encrypted to key IDs %s", keyIDs(z.SecretRecipients))
	}
	if changed := diffSettings(z.Contents[escrow.MemberConfig], f.Settings); len(changed) > 0 {
		r.Raise(plugin.Warning, fmt.Sprintf("escrow is stale: the escrowed settings differ from %s (%s): %s",
			f.ConfigPath, strings.Join(changed, ", "), fixEscrow))
	}
	if f.Record != nil {
		judgeRecordMatchesZip(r, f)
	}
	return &held{Fingerprint: z.Fingerprint, EncIDs: f.ZipEncIDs, Opened: true, SecretEncrypted: z.SecretEncrypted,
		Expires: z.KeyExpires, Created: z.KeyCreated}
}

// judgeRecordMatchesZip raises a record that does not describe the zip
// beside it: one of them was replaced.
func judgeRecordMatchesZip(r *plugin.Result, f facts) {
	rec, z := f.Record, f.Zip
	var what string
	switch {
	case rec.ZipSHA256 != f.ZipSHA256:
		what = fmt.Sprintf("sha256 %.16s…, the zip has %.16s…", rec.ZipSHA256, f.ZipSHA256)
	case rec.Fingerprint != z.Fingerprint:
		what = fmt.Sprintf("key %s, the zip holds %s", short(rec.Fingerprint), short(z.Fingerprint))
	case !sameIDs(rec.EncryptionKeyIDs, f.ZipEncIDs):
		what = fmt.Sprintf("encryption keys %s, the zip holds %s", strings.Join(rec.EncryptionKeyIDs, ", "), keyIDs(f.ZipEncIDs))
	default:
		return
	}
	r.Raise(plugin.Critical, fmt.Sprintf("the record %s does not describe the zip beside it: it says %s: one of them was replaced: %s and find out who wrote them",
		escrow.RecordName(f.ZipName), what, fixEscrow))
}

// judgeRecordOnly judges a zip this user may not read (a bare secret key in
// a directory drop is 0600) by its public record, its size in the
// location and escrow.json: the host's word that it shipped this zip,
// holding these keys; nothing here opened it.
func judgeRecordOnly(r *plugin.Result, f facts) *held {
	rec := f.Record
	switch {
	case f.RecordErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("escrow zip %s is not readable by this user (%v) and its record %s is unusable: %v: %s, or run this check as root",
			f.ZipName, f.ZipUnreadable, escrow.RecordName(f.ZipName), f.RecordErr, fixEscrow))
		return nil
	case rec == nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("escrow zip %s is not readable by this user (as intended for a bare secret key) and there is no public record %s beside it: %s (a drym that ships the record), or run this check as root",
			f.ZipName, escrow.RecordName(f.ZipName), fixEscrow))
		return nil
	case rec.Host != f.Host:
		r.Raise(plugin.Critical, fmt.Sprintf("the record %s is for host %s, not %s: %s", escrow.RecordName(f.ZipName), rec.Host, f.Host, fixEscrow))
	case rec.ZipSize != f.ZipSize:
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s in %s is %d bytes, its record says %d: it was damaged or replaced: %s and find out what happened",
			f.ZipName, f.Where, f.ZipSize, rec.ZipSize, fixEscrow))
	}
	if e := f.EscrowRun; e != nil && e.State == status.OK && e.Zip == f.ZipName && e.SHA256 != "" && e.SHA256 != rec.ZipSHA256 {
		r.Raise(plugin.Critical, fmt.Sprintf("escrow.json says %s was shipped with sha256 %.16s…, its record says %.16s…: one of them was replaced: %s",
			f.ZipName, e.SHA256, rec.ZipSHA256, fixEscrow))
	}
	if sum := sha256.Sum256(f.Settings); rec.SettingsSHA256 != "" && rec.SettingsSHA256 != hex.EncodeToString(sum[:]) {
		r.Raise(plugin.Warning, fmt.Sprintf("escrow is stale: the escrowed settings (as recorded in %s) differ from %s: %s",
			escrow.RecordName(f.ZipName), f.ConfigPath, fixEscrow))
	}
	ids, err := evidence.ParseIDs(rec.EncryptionKeyIDs)
	if err != nil {
		r.Raise(plugin.Critical, fmt.Sprintf("the record %s is unusable: %v: %s", escrow.RecordName(f.ZipName), err, fixEscrow))
	}
	h := &held{Fingerprint: rec.Fingerprint, EncIDs: ids, SecretEncrypted: rec.SecretEncrypted}
	if keys, err := crypt.ParseKeys([]byte(rec.PublicKey)); err == nil && crypt.Fingerprint(keys[0]) == rec.Fingerprint {
		h.Expires, h.Created = escrow.Expiry(keys[0]), keys[0].PrimaryKey.CreationTime.UTC()
	}
	r.Addf("zip %s: not readable by this user (%v); judged by its public record %s and its size (%d bytes), not opened",
		f.ZipName, f.ZipUnreadable, escrow.RecordName(f.ZipName), f.ZipSize)
	return h
}

// judgeHeldKeys compares the escrowed key with the host: the same key as
// the public key file (or the last backup's, when that is unreadable),
// the secret of every encryption subkey of the host key, and of every key
// the last backup was really encrypted to.
func judgeHeldKeys(r *plugin.Result, f facts, h *held) {
	if f.PubFP != "" && h.Fingerprint != f.PubFP {
		r.Raise(plugin.Critical, fmt.Sprintf("the escrowed key %s is not the host key %s (%s): the escrow cannot decrypt this host's backups: %s",
			short(h.Fingerprint), short(f.PubFP), f.PubPath, fixEscrow))
	}
	if f.PubFP == "" && f.BackupFP != "" && h.Fingerprint != f.BackupFP {
		// With the public key unreadable, the last backup's key is the
		// only witness of the key in use.
		r.Raise(plugin.Critical, fmt.Sprintf("the escrowed key %s is not the key %s the last backup was encrypted to: %s", short(h.Fingerprint), short(f.BackupFP), fixEscrow))
	}
	if f.PubFP != "" && h.Fingerprint == f.PubFP {
		if missing := evidence.Missing(f.PubEncIDs, h.EncIDs); len(missing) > 0 {
			r.Raise(plugin.Critical, fmt.Sprintf("the escrowed key lacks the secret of encryption subkey %s of the host key (%s): backups encrypted to it cannot be decrypted with the escrow: %s",
				keyIDs(missing), f.PubPath, fixEscrow))
		}
	}
	judgeBackupKeyIDs(r, f, h)
}

// judgeBackupKeyIDs raises key IDs the last backup was encrypted to that
// the escrow cannot decrypt (the settings' extra recipients aside).
func judgeBackupKeyIDs(r *plugin.Result, f facts, h *held) {
	if len(f.BackupKeyIDs) == 0 {
		return
	}
	ids, err := evidence.ParseIDs(f.BackupKeyIDs)
	if err != nil {
		r.Raise(plugin.Unknown, fmt.Sprintf("%s: key_ids: %v (check_backup_age reports the same file; run backup_runner backup)", status.BackupFile, err))
		return
	}
	missing := evidence.Missing(evidence.Missing(ids, f.RecipientIDs), h.EncIDs)
	switch {
	case len(missing) == 0:
		r.Addf("last backup %s: encrypted to %s, every one escrowed or an extra recipient", f.BackupObject, keyIDs(ids))
	case f.RecipientsErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("the last backup was encrypted to key ID %s, not in the escrow, and the recipients cannot be read to tell: %v (fix recipients in %s)",
			keyIDs(missing), f.RecipientsErr, f.ConfigPath))
	default:
		r.Raise(plugin.Critical, fmt.Sprintf("the last backup %s was encrypted to key ID %s, which the escrowed key cannot decrypt: %s, then run backup_runner backup",
			f.BackupObject, keyIDs(missing), fixEscrow))
	}
}

// judgeExpiry raises a host key that expired or expires soon.
func judgeExpiry(r *plugin.Result, expires time.Time, a args, now time.Time) {
	if expires.IsZero() {
		return
	}
	left := expires.Sub(now)
	fix := "run backup_runner init --rotate-key, then backup_runner escrow"
	switch {
	case left <= 0:
		r.Raise(plugin.Critical, fmt.Sprintf("the host key expired %s ago (%s): backups can no longer be encrypted to it: %s",
			plugin.HumanDuration(-left), expires.Format(time.RFC3339), fix))
	case left <= a.ExpiryCritical.D():
		r.Raise(plugin.Critical, fmt.Sprintf("the host key expires in %s (%s), within --expiry-critical %s: %s",
			plugin.HumanDuration(left), expires.Format(time.RFC3339), a.ExpiryCritical, fix))
	case left <= a.ExpiryWarning.D():
		r.Raise(plugin.Warning, fmt.Sprintf("the host key expires in %s (%s), within --expiry-warning %s: %s",
			plugin.HumanDuration(left), expires.Format(time.RFC3339), a.ExpiryWarning, fix))
	}
}

// okSummary says exactly what was proven, which depends on whether the
// zip could be opened.
func okSummary(f facts, h *held, now time.Time) string {
	compared := []string{"the public key file"}
	if f.BackupFP != "" {
		compared = append(compared, "the last backup's key")
	}
	if f.SecretFP != "" {
		compared = append(compared, "the secret key file")
	}
	exp := "never expires"
	if !h.Expires.IsZero() {
		exp = "expires in " + plugin.HumanDuration(h.Expires.Sub(now))
	}
	age := plugin.HumanDuration(max(now.Sub(f.ZipTime), 0))
	if !h.Opened {
		return fmt.Sprintf("escrow zip %s (%s old, %d bytes as recorded, in %s) is recorded as holding host key %s, the same as %s; key %s (not opened: not readable by this user; its public record speaks)",
			f.ZipName, age, f.ZipSize, f.Where, short(f.PubFP), strings.Join(compared, ", "), exp)
	}
	return fmt.Sprintf("escrow zip %s (%s old, in %s) holds host key %s, the same as %s; key %s",
		f.ZipName, age, f.Where, short(f.PubFP), strings.Join(compared, ", "), exp)
}

// details adds the long output and perfdata.
func details(r *plugin.Result, f facts, a args, h *held, now time.Time) {
	if h != nil {
		if h.Created.IsZero() {
			r.Addf("escrowed key: %s", h.Fingerprint)
		} else {
			r.Addf("escrowed key: %s (created %s)", h.Fingerprint, h.Created.Format(time.RFC3339))
		}
		if len(h.EncIDs) > 0 {
			r.Addf("escrowed encryption keys: %s", keyIDs(h.EncIDs))
		}
	}
	if f.PubFP != "" {
		r.Addf("host key: %s (%s)", f.PubFP, f.PubPath)
	}
	if f.BackupFP != "" {
		r.Addf("last backup's key: %s", f.BackupFP)
	}
	if f.SecretFP != "" {
		r.Addf("secret key: %s (%s, mode %04o)", f.SecretFP, f.SecretPath, f.SecretMode.Perm())
	}
	if f.EscrowRun != nil && f.EscrowRun.State == status.Failed {
		r.Raise(plugin.Warning, fmt.Sprintf("the last backup_runner escrow failed %s ago: %s: fix that and %s",
			plugin.HumanDuration(max(now.Sub(f.EscrowRun.Finished), 0)), f.EscrowRun.Error, fixEscrow))
	}
	if h == nil {
		return
	}
	r.Addf("zip: %s in %s, shipped %s", f.ZipName, f.Where, plugin.Stamp(f.ZipTime))
	r.Perfdata = append(r.Perfdata, plugin.Seconds("zip_age", max(now.Sub(f.ZipTime), 0).Seconds(), a.Warning.Range, a.Critical.Range))
	if !h.Expires.IsZero() {
		r.Perfdata = append(r.Perfdata, nagios.PerformanceData{
			Label: "key_expiry", Value: fmt.Sprintf("%.0f", h.Expires.Sub(now).Seconds()), UnitOfMeasurement: "s",
			Warn: fmt.Sprintf("%.0f:", a.ExpiryWarning.D().Seconds()), Crit: fmt.Sprintf("%.0f:", a.ExpiryCritical.D().Seconds()),
		})
	}
}

// short is the first 16 digits of a fingerprint (what the zip name holds),
// enough to tell keys apart in one line; the long output has them in full.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

func keyIDs(ids []uint64) string { return evidence.FormatIDs(ids) }

// sameIDs compares hex key IDs with parsed ones, in any order.
func sameIDs(hex []string, ids []uint64) bool {
	got, err := evidence.ParseIDs(hex)
	return err == nil && len(got) == len(ids) && len(evidence.Missing(got, ids)) == 0 && len(evidence.Missing(ids, got)) == 0
}

// diffSettings names the settings that differ between two files written by
// config.Encode: "table.key" for each line that is not in both.
func diffSettings(escrowed, current []byte) []string {
	a, b := settingLines(escrowed), settingLines(current)
	var changed []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			changed = append(changed, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	return slices.Compact(changed)
}

func settingLines(data []byte) map[string]string {
	out := map[string]string{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			table = strings.Trim(line, "[] ")
		default:
			k, v, _ := strings.Cut(line, "=")
			k = strings.TrimSpace(k)
			if table != "" {
				k = table + "." + k
			}
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}
