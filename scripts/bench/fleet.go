package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/statement"
)

// The fleet sweep's figures: check_backup_fleet over 100 and 1,000 hosts
// with a few backups each (one host of the 1,000 with 10,000 objects),
// against versitygw through the counting proxy.
const (
	fleetBackups  = 3     // real backups per host, a day apart
	bigHostObjs   = 10000 // objects of the one big host
	fleetTimeout  = "60"  // -t of the sweep (the target is far below it)
	fleetParallel = "32"  // --concurrency
)

// fleet stocks the bucket (straight into versitygw's posix directory, with
// the stored times set on the files) and measures the sweeps.
func (b *bench) fleet() error {
	keys := filepath.Join(b.dir, "fleet-keys")
	os.RemoveAll(keys)
	os.MkdirAll(keys, 0o755)
	for _, n := range []int{100, 1000} {
		prefix := fmt.Sprintf("fleet%d", n)
		fmt.Printf("fleet of %d hosts: stocking s3://%s/%s\n", n, s3Bucket, prefix)
		t := time.Now()
		if err := b.stockFleet(prefix, keys, n); err != nil {
			return err
		}
		fmt.Printf("  stocked in %s\n", time.Since(t).Round(time.Millisecond))
		if err := b.sweepFleet(prefix, keys, n); err != nil {
			return err
		}
	}
	return b.bigHost(keys)
}

// fleetHost is the name of host i of a fleet; host 0 of the 1,000 is the
// one with 10,000 objects.
func fleetHost(i int) string { return fmt.Sprintf("host%04d", i) }

func (b *bench) bucketDir(key string) string {
	return filepath.Join(b.dir, "s3-versitygw", "data", s3Bucket, filepath.FromSlash(key))
}

// stockFleet writes n hosts with fleetBackups signed backups each, the
// newest 3 hours old, and pins their keys.
func (b *bench) stockFleet(prefix, keys string, n int) error {
	now := time.Now().UTC()
	for i := range n {
		host := fleetHost(i)
		k, err := crypt.Generate(host)
		if err != nil {
			return err
		}
		pub, err := crypt.ArmorPublic(k)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(keys, host+".pub.asc"), pub, 0o644); err != nil {
			return err
		}
		for d := range fleetBackups {
			stored := now.Add(-3*time.Hour - time.Duration(d)*24*time.Hour)
			if err := b.putBackup(prefix+"/"+host, host, k, stored.Add(-5*time.Minute), stored); err != nil {
				return err
			}
		}
		if prefix == "fleet1000" && i == 0 {
			if err := b.fillOld(prefix+"/"+host, bigHostObjs-3*fleetBackups, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// putBackup writes one backup as the runner stores it: the object (a few
// KiB encrypted to the host key), its statement and the signature.
func (b *bench) putBackup(folder, host string, k *openpgp.Entity, made, stored time.Time) error {
	var obj bytes.Buffer
	w, err := crypt.Encrypt(&obj, []*openpgp.Entity{k})
	if err != nil {
		return err
	}
	payload := make([]byte, 4096)
	rand.Read(payload)
	w.Write(payload)
	if err := w.Close(); err != nil {
		return err
	}
	var r [16]byte
	rand.Read(r[:])
	name := made.Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:]) + ".tar.zst.gpg"
	sum := sha256.Sum256(obj.Bytes())
	st := statement.Statement{Host: host, Object: name, Size: int64(obj.Len()), SHA256: hex.EncodeToString(sum[:])}.Marshal()
	sig, err := statement.Sign(st, k)
	if err != nil {
		return err
	}
	for suffix, data := range map[string][]byte{"": obj.Bytes(), statement.SidecarSuffix: st, statement.SignatureSuffix: sig} {
		if err := writeStored(b.bucketDir(folder+"/"+name+suffix), data, stored); err != nil {
			return err
		}
	}
	return nil
}

// fillOld writes n old backup-named objects (an hour apart, the newest 30
// days old: older than every real backup): the sweep must never read them.
func (b *bench) fillOld(folder string, n int, now time.Time) error {
	for i := range n {
		t := now.Add(-30*24*time.Hour - time.Duration(n-i)*time.Hour)
		name := fmt.Sprintf("%s-%032x.tar.zst.gpg", t.Format("20060102T150405Z"), i)
		if err := writeStored(b.bucketDir(folder+"/"+name), []byte("old"), t); err != nil {
			return err
		}
	}
	return nil
}

func writeStored(path string, data []byte, at time.Time) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Chtimes(path, at, at)
}

// monitoringConfig writes the monitoring settings of a fleet prefix,
// reaching versitygw through the counting proxy.
func (b *bench) monitoringConfig(prefix, keys string) (string, error) {
	p := filepath.Join(b.dir, "monitoring-"+prefix+".toml")
	cfg := fmt.Sprintf("keys = %q\n\n[destination]\nurl = \"s3://%s/%s\"\nendpoint = %q\nregion = \"us-east-1\"\npath_style = true\n",
		keys, s3Bucket, prefix, b.s3.proxy)
	return p, os.WriteFile(p, []byte(cfg), 0o644)
}

func (b *bench) resetRequests() {
	b.s3.requests.Store(0)
	b.s3.mu.Lock()
	b.s3.reqLog = nil
	b.s3.mu.Unlock()
}

// perHost counts the logged requests about each host's folder.
func (b *bench) perHost(prefix string) map[string]int {
	b.s3.mu.Lock()
	defer b.s3.mu.Unlock()
	per := map[string]int{}
	for _, l := range b.s3.reqLog {
		// "GET /bucket/prefix/host/…" or a listing "GET /bucket?…prefix=prefix%2Fhost%2F…"
		l = strings.ReplaceAll(l, "%2F", "/")
		_, rest, ok := strings.Cut(l, prefix+"/")
		if !ok {
			continue
		}
		if host, _, ok := strings.Cut(rest, "/"); ok && strings.HasPrefix(host, "host") {
			per[host]++
		}
	}
	return per
}

// sweepFleet runs check_backup_fleet over the fleet (best of b.runs) and
// adds its rows.
func (b *bench) sweepFleet(prefix, keys string, n int) error {
	cfg, err := b.monitoringConfig(prefix, keys)
	if err != nil {
		return err
	}
	var best time.Duration
	var rss int64
	var first string
	var perHost map[string]int
	var total int64
	for i := range b.runs {
		b.resetRequests()
		m, err := b.measure(b.s3Env(), b.binary("check_backup_fleet"), "--monitoring-config", cfg, "-t", fleetTimeout, "--concurrency", fleetParallel)
		d, kb := m.wall, m.rssKB
		if err != nil && !strings.Contains(err.Error(), "exit status") {
			return err
		}
		if i == 0 || d < best {
			best = d
		}
		rss = max(rss, kb)
		total, perHost = b.s3.requests.Load(), b.perHost(prefix)
		out, _ := b.runEnv(b.s3Env(), b.binary("check_backup_fleet"), "--monitoring-config", cfg, "-t", fleetTimeout, "--concurrency", fleetParallel)
		first, _, _ = strings.Cut(string(out), "\n")
		fmt.Printf("  run %d: %s, %d MiB RSS, %d requests\n", i+1, secs(d), kb>>10, total)
	}
	most := 0
	for _, c := range perHost {
		most = max(most, c)
	}
	b.note("check_backup_fleet over %d hosts: %s", n, first)
	target, ok := "—", true
	if n == 1000 {
		target, ok = "≤ 10 s on 2 cores", best <= 10*time.Second
	}
	b.add(row{fmt.Sprintf("check_backup_fleet, %d hosts: wall time", n), secs(best), "—", "—", target, verdict(ok)})
	b.add(row{fmt.Sprintf("check_backup_fleet, %d hosts: requests per host (most)", n), fmt.Sprintf("%d (%d in all)", most, total),
		"—", "—", "≤ 4", verdict(most <= 4)})
	b.add(row{fmt.Sprintf("check_backup_fleet, %d hosts: peak RSS", n), fmt.Sprintf("%.1f MiB", float64(rss)/1024), "—", "—",
		"≤ 64 MiB", verdict(rss > 0 && rss <= 64<<10)})
	return nil
}

// bigHost compares one host's requests with 3 and with 10,000 objects
// stored (check_backup_age --host, the storage-side verdict alone).
func (b *bench) bigHost(keys string) error {
	cfg, err := b.monitoringConfig("fleet1000", keys)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for _, host := range []string{fleetHost(1), fleetHost(0)} {
		b.resetRequests()
		out, err := b.runEnv(b.s3Env(), b.binary("check_backup_age"), "--monitoring-config", cfg, "--host", host)
		if err != nil && !strings.Contains(err.Error(), "exit status") {
			return err
		}
		counts[host] = b.s3.requests.Load()
		first, _, _ := strings.Cut(string(out), "\n")
		b.note("check_backup_age --host %s: %s (%d requests)", host, first, counts[host])
	}
	few, many := counts[fleetHost(1)], counts[fleetHost(0)]
	b.add(row{"check_backup_age --host: requests at 9 / 10,000 objects", fmt.Sprintf("%d / %d", few, many), "same count, ≤ 4",
		fmt.Sprintf("%.2f×", float64(many)/float64(max(few, 1))), "1.00, ≤ 4", verdict(few == many && many <= 4)})
	return nil
}
