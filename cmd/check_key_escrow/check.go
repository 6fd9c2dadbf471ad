package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	nagios "github.com/atc0005/go-nagios"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
)

// facts is everything gather found; evaluate judges it without I/O.
type facts struct {
	SettingsErr error
	ConfigPath  string
	Host        string
	// Settings is the current settings file in canonical form (Encode).
	Settings []byte
	// NoEscrow: no [escrow] url and no --zip.
	NoEscrow bool

	PubPath string
	PubFP   string
	PubErr  error

	SecretPath    string
	SecretStatErr error // ErrNotExist: missing; permission: cannot tell (fine as nagios)
	SecretMode    fs.FileMode
	SecretUID     int
	SecretFP      string
	SecretReadErr error // permission denied as nagios is normal
	WantUID       int
	WantOwner     string
	OwnerErr      error

	BackupFP  string // key the last successful backup was encrypted to
	BackupErr error  // ErrNotExist is fine: no backup yet is check_backup_age's concern

	EscrowRun *status.Escrow // escrow.json, when readable
	EscrowErr error          // escrow.json unreadable (ErrNotExist is fine: an older install)
	BackupRun *status.Backup // backup.json, when readable

	// Team maps each [escrow] recipients file to the key IDs of its keys.
	Team    map[string][]uint64
	TeamFP  map[string]string
	TeamErr error

	Where   string // escrow location, or the --zip file
	ZipName string
	ZipTime time.Time
	FindErr error // store.ErrNotFound / fs.ErrNotExist: no zip; else cannot look
	Zip     *escrow.Facts
	ZipErr  error // the zip is unusable
}

// gather does all the I/O: settings, key files, status files, the zip.
func gather(ctx context.Context, a *args) facts {
	var f facts
	cfg, stateDir, err := a.Settings(ctx)
	if err != nil {
		f.SettingsErr = err
		return f
	}
	if cfg == nil {
		f.SettingsErr = errors.New("check_key_escrow needs the settings file (host, key file, [escrow] url): pass --config or set DRYM_CONFIG")
		return f
	}
	f.ConfigPath, f.Host = cfg.Path, cfg.Host
	f.Settings, _ = cfg.Encode()
	if cfg.Escrow.URL == "" && a.Zip == "" {
		f.NoEscrow = true
		return f
	}

	f.PubPath = cfg.PublicKeyFile()
	plugin.Doing(ctx, "reading public key %s", f.PubPath)
	if keys, err := crypt.ReadKeyFile(f.PubPath); err != nil {
		f.PubErr = err
	} else {
		f.PubFP = crypt.Fingerprint(keys[0])
	}
	secret(ctx, a, cfg, &f)

	bpath := filepath.Join(stateDir, status.BackupFile)
	plugin.Doing(ctx, "reading %s", bpath)
	var b status.Backup
	if f.BackupErr = status.Read(bpath, &b); f.BackupErr == nil {
		f.BackupRun = &b
		switch {
		case b.LastSuccess != nil && b.LastSuccess.Fingerprint != "":
			f.BackupFP = b.LastSuccess.Fingerprint
		case b.State == status.OK:
			f.BackupFP = b.Fingerprint
		}
	}
	var e status.Escrow
	if err := status.Read(filepath.Join(stateDir, status.EscrowFile), &e); err == nil {
		f.EscrowRun = &e
	} else if !errors.Is(err, status.ErrNotExist) {
		f.EscrowErr = err
	}

	if len(cfg.Escrow.Recipients) > 0 {
		f.Team, f.TeamFP = map[string][]uint64{}, map[string]string{}
		for _, r := range cfg.Escrow.Recipients {
			keys, err := crypt.ReadKeyFile(r)
			if err != nil {
				f.TeamErr = err
				break
			}
			for _, k := range keys {
				f.Team[r] = append(f.Team[r], escrow.KeyIDs(k)...)
			}
			f.TeamFP[r] = crypt.Fingerprint(keys[0])
		}
	}

	if a.Zip != "" {
		zipFile(ctx, a.Zip, &f)
	} else {
		zipStore(ctx, cfg, &f)
	}
	return f
}

func secret(ctx context.Context, a *args, cfg *config.Config, f *facts) {
	f.SecretPath = cfg.KeyFile
	f.WantOwner = a.KeyOwner
	if u, err := user.Lookup(a.KeyOwner); err != nil {
		f.OwnerErr = err
	} else {
		f.WantUID, _ = strconv.Atoi(u.Uid)
	}
	plugin.Doing(ctx, "looking at secret key %s", f.SecretPath)
	fi, err := os.Stat(f.SecretPath)
	if err != nil {
		f.SecretStatErr = err
		return
	}
	f.SecretMode = fi.Mode()
	f.SecretUID = -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.SecretUID = int(st.Uid)
	}
	keys, err := crypt.ReadKeyFile(f.SecretPath)
	if err != nil {
		f.SecretReadErr = err
		return
	}
	f.SecretFP = crypt.Fingerprint(keys[0])
}

func zipFile(ctx context.Context, path string, f *facts) {
	f.Where, f.ZipName = path, filepath.Base(path)
	plugin.Doing(ctx, "reading %s", path)
	file, err := os.Open(path)
	if err != nil {
		f.FindErr = err
		return
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		f.FindErr = err
		return
	}
	if !fi.Mode().IsRegular() {
		f.ZipErr = fmt.Errorf("%w: not a regular file", escrow.ErrBroken)
		return
	}
	f.ZipTime = fi.ModTime()
	f.Zip, f.ZipErr = escrow.Inspect(file, fi.Size(), escrow.DefaultLimits)
}

func zipStore(ctx context.Context, cfg *config.Config, f *facts) {
	f.Where = cfg.Escrow.URL
	plugin.Doing(ctx, "opening escrow location %s", cfg.Escrow.URL)
	s, err := store.Open(ctx, cfg.Escrow.Remote, "", store.Read)
	if err != nil {
		f.FindErr = err
		return
	}
	plugin.Doing(ctx, "listing %s for %s%s-*.zip", s, escrow.NamePrefix, cfg.Host)
	info, err := escrow.Latest(ctx, s, cfg.Host)
	if err != nil {
		f.FindErr = err
		return
	}
	f.ZipName, f.ZipTime = info.Name, info.ModTime
	plugin.Doing(ctx, "reading %s from %s", info.Name, s)
	data, err := escrow.Fetch(ctx, s, info.Name, escrow.DefaultLimits.MaxZip)
	if err != nil {
		if errors.Is(err, escrow.ErrBroken) {
			f.ZipErr = err
		} else {
			f.FindErr = err
		}
		return
	}
	f.Zip, f.ZipErr = escrow.Inspect(bytes.NewReader(data), int64(len(data)), escrow.DefaultLimits)
}

const fixEscrow = "run backup_runner escrow"

// evaluate judges the facts: pure, no I/O, no clock.
func evaluate(f facts, a args, now time.Time) plugin.Result {
	if f.SettingsErr != nil {
		if errors.Is(f.SettingsErr, plugin.ErrNotSetUp) {
			return plugin.SettingsResult(f.SettingsErr)
		}
		return plugin.Result{State: plugin.Unknown, Summary: f.SettingsErr.Error()}
	}
	if f.NoEscrow {
		return plugin.Result{State: plugin.Critical, Summary: fmt.Sprintf(
			"no escrow configured: the host key exists only on this host and dies with it: add [escrow] url = \"dir:///…\" or \"s3://…\" to %s, then %s", f.ConfigPath, fixEscrow)}
	}
	var r plugin.Result
	fp16 := func(fp string) string { return short(fp) }

	// The host's own key files.
	switch {
	case errors.Is(f.PubErr, fs.ErrNotExist):
		r.Raise(plugin.Critical, fmt.Sprintf("no host key: %s is missing: run backup_runner init", f.PubPath))
	case f.PubErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read the host public key: %v (it must be readable by user nagios: chmod 644 %s)", f.PubErr, f.PubPath))
	}
	switch {
	case errors.Is(f.SecretStatErr, fs.ErrNotExist):
		r.Raise(plugin.Critical, fmt.Sprintf("the secret host key %s is missing (test restores and restores on this host fail): copy host-key.asc from the escrow zip back to it, or run backup_runner init --rotate-key and then backup_runner escrow", f.SecretPath))
	case f.SecretStatErr != nil:
		r.Addf("secret key %s: cannot look at it (%v); not compared", f.SecretPath, f.SecretStatErr)
	default:
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
				f.SecretPath, fp16(f.SecretFP), f.PubPath, fp16(f.PubFP)))
		}
	}

	// Damaged or future-dated status files are doubt, and doubt is never OK;
	// plugin.StatusError words them as the other checks do.
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

	// The last backup's key.
	switch {
	case f.BackupErr != nil && !errors.Is(f.BackupErr, status.ErrNotExist):
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot compare with the last backup's key: %v (check_backup_age reports the same file)", f.BackupErr))
	case f.BackupFP != "" && f.PubFP != "" && f.BackupFP != f.PubFP:
		r.Raise(plugin.Critical, fmt.Sprintf("the last backup was encrypted to key %s but the host key is %s: run backup_runner backup, then backup_runner escrow",
			fp16(f.BackupFP), fp16(f.PubFP)))
	}
	if f.TeamErr != nil {
		r.Raise(plugin.Unknown, fmt.Sprintf("[escrow] recipients: %v (fix the key file or the list in %s)", f.TeamErr, f.ConfigPath))
	}

	// The zip.
	zipAge := time.Duration(-1)
	switch {
	case errors.Is(f.FindErr, store.ErrNotFound) || errors.Is(f.FindErr, fs.ErrNotExist):
		r.Raise(plugin.Critical, fmt.Sprintf("no escrow zip for %s in %s: the host key exists only on this host: %s", f.Host, f.Where, fixEscrow))
	case f.FindErr != nil:
		r.Raise(plugin.Unknown, fmt.Sprintf("cannot read the escrow location: %v (check [escrow] read_profile and its credentials in %s)", f.FindErr, f.ConfigPath))
	case f.ZipErr != nil:
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s in %s is unusable: %s: %s to ship a good one, and find out what damaged it",
			f.ZipName, f.Where, strings.TrimPrefix(f.ZipErr.Error(), escrow.ErrBroken.Error()+": "), fixEscrow))
	case f.Zip != nil:
		zipAge = max(now.Sub(f.ZipTime), 0)
		judgeZip(&r, f, a, now)
	}

	if r.State == plugin.OK && f.Zip == nil {
		r.Raise(plugin.Unknown, "no escrow zip was examined (a drym bug: run with -v and report it)")
	}
	if r.State == plugin.OK {
		compared := []string{"the public key file"}
		if f.BackupFP != "" {
			compared = append(compared, "the last backup's key")
		}
		if f.SecretFP != "" {
			compared = append(compared, "the secret key file")
		}
		exp := "never expires"
		if !f.Zip.KeyExpires.IsZero() {
			exp = "expires in " + plugin.HumanDuration(f.Zip.KeyExpires.Sub(now))
		}
		r.Summary = fmt.Sprintf("escrow zip %s (%s old, in %s) holds host key %s, the same as %s; key %s",
			f.ZipName, plugin.HumanDuration(zipAge), f.Where, fp16(f.PubFP), strings.Join(compared, ", "), exp)
	}
	if f.Zip != nil {
		r.Addf("escrowed key: %s (created %s)", f.Zip.Fingerprint, f.Zip.KeyCreated.Format(time.RFC3339))
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
	if zipAge >= 0 {
		r.Addf("zip: %s in %s, shipped %s", f.ZipName, f.Where, f.ZipTime.UTC().Format(time.RFC3339))
		r.Perfdata = append(r.Perfdata, plugin.Seconds("zip_age", zipAge.Seconds(), a.Warning.Range, a.Critical.Range))
		if !f.Zip.KeyExpires.IsZero() {
			r.Perfdata = append(r.Perfdata, nagios.PerformanceData{
				Label: "key_expiry", Value: fmt.Sprintf("%.0f", f.Zip.KeyExpires.Sub(now).Seconds()), UnitOfMeasurement: "s",
				Warn: fmt.Sprintf("%.0f:", a.ExpiryWarning.D().Seconds()), Crit: fmt.Sprintf("%.0f:", a.ExpiryCritical.D().Seconds()),
			})
		}
	}
	return r
}

// judgeZip compares an intact zip with the host.
func judgeZip(r *plugin.Result, f facts, a args, now time.Time) {
	z := f.Zip
	if z.Host != f.Host || z.Config.Host != f.Host {
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s is for host %s, not %s: it cannot restore this host: %s", f.ZipName, z.Host, f.Host, fixEscrow))
	}
	if f.PubFP != "" && z.Fingerprint != f.PubFP {
		r.Raise(plugin.Critical, fmt.Sprintf("the escrowed key %s is not the host key %s (%s): the escrow cannot decrypt this host's backups: %s",
			short(z.Fingerprint), short(f.PubFP), f.PubPath, fixEscrow))
	}
	if f.PubFP == "" && f.BackupFP != "" && z.Fingerprint != f.BackupFP {
		// With the public key unreadable, the last backup's key is the
		// only witness of the key in use.
		r.Raise(plugin.Critical, fmt.Sprintf("the escrowed key %s is not the key %s the last backup was encrypted to: %s", short(z.Fingerprint), short(f.BackupFP), fixEscrow))
	}
	if f.Team != nil && z.SecretEncrypted {
		for _, file := range sortedKeys(f.Team) {
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
	if !z.KeyExpires.IsZero() {
		left := z.KeyExpires.Sub(now)
		fix := "run backup_runner init --rotate-key, then backup_runner escrow"
		switch {
		case left <= 0:
			r.Raise(plugin.Critical, fmt.Sprintf("the host key expired %s ago (%s): backups can no longer be encrypted to it: %s",
				plugin.HumanDuration(-left), z.KeyExpires.Format(time.RFC3339), fix))
		case left <= a.ExpiryCritical.D():
			r.Raise(plugin.Critical, fmt.Sprintf("the host key expires in %s (%s), within --expiry-critical %s: %s",
				plugin.HumanDuration(left), z.KeyExpires.Format(time.RFC3339), a.ExpiryCritical, fix))
		case left <= a.ExpiryWarning.D():
			r.Raise(plugin.Warning, fmt.Sprintf("the host key expires in %s (%s), within --expiry-warning %s: %s",
				plugin.HumanDuration(left), z.KeyExpires.Format(time.RFC3339), a.ExpiryWarning, fix))
		}
	}
	age := max(now.Sub(f.ZipTime), 0)
	switch {
	case a.Critical.AlertAge(age):
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s is %s old, %s (-c): %s", f.ZipName, plugin.HumanDuration(age), a.Critical.Describe(), fixEscrow))
	case a.Warning.AlertAge(age):
		r.Raise(plugin.Warning, fmt.Sprintf("escrow zip %s is %s old, %s (-w): %s", f.ZipName, plugin.HumanDuration(age), a.Warning.Describe(), fixEscrow))
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

func sortedKeys(m map[string][]uint64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func keyIDs(ids []uint64) string {
	var s []string
	for _, id := range ids {
		s = append(s, fmt.Sprintf("%016X", id))
	}
	return strings.Join(s, ", ")
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
