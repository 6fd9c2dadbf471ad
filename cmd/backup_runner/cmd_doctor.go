package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/units"
)

type doctorCmd struct{}

// doctorTimeout bounds each store's probes: a dozen small requests.
const doctorTimeout = time.Minute

func (c *doctorCmd) run(ctx context.Context, a *app) int {
	cfg, code, err := a.loadConfig()
	if err != nil {
		return a.fail(code, "%v", err)
	}
	if !doctor(ctx, a.stdout, cfg) {
		return exitFailure
	}
	return exitOK
}

// doctor probes the destination and the escrow with the configured
// credentials and prints a table per store. It reports false when a line
// is FAIL: above all when the append-only promise does not hold (this host
// can add objects but must neither delete nor replace them).
func doctor(ctx context.Context, w io.Writer, cfg *config.Config) bool {
	ok := checkStore(ctx, w, cfg, "destination", cfg.Destination, cfg.Host, store.ProbeName, store.ProbeContent, false)
	if cfg.Escrow.URL == "" {
		fmt.Fprintf(w, "\nescrow: none configured: the host key exists only on this host (set [escrow] url, then run backup_runner escrow)\n")
		return ok
	}
	fmt.Fprintln(w)
	name := escrow.NamePrefix + cfg.Host + "-probe.zip"
	if !checkStore(ctx, w, cfg, "escrow", cfg.Escrow.Remote, "", name, escrowProbe(), true) {
		ok = false
	}
	return ok
}

// row is one line of a store's table.
type row struct{ result, check, detail string }

const (
	rOK   = "ok"
	rWarn = "WARN"
	rFail = "FAIL"
	rInfo = "info"
)

type table struct {
	rows []row
}

func (t *table) add(result, check, format string, args ...any) {
	t.rows = append(t.rows, row{result, check, fmt.Sprintf(format, args...)})
}

// failed reports whether a line is FAIL.
func (t *table) failed() bool {
	for _, r := range t.rows {
		if r.result == rFail {
			return true
		}
	}
	return false
}

func (t *table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range t.rows {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.result, r.check, r.detail)
	}
	tw.Flush()
}

// storeCheck is doctor's look at one S3 store (the destination or the
// escrow): the probes' results, and the table it prints.
type storeCheck struct {
	ctx      context.Context
	cfg      *config.Config
	role     string // "destination" or "escrow"
	remote   config.Remote
	probe    string // the probe object's name
	isEscrow bool
	putOnly  string // the policy file the upload credentials should have
	listed   string // what a listing looks at: the escrow's zips of this host, or the whole host folder

	ws   *store.S3 // with the upload credentials
	rs   *store.S3 // with the read credentials (nil when rerr is set)
	rerr error
	p    *store.Promise
	ao   status.AppendOnly
	t    table
}

// checkStore prints the table of one store and reports whether all went
// well: no FAIL line, so the append-only promise holds too.
func checkStore(ctx context.Context, w io.Writer, cfg *config.Config, role string, remote config.Remote, sub, probe string, content []byte, isEscrow bool) bool {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	loc, err := config.ParseURL(remote.URL)
	if err != nil {
		fmt.Fprintf(w, "%s %s\n  FAIL  %v\n", role, remote.URL, err)
		return false
	}
	if loc.Scheme == "dir" {
		return checkDir(w, role, remote.URL, loc.Path, sub)
	}
	c := &storeCheck{ctx: ctx, cfg: cfg, role: role, remote: remote, probe: probe, isEscrow: isEscrow,
		putOnly: "plugins.d/s3/backup-put-only-policy.json"}
	if isEscrow {
		c.putOnly, c.listed = "plugins.d/s3/escrow-policy.json", escrow.NamePrefix+cfg.Host+"-"
	}
	if c.ws, err = openS3(ctx, remote, sub, store.Write); err != nil {
		fmt.Fprintf(w, "%s %s\n  FAIL  cannot use the %s credentials: %v\n", role, remote.URL, profileName(remote.Profile), err)
		return false
	}
	c.p = c.ws.ProbePromise(ctx, probe, content)
	if c.p.Unreachable {
		fmt.Fprintf(w, "%s %s\n  %s\n\n", role, c.ws, describeS3(c.ws, remote, role))
		c.t.add(rFail, "endpoint", "%v", c.p.Upload.Err)
		c.t.print(w)
		fmt.Fprintf(w, "  => append-only: not probed: the endpoint did not answer\n")
		return false
	}
	c.tryOtherAddressing(sub, content)
	fmt.Fprintf(w, "%s %s\n  %s\n\n", role, c.ws, describeS3(c.ws, c.remote, role))
	c.rs, c.rerr = openS3(ctx, c.remote, sub, store.Read)
	c.readBucketSettings()
	c.ao = c.p.AppendOnly(time.Now())

	c.promiseRows()
	c.uploadProfileRows()
	c.readProfileRows()
	if !isEscrow {
		c.lifecycleRow()
	}
	c.addressingAndClockRows()
	c.t.print(w)
	return c.verdict(w)
}

// tryOtherAddressing: the wrong addressing style fails in ways that name
// neither it nor path_style (a host name that does not resolve, a bucket
// that does not exist, access denied to another bucket): when the upload
// fails, try the other style, and say which one works.
func (c *storeCheck) tryOtherAddressing(sub string, content []byte) {
	if c.p.Upload.Result == store.ProbeOK {
		return
	}
	other := c.remote
	other.PathStyle = !c.remote.PathStyle
	alt, err := openS3(c.ctx, other, sub, store.Write)
	if err != nil {
		return
	}
	if op := alt.ProbePromise(c.ctx, c.probe, content); op.Upload.Result == store.ProbeOK {
		c.t.add(rFail, "addressing", "path_style = %t does not work with this endpoint (%v); path_style = %t does: set path_style = %t in [%s] of %s",
			c.remote.PathStyle, c.p.Upload.Err, other.PathStyle, other.PathStyle, section(c.role), c.cfg.Path)
		c.ws, c.p, c.remote = alt, op, other
	}
}

// readBucketSettings asks the read credentials for the bucket settings the
// upload credentials may not read (the monitoring policy grants them).
func (c *storeCheck) readBucketSettings() {
	if c.rerr != nil {
		return
	}
	if c.p.Versioning.Result == status.ProbeUnknown {
		if v := c.rs.ProbeVersioning(c.ctx); v.Result != status.ProbeUnknown {
			c.p.Versioning = v
		}
	}
	if c.p.ObjectLock.Result == status.ProbeUnknown {
		if l := c.rs.ProbeObjectLock(c.ctx); l.Result != status.ProbeUnknown {
			c.p.ObjectLock = l
		}
	}
}

// promiseRows are the rows the append-only promise rests on: upload,
// overwrite, delete, version delete, and what keeps old bytes.
func (c *storeCheck) promiseRows() {
	p, ao, t := c.p, &c.ao, &c.t
	switch p.Upload.Result {
	case store.ProbeOK:
		how := "created it"
		switch {
		case !p.Created:
			how = "it exists, and the server refused to replace it"
		case c.ao.Overwrite == status.ProbeIgnored:
			// A server that ignores the condition answers 200 whether the
			// probe object was new or an earlier run's: it cannot tell.
			how = "created or replaced it: the server does not refuse an existing name"
		}
		t.add(rOK, "upload", "PUT %s%s with If-None-Match: * (%s)", c.ws, c.probe, how)
	case status.ProbeDenied:
		t.add(rFail, "upload", "the %s credentials may not upload: %v", profileName(c.remote.Profile), p.Upload.Err)
	default:
		t.add(rFail, "upload", "%v", p.Upload.Err)
	}
	switch {
	case ao.Overwrite == status.ProbeRefused:
		t.add(rOK, "overwrite refused", "a repeated PUT with If-None-Match: * was refused (%d)", p.Overwrite.HTTP)
	case ao.Overwrite == status.ProbeIgnored && ao.VersionsKept():
		t.add(rWarn, "overwrite refused", "the server ignores If-None-Match and replaced the probe object; %s keeps the old bytes", keeper(ao))
	case ao.Overwrite == status.ProbeIgnored:
		t.add(rFail, "overwrite refused", "the server ignores If-None-Match and replaced the probe object, and nothing keeps the old bytes: a compromised host can overwrite the backups it knows the names of; enable bucket versioning (aws s3api put-bucket-versioning --bucket %s --versioning-configuration Status=Enabled) or Object Lock", bucketOf(c.ws))
	default:
		t.add(rFail, "overwrite refused", "could not tell: %v", p.Overwrite.Err)
	}
	switch {
	case ao.Delete == status.ProbeDenied:
		t.add(rOK, "delete denied", "DELETE of a name that does not exist answered %d %s", p.Delete.HTTP, p.Delete.Code)
	case ao.Delete == status.ProbeAllowed && ao.VersionsKept():
		t.add(rWarn, "delete denied", "DELETE answered %d: these credentials may delete, but deletes keep old versions (%s): a delete only hides a backup behind a delete marker; deny s3:DeleteObject anyway (%s)", p.Delete.HTTP, keeper(ao), c.putOnly)
	case ao.Delete == status.ProbeAllowed:
		t.add(rFail, "delete denied", "DELETE of a name that does not exist answered %d: this host can delete its %s; deny s3:DeleteObject to these credentials (%s)", p.Delete.HTTP, what(c.isEscrow), c.putOnly)
	default:
		t.add(rFail, "delete denied", "could not tell: %v", p.Delete.Err)
	}
	switch {
	case ao.DeleteVersion == status.ProbeDenied:
		t.add(rOK, "version delete denied", "DELETE ?versionId=null answered %d %s", p.DeleteVersion.HTTP, p.DeleteVersion.Code)
	case ao.DeleteVersion == status.ProbeAllowed && ao.Locked():
		t.add(rWarn, "version delete denied", "DELETE ?versionId=null answered %d, but Object Lock keeps every version for its retention; deny s3:DeleteObjectVersion anyway (%s)", p.DeleteVersion.HTTP, c.putOnly)
	case ao.DeleteVersion == status.ProbeAllowed:
		t.add(rFail, "version delete denied", "DELETE ?versionId=null answered %d: these credentials can delete for good, even from a versioned bucket; deny s3:DeleteObjectVersion (%s)", p.DeleteVersion.HTTP, c.putOnly)
	default:
		t.add(rFail, "version delete denied", "could not tell: %v", p.DeleteVersion.Err)
	}
	if p.Marker != "" {
		t.add(rWarn, "leftovers", "the delete probe left a delete marker for s3://%s/%s (these credentials may delete objects but not versions); the bucket admin can remove it", bucketOf(c.ws), p.Marker)
	}
	bucketSetting(t, "versioning", p.Versioning, c.ws, "s3:GetBucketVersioning")
	bucketSetting(t, "object lock", p.ObjectLock, c.ws, "s3:GetBucketObjectLockConfiguration")
}

// uploadProfileRows: what else the upload credentials may do. Reading or
// listing is no threat to the promise, but more than a backup needs. (The
// escrow lists only its host's zips, as check_key_escrow does.)
func (c *storeCheck) uploadProfileRows() {
	if c.remote.ReadProfile == c.remote.Profile {
		return
	}
	up := profileName(c.remote.Profile)
	for _, pr := range []struct {
		check string
		probe store.Probe
	}{
		{"read by " + up, c.ws.ProbeRead(c.ctx, c.probe)},
		{"list by " + up, c.ws.ProbeList(c.ctx, c.listed)},
	} {
		switch {
		case pr.probe.Result == status.ProbeDenied:
			c.t.add(rOK, pr.check, "denied (%d): a compromised host cannot read its history", pr.probe.HTTP)
		case c.isEscrow && pr.probe.Result != status.ProbeUnknown:
			c.t.add(rInfo, pr.check, "allowed: the escrow policy lets the host find and read back its own zips")
		case pr.probe.Result == status.ProbeUnknown:
			c.t.add(rInfo, pr.check, "could not tell: %v", pr.probe.Err)
		default:
			c.t.add(rWarn, pr.check, "allowed: a compromised host can read its backups; drym's uploads need s3:PutObject only (%s)", c.putOnly)
		}
	}
}

// readProfileRows: the read credentials must list and read (test-restore,
// restore, list and the checks' --remote; check_key_escrow for the escrow).
func (c *storeCheck) readProfileRows() {
	rp := profileName(c.remote.ReadProfile)
	if c.rerr != nil {
		c.t.add(rFail, "read profile", "cannot use the %s credentials: %v", rp, c.rerr)
		return
	}
	users, policy := "test-restore, restore, list and check_backup_age --remote", "plugins.d/s3/monitoring-read-only-policy.json"
	if c.isEscrow {
		users, policy = "check_key_escrow", "plugins.d/s3/escrow-policy.json"
	}
	switch l := c.rs.ProbeList(c.ctx, c.listed); l.Result {
	case status.ProbeAllowed:
		c.t.add(rOK, "list by "+rp, "allowed")
	case status.ProbeDenied:
		c.t.add(rFail, "list by "+rp, "denied (%d): %s cannot find %s; grant s3:ListBucket on the prefix (%s)", l.HTTP, users, what(c.isEscrow), policy)
	default:
		c.t.add(rFail, "list by "+rp, "%v", l.Err)
	}
	switch r := c.rs.ProbeRead(c.ctx, c.probe); r.Result {
	case status.ProbeAllowed:
		c.t.add(rOK, "read by "+rp, "allowed")
	case status.ProbeDenied:
		c.t.add(rFail, "read by "+rp, "denied (%d): %s cannot read %s; grant s3:GetObject on the prefix (%s)", r.HTTP, users, what(c.isEscrow), policy)
	case store.ProbeNone:
		c.t.add(rInfo, "read by "+rp, "nothing to read yet (the probe object is missing)")
	default:
		c.t.add(rFail, "read by "+rp, "%v", r.Err)
	}
}

// lifecycleRow: a destination needs a rule that expires old backups and
// abandoned multipart uploads.
func (c *storeCheck) lifecycleRow() {
	lc := c.ws.ProbeLifecycle(c.ctx)
	if lc.Result == status.ProbeUnknown && c.rerr == nil {
		if r := c.rs.ProbeLifecycle(c.ctx); r.Result != status.ProbeUnknown {
			lc = r
		}
	}
	switch lc.Result {
	case store.ProbePresent:
		c.t.add(rOK, "lifecycle rule", "%s", lc.Detail)
	case store.ProbeNone:
		c.t.add(rWarn, "lifecycle rule", "no enabled rule expires backups under %s: they are kept for ever, and abandoned multipart uploads cost storage (plugins.d/s3/lifecycle.json)", c.ws)
	case store.ProbeUnsupported:
		c.t.add(rInfo, "lifecycle rule", "the server does not implement lifecycle rules: remove old backups and abandoned multipart uploads as its admin")
	default:
		c.t.add(rInfo, "lifecycle rule", "not readable with these credentials (the bucket admin can: aws s3api get-bucket-lifecycle-configuration --bucket %s)", bucketOf(c.ws))
	}
}

// addressingAndClockRows: the addressing style that works, and this host's
// clock against the server's Date (backup names carry this host's time).
func (c *storeCheck) addressingAndClockRows() {
	if len(c.t.rows) == 0 || c.t.rows[0].check != "addressing" {
		c.t.add(rOK, "addressing", "%s works", styleName(c.ws.PathStyle()))
	}
	if c.p.ServerDate.IsZero() {
		c.t.add(rInfo, "clock", "the server sent no Date header")
		return
	}
	skew := c.p.LocalDate.Sub(c.p.ServerDate)
	// Date has one-second resolution: a second off is no skew.
	if skew.Abs() > status.ClockSkew {
		c.t.add(rWarn, "clock", "this host's clock is %s %s the server's: backup names carry this host's time and the checks distrust times more than %s ahead; fix NTP (timedatectl status)",
			skew.Abs().Round(time.Second), map[bool]string{true: "ahead of", false: "behind"}[skew > 0], status.ClockSkew)
	} else {
		c.t.add(rOK, "clock", "within %s of the server's Date", max(skew.Abs().Round(time.Second), time.Second))
	}
}

// verdict prints the table's conclusion and reports whether all went well.
func (c *storeCheck) verdict(w io.Writer) bool {
	holds := c.ao.Holds() && c.p.Upload.Result == store.ProbeOK
	switch {
	case holds && c.ao.Locked():
		fmt.Fprintf(w, "  => append-only: holds for the Object Lock retention: this host can add %s but cannot delete or replace them\n", what(c.isEscrow))
	case holds:
		fmt.Fprintf(w, "  => append-only: holds: this host can add %s but cannot delete or replace them\n", what(c.isEscrow))
	default:
		fmt.Fprintf(w, "  => append-only: DOES NOT HOLD: fix the FAIL lines above, then run backup_runner doctor again\n")
	}
	if holds && c.t.failed() {
		fmt.Fprintf(w, "  => but fix the FAIL lines above\n")
	}
	return holds && !c.t.failed()
}

// bucketSetting adds the row of a bucket setting (versioning, Object Lock).
func bucketSetting(t *table, check string, p store.Probe, s *store.S3, perm string) {
	detail := p.Detail
	if detail != "" {
		detail = ": " + detail
	}
	switch p.Result {
	case status.ProbeEnabled:
		t.add(rOK, check, "enabled%s", detail)
	case status.ProbeUnknown:
		t.add(rInfo, check, "not readable with these credentials (grant %s on the bucket, as the shipped policies do, or ask the bucket admin)", perm)
	default:
		t.add(rInfo, check, "%s%s", p.Result, detail)
	}
}

// checkDir says what a directory can and cannot promise.
func checkDir(w io.Writer, role, url, dir, sub string) bool {
	full := dir
	if sub != "" {
		full = dir + "/" + sub
	}
	fmt.Fprintf(w, "%s %s (a directory on this host)\n", role, url)
	var t table
	fi, err := os.Stat(dir)
	parent := dir
	for errors.Is(err, fs.ErrNotExist) && parent != "/" {
		parent = filepath.Dir(parent)
		fi, err = os.Stat(parent)
	}
	switch {
	case parent != dir && err == nil && fi.IsDir() && unix.Access(parent, unix.W_OK) == nil:
		// Before the first backup (init runs doctor) the directory need
		// not exist: the first Put creates it.
		t.add(rInfo, "directory", "%s does not exist yet: the first backup creates it (in %s, writable)", dir, parent)
	case parent != dir:
		t.add(rFail, "directory", "%s does not exist, and %s is not a writable directory to create it in", dir, parent)
	case err != nil:
		t.add(rFail, "directory", "%v", err)
	case !fi.IsDir():
		t.add(rFail, "directory", "%s is not a directory", dir)
	case unix.Access(dir, unix.W_OK) != nil:
		t.add(rFail, "directory", "%s is not writable by this user", dir)
	default:
		var st unix.Statfs_t
		free := ""
		if unix.Statfs(dir, &st) == nil {
			free = fmt.Sprintf(", %s free", units.Bytes(int64(st.Bavail)*st.Bsize))
		}
		t.add(rOK, "directory", "%s exists and is writable%s", dir, free)
	}
	t.add(rOK, "overwrite refused", "drym writes a hidden .partial file, fsyncs it and links it to a name that must not exist: drym itself never replaces a file")
	t.add(rFail, "delete denied", "no: whoever may write to %s — root on this host, and so an intruder — can delete or change every file in it", full)
	t.print(w)
	fmt.Fprintf(w, "  => append-only: DOES NOT HOLD: a directory on this host cannot promise it. Only something this host does not control can:\n"+
		"     a share on another machine that this host may add to but not change, or snapshots it cannot reach.\n"+
		"     For backups that survive a compromised host, use an s3:// destination with put-only credentials (plugins.d/s3/).\n")
	return false
}

// openS3 opens an S3 store (the caller knows remote is s3://).
func openS3(ctx context.Context, remote config.Remote, sub string, access store.Access) (*store.S3, error) {
	st, err := store.Open(ctx, remote, sub, access)
	if err != nil {
		return nil, err
	}
	s, ok := st.(*store.S3)
	if !ok {
		return nil, fmt.Errorf("%s is not an S3 store", remote.URL)
	}
	return s, nil
}

// describeS3 says how s reaches its server and with which credentials.
func describeS3(s *store.S3, remote config.Remote, role string) string {
	ep := s.Endpoint()
	switch {
	case ep == "":
		ep = "AWS (no endpoint set)"
	case remote.Endpoint == "":
		ep += " (from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the profile's endpoint_url)"
	}
	region := s.Region()
	if remote.Region == "" {
		region += " (from the AWS settings)"
	}
	reads := profileName(remote.ReadProfile)
	if role == "escrow" {
		reads += " (check_key_escrow)"
	}
	return fmt.Sprintf("endpoint %s · region %s · %s · uploads as %s · reads as %s", ep, region, styleName(s.PathStyle()), profileName(remote.Profile), reads)
}

func styleName(pathStyle bool) string {
	if pathStyle {
		return "path-style addressing (path_style = true)"
	}
	return "virtual-hosted addressing (path_style = false)"
}

// profileName names the credentials of a profile setting.
func profileName(p string) string {
	if p == "" {
		if env := os.Getenv("AWS_PROFILE"); env != "" {
			return "profile " + env + " (AWS_PROFILE)"
		}
		return "the default AWS credentials"
	}
	return "profile " + p
}

func section(role string) string {
	if role == "escrow" {
		return "escrow"
	}
	return "destination"
}

func what(isEscrow bool) string {
	if isEscrow {
		return "escrow zips"
	}
	return "backups"
}

func keeper(a *status.AppendOnly) string {
	if a.Locked() {
		return "Object Lock"
	}
	return "versioning"
}

// bucketOf returns the bucket of s (from its s3://bucket/prefix/ URL).
func bucketOf(s *store.S3) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(s.String(), "s3://"), "/")
	return b
}

// escrowProbe is the escrow's probe object: a small zip with one text
// member, byte for byte the same every time (the escrow policy lets the
// host write only drym-escrow-<host>-*.zip).
func escrowProbe() []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, _ := zw.CreateHeader(&zip.FileHeader{
		Name: "PROBE.txt", Method: zip.Store,
		Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	_, _ = f.Write(store.ProbeContent)
	_ = zw.Close()
	return buf.Bytes()
}

// initDoctor runs the doctor at the end of init: it warns, and init still
// succeeds (the destination may be fixed later; backups already work).
func initDoctor(ctx context.Context, a *app, cfg *config.Config) {
	a.printf("\nbackup_runner doctor:\n")
	if !doctor(ctx, a.stdout, cfg) {
		fmt.Fprintf(a.stderr, "backup_runner: warning: the append-only promise does not hold for this host (see the table above, or run backup_runner doctor); init succeeded anyway\n")
	}
}

// promiseTimeout bounds the probes after a backup: six small requests.
const promiseTimeout = 30 * time.Second

// promiseAfterBackup runs the cheap append-only probes after a backup that
// stored its object, and returns what backup.json records: this run's
// result, or the last one carried forward when this run could not probe (it
// failed or was interrupted). A dir:// destination records nothing: it
// cannot make the promise (backup_runner doctor says why).
func promiseAfterBackup(ctx context.Context, a *app, cfg *config.Config, backupErr error, last *status.AppendOnly) *status.AppendOnly {
	loc, err := config.ParseURL(cfg.Destination.URL)
	if err != nil || loc.Scheme != "s3" {
		return nil
	}
	if backupErr != nil || ctx.Err() != nil {
		return last
	}
	ctx, cancel := context.WithTimeout(ctx, promiseTimeout)
	defer cancel()
	var ao status.AppendOnly
	if s, err := openS3(ctx, cfg.Destination, cfg.Host, store.Write); err != nil {
		u := status.ProbeUnknown
		ao = status.AppendOnly{Checked: a.now().UTC(), Delete: u, DeleteVersion: u, Overwrite: u, Versioning: u, ObjectLock: u, Error: oneLine(err.Error())}
	} else {
		ao = s.ProbePromise(ctx, store.ProbeName, store.ProbeContent).AppendOnly(a.now())
	}
	if !ao.Held {
		fmt.Fprintf(a.stderr, "backup_runner: warning: %s is not append-only for this host: %s; see backup_runner doctor\n", cfg.Destination.URL, whyNot(&ao))
	}
	return &ao
}

// whyNot says in a few words why the promise does not hold.
func whyNot(a *status.AppendOnly) string {
	var why []string
	if a.CanDelete() {
		why = append(why, "its credentials can delete backups")
	}
	if a.CanOverwrite() {
		why = append(why, "the server ignores If-None-Match and nothing keeps old versions")
	}
	if len(why) == 0 {
		msg := "a probe could not tell"
		if a.Error != "" {
			msg += ": " + a.Error
		}
		why = append(why, msg)
	}
	return strings.Join(why, "; ")
}

// appendOnlyLine is backup.json's append_only in a line, for status.
func appendOnlyLine(a *status.AppendOnly) string {
	when := a.Checked.UTC().Format(time.RFC3339)
	if a.Holds() {
		return fmt.Sprintf("holds (probed %s: delete %s, version delete %s, overwrite %s, versioning %s, object lock %s)",
			when, a.Delete, a.DeleteVersion, a.Overwrite, a.Versioning, a.ObjectLock)
	}
	return fmt.Sprintf("DOES NOT HOLD: %s (probed %s); see backup_runner doctor", whyNot(a), when)
}
