package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/evidence/evidencetest"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/store"
	"github.com/drym-backup/drym/internal/testutil"
)

func TestMain(m *testing.M) { plugintest.Main(m) }

// defaults parses argv (empty: the flag defaults) as the check would.
func defaults(t testing.TB, argv ...string) args { return plugintest.Defaults[args](t, argv...) }

const where = "s3://backups/drym"

func ok(host string, age time.Duration) verdict {
	return verdict{Host: host, State: plugin.OK, Age: age, Requests: 6,
		Line: fmt.Sprintf("%s: last backup %s ago, 1.2 GiB, signed by the host key (pinned key /etc/drym/keys/%s.pub.asc), encrypted to a key in its escrow", host, plugin.HumanDuration(age), host)}
}

func fleet(vs ...verdict) facts {
	n := 1
	for _, v := range vs {
		n += v.Requests
	}
	inv := make([]string, 0, len(vs))
	for _, v := range vs {
		inv = append(inv, v.Host)
	}
	return facts{Settings: "/etc/drym/monitoring.toml", Where: where, Inventory: inv, InventoryOf: "/etc/drym/hosts",
		Verdicts: vs, Requests: n, Took: 1234 * time.Millisecond}
}

func TestEvaluate(t *testing.T) {
	never := verdict{Host: "db2", State: plugin.Critical, Age: -1,
		Line: "never backed up: " + where + " has no folder for db2: run backup_runner init on db2 (then backup_runner backup)"}
	stale := verdict{Host: "web3", State: plugin.Critical, Age: 60 * time.Hour, Requests: 6,
		Line: "the last backup of web3 was stored 2d12h ago, older than 50h (-c): run backup_runner backup on web3 and check its timer (systemctl status drym-backup.timer)"}
	late := verdict{Host: "web2", State: plugin.Warning, Age: 27 * time.Hour, Requests: 6,
		Line: "the last backup of web2 was stored 1d3h ago, older than 26h (-w): run backup_runner backup on web2 and check its timer (systemctl status drym-backup.timer)"}
	stray := verdict{Host: "lab7", State: plugin.Warning, Age: -1,
		Line: "unmonitored: lab7 has backups in " + where + " but is not in the inventory /etc/drym/hosts: add it there (and give it its services), or remove its backups"}
	slow := verdict{Host: "web9", State: plugin.Unknown, Age: -1, Line: "not judged within -t: raise -t or --concurrency (check_backup_age --host web9 judges it alone)"}
	tests := []struct {
		name  string
		f     facts
		argv  []string
		state plugin.State
		first string
	}{
		{"ok", fleet(ok("web1", 3*time.Hour), ok("web2", 20*time.Hour), ok("db1", 5*time.Hour)), nil, plugin.OK,
			"all 3 hosts backed up: the oldest newest backup is 20h old (web2)"},
		{"critical_mix", fleet(ok("web1", 3*time.Hour), late, stale, never, stray, ok("db1", 5*time.Hour)), nil, plugin.Critical,
			"2 CRITICAL (db2, web3), 2 WARNING (lab7, web2), 2 OK of 6 hosts: see each host below; check_backup_age --host HOST judges one"},
		{"critical_worst_named", fleet(ok("web1", 3*time.Hour), late, stale, never, stray), []string{"--worst", "2"}, plugin.Critical,
			"2 CRITICAL (db2, web3), 2 WARNING (…), 1 OK of 5 hosts"},
		{"unknown_not_reached", fleet(ok("web1", 3*time.Hour), slow, late), nil, plugin.Unknown, "1 UNKNOWN (web9), 1 WARNING (web2), 1 OK of 3 hosts"},
		{"unknown_settings", facts{SettingsErr: errors.New("no monitoring settings /etc/drym/monitoring.toml (write one: see docs/CHECKS.md, or pass --monitoring-config)")}, nil, plugin.Unknown,
			"no monitoring settings /etc/drym/monitoring.toml"},
		{"unknown_denied", facts{Settings: "/etc/drym/monitoring.toml", Where: where,
			ListErr: fmt.Errorf("s3://backups/drym/: ListObjectsV2 denied (AccessDenied): %w", store.ErrDenied)}, nil, plugin.Unknown,
			"cannot list the hosts in s3://backups/drym"},
		{"unknown_list_timeout", facts{Settings: "/etc/drym/monitoring.toml", Where: where,
			ListErr: fmt.Errorf("s3://backups/drym/: ListObjectsV2: timed out: %w", context.DeadlineExceeded)}, []string{"-t", "2"}, plugin.Unknown,
			"timed out after 2s listing the hosts in s3://backups/drym: is the store hung?"},
		{"unknown_inventory", facts{InventoryErr: errors.New("/etc/drym/hosts:3: \"web 4\" is not a host name")}, nil, plugin.Unknown,
			"\"web 4\" is not a host name: correct the inventory"},
		{"critical_no_host", facts{Settings: "/etc/drym/monitoring.toml", Where: where}, nil, plugin.Critical, "no host: s3://backups/drym holds no backup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := evaluate(tt.f, defaults(t, tt.argv...))
			plugintest.Judge(t, tt.name, r, plugintest.Verdict{State: tt.state, First: tt.first})
		})
	}
}

func TestTargets(t *testing.T) {
	got := targets([]string{"a", "b", "c"}, "/etc/drym/hosts", []string{"b", "c", "d"}, where)
	var line []string
	for _, tg := range got {
		s := tg.Host
		if tg.Fixed != nil {
			s += "=" + tg.Fixed.State.String()
		}
		line = append(line, s)
	}
	if strings.Join(line, " ") != "a=CRITICAL b c d=WARNING" {
		t.Fatalf("targets: %v", line)
	}
	if got := targets(nil, "", []string{"x", "y"}, where); len(got) != 2 || got[0].Fixed != nil {
		t.Fatalf("without an inventory: %+v", got)
	}
}

// monitoring writes monitoring settings for srv reached through endpoint.
func monitoring(t *testing.T, srv *testutil.S3Server, endpoint, keys, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "monitoring.toml")
	cfg := fmt.Sprintf("keys = %q\n%s\n[destination]\nurl = \"s3://%s/drym\"\nendpoint = %q\npath_style = true\nread_profile = %q\n\n[escrow]\nurl = \"s3://%s/keys\"\nendpoint = %q\npath_style = true\nread_profile = %q\n",
		keys, extra, srv.Bucket, endpoint, srv.ReadProfile, srv.Bucket, endpoint, srv.ReadProfile)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// One sweep over a mix of hosts on a real S3 server: the counts are right,
// an inventory host without a backup is CRITICAL, a host in the bucket but
// not in the inventory is WARNING; and the requests per host do not grow
// with the objects a host stored (3 or 10,000).
func TestBinaryFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts S3 servers (versitygw and SeaweedFS)")
	}
	testutil.ForEachS3(t, testBinaryFleet)
}

func testBinaryFleet(t *testing.T, srv *testutil.S3Server) {
	proxy := testutil.StartCountingProxy(t, srv.Endpoint)
	keys := t.TempDir()
	sink := evidencetest.S3Sink(srv)
	now := time.Now().UTC()
	// Where the server cannot store objects as of the past (SeaweedFS),
	// every object is stored now: web2 and web3 are then not stale but
	// their statements are gone (CRITICAL), and the crowded host holds
	// 1,000 objects written through S3 rather than 10,000 written into
	// versitygw's directory. The counts, the inventory rules and the
	// request bound are proven on both.
	aged := srv.CanBackdate()
	ago := func(d time.Duration) time.Time {
		if !aged {
			return now
		}
		return now.Add(-d)
	}
	add := func(name string, ages ...time.Duration) *evidencetest.Host {
		h := evidencetest.NewHost(t, name, "drym", "keys", sink)
		h.PinKey(t, keys)
		h.Escrow(t, ago(40*24*time.Hour), ago(40*24*time.Hour))
		for _, a := range ages {
			b := h.Backup(t, ago(a+5*time.Minute), ago(a), 2000)
			if !aged && a > 26*time.Hour && a == ages[len(ages)-1] {
				sink.Delete(t, b.Statement)
			}
		}
		return h
	}
	add("web1", 27*time.Hour, 3*time.Hour)
	add("web2", 30*time.Hour) // WARNING: older than 26h
	add("web3", 70*time.Hour) // CRITICAL: older than 50h
	add("lab7", 2*time.Hour)  // not in the inventory
	add("big1", 48*time.Hour, 2*time.Hour)
	crowd := 10000
	if aged {
		// 10,000 older objects for big1, written straight into
		// versitygw's directory: the sweep must not read them.
		dir := filepath.Join(srv.Dir, "data", srv.Bucket, "drym", "big1")
		for i := range crowd - 6 {
			made := ago(time.Duration(4*24+i) * time.Hour)
			p := filepath.Join(dir, made.Format("20060102T150405Z")+fmt.Sprintf("-%032x.tar.zst.gpg", i))
			if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, made, made)
		}
	} else {
		crowd = 1000
		for i := range crowd - 6 {
			made := now.Add(-time.Duration(4*24+i) * time.Hour)
			sink.Put(t, "drym/big1/"+made.Format("20060102T150405Z")+fmt.Sprintf("-%032x.tar.zst.gpg", i), []byte("old"), now)
		}
	}
	inventory := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(inventory, []byte("# the fleet\nweb1\nweb2\nweb3\nbig1\ndb2   # never set up\n"), 0o644)
	cfg := monitoring(t, srv, proxy.URL, keys, "")
	env := append(srv.Env(), "AWS_CA_BUNDLE=", "DRYM_MONITORING_CONFIG="+cfg)

	proxy.Reset()
	r := plugintest.Run(t, "check_backup_fleet", env, "--inventory", inventory, "-t", "60")
	first, wants := "CRITICAL: 2 CRITICAL (db2, web3), 2 WARNING (lab7, web2), 2 OK of 6 hosts",
		[]string{"'hosts_critical'=2;", "'hosts_warning'=2;", "'hosts_ok'=2;", "'hosts'=6;",
			"CRITICAL db2: never backed up", "WARNING lab7: unmonitored", "CRITICAL web3: the last backup of web3 was stored 2d22h ago"}
	if !aged {
		first, wants = "CRITICAL: 3 CRITICAL (db2, web2, web3), 1 WARNING (lab7), 2 OK of 6 hosts",
			[]string{"'hosts_critical'=3;", "'hosts_warning'=1;", "'hosts_ok'=2;", "'hosts'=6;",
				"CRITICAL db2: never backed up", "WARNING lab7: unmonitored", ".sha256 is missing from"}
	}
	if r.Code != 2 || !strings.HasPrefix(r.First(), first) {
		t.Fatalf("exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range wants {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	per := map[string]int{}
	for _, q := range proxy.Requests() {
		k := q.Key(srv.Bucket)
		switch {
		case strings.HasPrefix(k, "drym/"):
			if host, _, ok := strings.Cut(strings.TrimPrefix(k, "drym/"), "/"); ok {
				per[host]++
			}
		case strings.HasPrefix(k, "keys/drym-escrow-"):
			host := strings.TrimPrefix(k, "keys/drym-escrow-")
			host = host[:strings.IndexByte(host, '-')]
			per[host]++
		}
	}
	t.Logf("requests per host: %v (total %d)", per, proxy.Total())
	if per["web1"] != 6 || per["big1"] != per["web1"] {
		t.Errorf("requests: web1 %d, big1 (%d objects) %d; want 6 each (4 for the backup, 2 for the escrow)", per["web1"], crowd, per["big1"])
	}
	if per["db2"] != 0 || per["lab7"] != 0 {
		t.Errorf("hosts judged without a request cost some: db2 %d, lab7 %d", per["db2"], per["lab7"])
	}

	// One host alone, through check_backup_age --host: the same 6 requests.
	for _, host := range []string{"web1", "big1"} {
		proxy.Reset()
		r := plugintest.Run(t, "check_backup_age", env, "--host", host)
		if r.Code != 0 || proxy.Total() != 6 {
			t.Errorf("check_backup_age --host %s: exit %d, %d requests:\n%s", host, r.Code, proxy.Total(), r.Stdout)
		}
	}

	// --escrow-proof opens each zip. zip1's zip was truncated in the
	// escrow store after it was shipped: its public record still names
	// the right keys, so only opening the zip can tell. web1's escrow
	// opens its backups and stays OK either way.
	bad := evidencetest.NewHost(t, "zip1", "drym", "keys", sink)
	bad.PinKey(t, keys)
	zip := bad.Escrow(t, ago(40*24*time.Hour), ago(40*24*time.Hour))
	bad.Backup(t, ago(time.Hour+5*time.Minute), ago(time.Hour), 2000)
	sink.Put(t, zip, []byte("PK\x03\x04 the first bytes of a zip, and no more"), ago(40*24*time.Hour))
	proofInventory := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(proofInventory, []byte("web1\nzip1\n"), 0o644)
	for _, tc := range []struct {
		flags []string
		code  int
		first string
		line  string
	}{
		{nil, 1, "WARNING: 4 WARNING (big1, lab7, web2, web3), 2 OK of 6 hosts", ""},
		{[]string{"--escrow-proof"}, 2, "CRITICAL: 1 CRITICAL (zip1), 4 WARNING (big1, lab7, web2, web3), 1 OK of 6 hosts", "CRITICAL zip1: "},
	} {
		r := plugintest.Run(t, "check_backup_fleet", env, append([]string{"--inventory", proofInventory, "-t", "60"}, tc.flags...)...)
		if r.Code != tc.code || !strings.HasPrefix(r.First(), tc.first) || !strings.Contains(r.Stdout, tc.line) {
			t.Errorf("check_backup_fleet %v: exit %d, want %d with %q and %q:\n%s%s", tc.flags, r.Code, tc.code, tc.first, tc.line, r.Stdout, r.Stderr)
		}
	}
}

// An endpoint that accepts and never answers: UNKNOWN within -t, for the
// sweep and for one host. Exit 3 alone would also pass for a settings or
// usage error that never reached the store, so each run must also say it
// timed out, end within -t plus a margin for start-up, and have sent the
// hung endpoint at least one request.
func TestBinaryHungEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts S3 servers (versitygw and SeaweedFS)")
	}
	testutil.ForEachS3(t, testBinaryHungEndpoint)
}

func testBinaryHungEndpoint(t *testing.T, srv *testutil.S3Server) {
	const timeout = 2 * time.Second
	// Process start, settings and the final print; generous for a loaded
	// 2-core machine under -race, yet well short of a second -t.
	const slack = time.Second
	proxy := testutil.StartCountingProxy(t, srv.Endpoint)
	proxy.Hang(true)
	cfg := monitoring(t, srv, proxy.URL, t.TempDir(), "")
	env := append(srv.Env(), "AWS_CA_BUNDLE=", "DRYM_MONITORING_CONFIG="+cfg)
	for _, run := range []struct {
		check string
		argv  []string
		// doing is the step the timeout message must name: the first
		// request each check sends.
		doing string
	}{
		{"check_backup_fleet", nil, "listing the hosts in s3://" + srv.Bucket + "/drym"},
		{"check_backup_age", []string{"--host", "web1"}, "listing s3://" + srv.Bucket + "/keys/ for drym-escrow-web1-*.zip"},
		{"check_key_escrow", []string{"--host", "web1"}, "listing s3://" + srv.Bucket + "/keys/ for drym-escrow-web1-*.zip"},
	} {
		proxy.Reset()
		r := plugintest.Run(t, run.check, env, append(run.argv, "-t", "2")...)
		want := "UNKNOWN: timed out after 2s " + run.doing + ": is "
		if r.Code != 3 || !strings.HasPrefix(r.First(), want) {
			t.Errorf("%s: exit %d, want 3 and a first line starting %q:\n%s%s", run.check, r.Code, want, r.Stdout, r.Stderr)
		}
		if r.Took > timeout+slack {
			t.Errorf("%s: took %v with -t 2", run.check, r.Took)
		}
		// The proxy records a request before it hangs it: none means the
		// check gave up (or failed) before it reached the endpoint.
		if reqs := proxy.Requests(); len(reqs) == 0 {
			t.Errorf("%s: the hung endpoint received no request", run.check)
		}
	}
}
