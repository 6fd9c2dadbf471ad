package evidence_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/evidence/evidencetest"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/store"
)

// site is a destination and an escrow drop in a directory, with pinned
// keys, opened as the monitoring server opens them.
type site struct {
	t          *testing.T
	dir, keys  string
	sink       evidencetest.Sink
	opened     *evidence.Opened
	now        time.Time
	window     time.Duration
	warn, crit plugin.AgeRange
	shrink     plugin.Percent
}

func newSite(t *testing.T) *site {
	dir := t.TempDir()
	s := &site{t: t, dir: dir, keys: filepath.Join(dir, "keys"), sink: evidencetest.DirSink(dir), now: time.Now().UTC()}
	os.MkdirAll(s.keys, 0o755)
	os.MkdirAll(filepath.Join(dir, "dest"), 0o755)
	set := &evidence.Settings{Keys: s.keys}
	set.Destination.URL = "dir://" + filepath.Join(dir, "dest")
	set.Escrow.URL = "dir://" + filepath.Join(dir, "escrow")
	o, err := evidence.Open(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	s.opened = o
	s.warn.UnmarshalText([]byte("26h"))
	s.crit.UnmarshalText([]byte("50h"))
	s.shrink = 50
	s.window = evidence.Window(s.crit)
	return s
}

func (s *site) host(name string) *evidencetest.Host {
	h := evidencetest.NewHost(s.t, name, "dest", "escrow", s.sink)
	h.PinKey(s.t, s.keys)
	return h
}

func (s *site) judge(host string, openZip bool) (*evidence.Host, plugin.Result) {
	p, err := s.opened.Params(host, s.now, s.window, openZip)
	if err != nil {
		s.t.Fatal(err)
	}
	h := evidence.Gather(context.Background(), p)
	var r plugin.Result
	evidence.JudgeBackup(&r, h, evidence.Limits{Warning: s.warn, Critical: s.crit, Shrink: s.shrink})
	return h, r
}

func (s *site) proof(host string) plugin.Result {
	p, err := s.opened.Params(host, s.now, s.window, true)
	if err != nil {
		s.t.Fatal(err)
	}
	var r plugin.Result
	evidence.JudgeEscrowProof(&r, evidence.Gather(context.Background(), p))
	return r
}

func expect(t *testing.T, r plugin.Result, state plugin.State, first string) {
	t.Helper()
	if r.State != state || !strings.Contains(r.FirstLine(), first) {
		t.Fatalf("%s, want %s with %q:\n%s", r.State, state, first, plugin.Format(r))
	}
}

func TestStorageVerdicts(t *testing.T) {
	s := newSite(t)
	ago := func(d time.Duration) time.Time { return s.now.Add(-d) }
	day := 24 * time.Hour

	// Healthy: a backup a day for a week, escrowed.
	web := s.host("web1")
	for d := 7; d >= 0; d-- {
		made := ago(time.Duration(d)*day + 3*time.Hour)
		web.Backup(t, made, made.Add(4*time.Minute), 20000)
	}
	web.Escrow(t, ago(30*day), ago(30*day))
	h, r := s.judge("web1", false)
	expect(t, r, plugin.OK, "web1: last backup 2h56m ago")
	if !strings.Contains(r.FirstLine(), "signed by the host key (pinned key") || !strings.Contains(r.FirstLine(), "encrypted to a key in its escrow") {
		t.Fatalf("%s", r.FirstLine())
	}
	if h.Listing.Requests != 1 || h.Requests != 6 {
		t.Errorf("requests: listing %d, all %d (want 1 and 6)", h.Listing.Requests, h.Requests)
	}
	expect(t, s.proof("web1"), plugin.OK, "web1: escrow zip drym-escrow-web1-")
	if p := s.proof("web1"); !strings.Contains(p.FirstLine(), ") opens the newest backup") {
		t.Fatalf("%s", plugin.Format(p))
	}

	// Never backed up.
	_, r = s.judge("ghost", false)
	expect(t, r, plugin.Critical, "never backed up: dir://"+filepath.Join(s.dir, "dest")+" holds no backup of ghost: run backup_runner init on ghost")

	// Stale, with a future-named object planted beside it: still stale.
	stale := s.host("stale1")
	stale.Backup(t, ago(10*day), ago(10*day-time.Minute), 5000)
	stale.Escrow(t, ago(20*day), ago(20*day))
	stale.Put(t, s.now.Add(300*day), ago(time.Hour), []byte("planted"), stale.Key)
	h, r = s.judge("stale1", false)
	expect(t, r, plugin.Critical, "no backup of stale1 in the last 3d2h: the newest found")
	if h.Listing.FutureCount != 1 || len(r.Also) == 0 || !strings.Contains(r.Also[0], "named in the future") {
		t.Fatalf("the future-named object is not reported:\n%s", plugin.Format(r))
	}

	// Many future-named objects: the listing stops at them.
	for i := range 30 {
		stale.Put(t, s.now.Add(time.Duration(301+i)*day), ago(time.Hour), []byte("planted"), nil)
	}
	h, r = s.judge("stale1", false)
	expect(t, r, plugin.Critical, "no backup of stale1")
	if h.Listing.Truncated {
		t.Fatalf("future names truncated the listing: %+v", h.Listing)
	}

	// A 0-byte object as the newest: refused, the one before judged.
	empty := s.host("empty1")
	empty.Backup(t, ago(20*time.Hour), ago(20*time.Hour-time.Minute), 5000)
	empty.Escrow(t, ago(20*day), ago(20*day))
	empty.Put(t, ago(time.Hour), ago(time.Hour-time.Minute), nil, empty.Key)
	_, r = s.judge("empty1", false)
	expect(t, r, plugin.Critical, "is empty (0 bytes)")

	// The newest without its statement.
	nost := s.host("nostatement")
	nost.Escrow(t, ago(20*day), ago(20*day))
	b := nost.Backup(t, ago(2*time.Hour), ago(2*time.Hour-time.Minute), 5000)
	nost.Sink.Delete(t, b.Statement)
	_, r = s.judge("nostatement", false)
	expect(t, r, plugin.Critical, ".sha256 is missing from")

	// A statement whose size disagrees with the object.
	size := s.host("size1")
	size.Escrow(t, ago(20*day), ago(20*day))
	b = size.Backup(t, ago(2*time.Hour), ago(2*time.Hour-time.Minute), 5000)
	size.Sink.Put(t, b.Object, b.Data[:100], ago(2*time.Hour-time.Minute))
	_, r = s.judge("size1", false)
	expect(t, r, plugin.Critical, "the statement does not match the object: it says")

	// Encrypted to a key that is not in the escrow.
	other, _ := crypt.Generate("intruder")
	wrong := s.host("wrongkey")
	wrong.Escrow(t, ago(20*day), ago(20*day))
	wrong.Backup(t, ago(2*time.Hour), ago(2*time.Hour-time.Minute), 5000, other)
	_, r = s.judge("wrongkey", false)
	expect(t, r, plugin.Critical, "is encrypted to no key in wrongkey's escrow")

	// The host key rotated without a new escrow: the escrowed key cannot
	// open the newest backup.
	rot := s.host("rotated")
	rot.Escrow(t, ago(20*day), ago(20*day))
	rot.Key, _ = crypt.Generate("rotated")
	rot.PinKey(t, s.keys)
	rot.Backup(t, ago(2*time.Hour), ago(2*time.Hour-time.Minute), 5000)
	expect(t, s.proof("rotated"), plugin.Critical, "the escrowed key cannot open the newest backup rotated/")

	// An encryption subkey added to the host key after the escrow: new
	// backups go to it, and the escrowed key cannot open them.
	sub := s.host("subkey")
	sub.Escrow(t, ago(20*day), ago(20*day))
	sub.AddSubkey(t)
	sub.PinKey(t, s.keys)
	sub.Backup(t, ago(2*time.Hour), ago(2*time.Hour-time.Minute), 5000)
	expect(t, s.proof("subkey"), plugin.Critical, "the escrowed key cannot open the newest backup subkey/")
	_, r = s.judge("subkey", false)
	expect(t, r, plugin.Critical, "is encrypted to no key in subkey's escrow")

	// Signed by another key than the pinned one: never the newest.
	forged := s.host("forged")
	forged.Escrow(t, ago(20*day), ago(20*day))
	forged.Backup(t, ago(20*time.Hour), ago(20*time.Hour-time.Minute), 5000)
	forged.Put(t, ago(time.Hour), ago(time.Hour-time.Minute), []byte("not a backup at all"), other)
	_, r = s.judge("forged", false)
	expect(t, r, plugin.Critical, "is signed by a key that is not the host key")
}

// Requests per host are constant however many objects the host stored
// before the window (counted here as listing requests; the S3 test
// counts them on the wire).
func TestListingIsBounded(t *testing.T) {
	s := newSite(t)
	for _, n := range []int{3, 3000} {
		name := fmt.Sprintf("h%d", n)
		h := s.host(name)
		dir := filepath.Join(s.dir, "dest", name)
		os.MkdirAll(dir, 0o755)
		// Filler: old objects written straight to the folder.
		for i := range n {
			made := s.now.Add(-time.Duration(10+i) * 24 * time.Hour)
			p := filepath.Join(dir, made.Format("20060102T150405Z")+fmt.Sprintf("-%032x.tar.zst.gpg", i))
			os.WriteFile(p, []byte("x"), 0o644)
			os.Chtimes(p, made, made)
		}
		h.Backup(t, s.now.Add(-time.Hour), s.now.Add(-time.Hour+time.Minute), 1000)
		got, r := s.judge(name, false)
		if got.Listing.Requests != 1 || r.State != plugin.Critical && r.State != plugin.OK {
			t.Fatalf("%d objects: %d listing requests, %s", n, got.Listing.Requests, r.FirstLine())
		}
		if backup := got.Requests - got.Escrow.Requests; backup != 4 {
			t.Errorf("%d objects: %d requests for the backup verdict, want 4 (list, statement, signature, first bytes)", n, backup)
		}
	}
	var _ store.Pager = store.NewDir(s.dir)
}
