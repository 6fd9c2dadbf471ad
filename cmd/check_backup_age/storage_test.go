package main

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/store"
)

const (
	pinned  = "pinned key /etc/drym/keys/web1.pub.asc"
	fpWeb1  = "3F2A9C0D11B24E6F8A7B5C4D3E2F1A0B99887766"
	escZip  = "drym-escrow-web1-3F2A9C0D11B24E6F-20260301.zip"
	keyWeb1 = 0x8A7B5C4D3E2F1A0B
)

// sObj is a backup object as a listing shows it, made (named) at made and
// stored at stored, with its statement and signature.
func sObj(made, stored time.Time, size int64) evidence.Object {
	return evidence.Object{
		Info: store.Info{Name: made.UTC().Format("20060102T150405Z") + "-0123456789abcdef0123456789abcdef.tar.zst.gpg", Size: size, ModTime: stored},
		Made: made, StatementSize: 150, SignatureSize: 250,
	}
}

// signed is the statement of o, signed by the pinned host key.
func signed(o evidence.Object) evidence.Statement {
	return evidence.Statement{Object: o.Name, KeysFrom: pinned, Signer: fpWeb1,
		Parsed: statement.Statement{Host: "web1", Object: o.Name, Size: o.Size, SHA256: sha}}
}

// healthy is web1 as the monitoring server sees it 3h after a good backup:
// the newest signed, encrypted to the escrowed key, one a day before it.
func healthy() *evidence.Host {
	window := 74 * time.Hour
	newest := sObj(now.Add(-3*time.Hour-5*time.Minute), now.Add(-3*time.Hour), 1288490188)
	prev := sObj(now.Add(-27*time.Hour-5*time.Minute), now.Add(-27*time.Hour), 1288000000)
	c := evidence.Candidate{Object: newest, Statement: signed(newest)}
	return &evidence.Host{
		Host: "web1", Where: "s3://backups/drym", Now: now, Window: window,
		Listing:  evidence.Listing{Start: now.Add(-window), Backups: []evidence.Object{prev, newest}, Requests: 1},
		Examined: []evidence.Candidate{c}, Newest: &c, Previous: &prev,
		KeyIDs: []uint64{keyWeb1}, KeysFrom: pinned, Requests: 6,
		Escrow: &evidence.Escrow{Where: "s3://escrow/keys", Zip: store.Info{Name: escZip, Size: 20480, ModTime: now.Add(-9 * 24 * time.Hour)},
			Record: &escrow.Record{Zip: escZip}, EncIDs: []uint64{keyWeb1}, Requests: 2},
	}
}

func hostWith(mod func(h *evidence.Host)) *evidence.Host {
	h := healthy()
	mod(h)
	return h
}

// aged makes the newest backup one stored d ago (its run started 5m before).
func aged(h *evidence.Host, d time.Duration) {
	o := sObj(now.Add(-d-5*time.Minute), now.Add(-d), 1288490188)
	c := evidence.Candidate{Object: o, Statement: signed(o)}
	h.Listing.Backups = []evidence.Object{*h.Previous, o}
	h.Examined, h.Newest = []evidence.Candidate{c}, &c
	h.Previous.ModTime, h.Previous.Made = o.ModTime.Add(-24*time.Hour), o.Made.Add(-24*time.Hour)
	h.Previous.Name = h.Previous.Made.UTC().Format("20060102T150405Z") + "-0123456789abcdef0123456789abcdef.tar.zst.gpg"
}

// refuse makes the newest object a refused candidate, with an older good
// backup accepted.
func refuse(h *evidence.Host, c evidence.Candidate) {
	old := sObj(now.Add(-30*time.Hour), now.Add(-30*time.Hour+time.Minute), 1288000000)
	good := evidence.Candidate{Object: old, Statement: signed(old)}
	h.Listing.Backups = []evidence.Object{old, c.Object}
	h.Examined = []evidence.Candidate{c, good}
	h.Newest, h.Previous = &good, nil
}

func TestEvaluateStorage(t *testing.T) {
	fresh := sObj(now.Add(-2*time.Hour), now.Add(-2*time.Hour+time.Minute), 1288490188)
	future := sObj(now.Add(400*24*time.Hour), now.Add(-time.Hour), 4096)
	tests := []struct {
		name  string
		h     *evidence.Host
		argv  []string
		state plugin.State
		first string
	}{
		{"ok_storage", healthy(), nil, plugin.OK,
			"web1: last backup 3h ago, 1.2 GiB, signed by the host key (pinned key /etc/drym/keys/web1.pub.asc), encrypted to a key in its escrow"},
		{"ok_storage_signature_unchecked", hostWith(func(h *evidence.Host) {
			h.KeysFrom, h.Escrow = "", nil
			h.Newest.Statement.Signer, h.Newest.Statement.KeysFrom = "", ""
		}), nil, plugin.OK, "signature not checked (no host key known: pin one in the keys directory or give an escrow location)"},
		{"warning_storage_age", hostWith(func(h *evidence.Host) { aged(h, 27*time.Hour) }), nil, plugin.Warning,
			"the last backup of web1 was stored 1d3h ago, older than 26h (-w): run backup_runner backup on web1"},
		{"critical_storage_age", hostWith(func(h *evidence.Host) { aged(h, 51*time.Hour) }), nil, plugin.Critical,
			"older than 50h (-c)"},
		{"critical_storage_stale", hostWith(func(h *evidence.Host) {
			old := sObj(now.Add(-12*24*time.Hour), now.Add(-12*24*time.Hour+time.Minute), 1288000000)
			h.Listing.Backups, h.Examined, h.Newest, h.Previous = nil, nil, nil, nil
			h.Listing.Before, h.Listing.Requests = &old, 2
		}), nil, plugin.Critical, "no backup of web1 in the last 3d2h: the newest found, 20260226T120000Z-0123456789abcdef0123456789abcdef.tar.zst.gpg, was stored 11d23h ago"},
		{"critical_storage_never", hostWith(func(h *evidence.Host) {
			h.Listing.Backups, h.Examined, h.Newest, h.Previous = nil, nil, nil, nil
			h.Listing.Never, h.Listing.Requests = true, 3
		}), nil, plugin.Critical, "never backed up: s3://backups/drym holds no backup of web1: run backup_runner init on web1"},
		{"critical_storage_empty", hostWith(func(h *evidence.Host) {
			e := sObj(now.Add(-time.Hour), now.Add(-time.Hour+time.Minute), 0)
			refuse(h, evidence.Candidate{Object: e, Refused: "empty"})
		}), nil, plugin.Critical, "the newest object web1/20260310T110000Z-0123456789abcdef0123456789abcdef.tar.zst.gpg in s3://backups/drym is empty (0 bytes)"},
		{"critical_storage_no_statement", hostWith(func(h *evidence.Host) {
			o := sObj(now.Add(-time.Hour), now.Add(-time.Hour+time.Minute), 1288490188)
			o.StatementSize = -1
			refuse(h, evidence.Candidate{Object: o, Refused: "no statement"})
		}), nil, plugin.Critical, "the statement web1/20260310T110000Z-0123456789abcdef0123456789abcdef.tar.zst.gpg.sha256 is missing from s3://backups/drym"},
		{"critical_storage_size", hostWith(func(h *evidence.Host) {
			o := sObj(now.Add(-time.Hour), now.Add(-time.Hour+time.Minute), 1000)
			st := signed(o)
			st.Parsed.Size = 1288490188
			st.ParseErr = st.Parsed.Check("web1", 1000)
			refuse(h, evidence.Candidate{Object: o, Statement: st})
		}), nil, plugin.Critical, "cannot vouch for the object: the statement does not match the object: it says 1288490188 bytes, the object has 1000"},
		{"critical_storage_unsigned", hostWith(func(h *evidence.Host) {
			o := sObj(now.Add(-time.Hour), now.Add(-time.Hour+time.Minute), 1288490188)
			o.SignatureSize = -1
			refuse(h, evidence.Candidate{Object: o, Refused: "unsigned"})
		}), nil, plugin.Critical, ".tar.zst.gpg.sig though the host key is known (pinned key /etc/drym/keys/web1.pub.asc)"},
		{"critical_storage_foreign_signature", hostWith(func(h *evidence.Host) {
			st := signed(fresh)
			st.Signer, st.VerifyErr = "", statement.ErrOtherKey
			refuse(h, evidence.Candidate{Object: fresh, Statement: st})
		}), nil, plugin.Critical, ".sig is signed by a key that is not the host key (pinned key /etc/drym/keys/web1.pub.asc)"},
		{"warning_storage_future", hostWith(func(h *evidence.Host) {
			h.Listing.Future, h.Listing.FutureCount = []evidence.Object{future}, 1
		}), nil, plugin.Warning, "1 object(s) in s3://backups/drym/web1 are named in the future or after they were stored (first: 20270414T120000Z-0123456789abcdef0123456789abcdef.tar.zst.gpg): planted"},
		{"critical_storage_future_and_stale", hostWith(func(h *evidence.Host) {
			h.Listing.Future, h.Listing.FutureCount = []evidence.Object{future}, 1
			aged(h, 60*time.Hour)
		}), nil, plugin.Critical, "the last backup of web1 was stored 2d12h ago, older than 50h (-c)"},
		{"warning_storage_shrank", hostWith(func(h *evidence.Host) { h.Newest.Size = 100 << 20 }), nil, plugin.Warning,
			"the newest backup of web1 is 92% smaller than the one before (1.2 GiB → 100.0 MiB, over --shrink-warning 50%)"},
		{"critical_storage_not_in_escrow", hostWith(func(h *evidence.Host) { h.KeyIDs = []uint64{0xD00DFEED01234567} }), nil, plugin.Critical,
			"the newest backup web1/20260310T085500Z-0123456789abcdef0123456789abcdef.tar.zst.gpg is encrypted to no key in web1's escrow (it is for D00DFEED01234567; escrow zip " + escZip + " holds 8A7B5C4D3E2F1A0B)"},
		{"critical_storage_no_escrow", hostWith(func(h *evidence.Host) { h.Escrow = &evidence.Escrow{Where: "s3://escrow/keys", None: true} }), nil, plugin.Critical,
			"no escrow zip for web1 in s3://escrow/keys: the host key exists only on web1: run backup_runner escrow on web1"},
		{"unknown_storage_no_record", hostWith(func(h *evidence.Host) {
			h.Escrow.Record, h.Escrow.EncIDs, h.Escrow.RecordErr = nil, nil, fmt.Errorf("x: %w", store.ErrNotFound)
		}), nil, plugin.Unknown, "no public record " + escZip + ".json beside web1's escrow zip in s3://escrow/keys"},
		{"critical_storage_not_openpgp", hostWith(func(h *evidence.Host) {
			h.KeyIDs, h.ParseErr = nil, errors.New("not an OpenPGP message: openpgp: invalid data: tag byte does not have MSB set")
		}), nil, plugin.Critical, "is not an OpenPGP message encrypted to a key"},
		{"unknown_storage_unreachable", hostWith(func(h *evidence.Host) {
			h.ListErr = errors.New("s3://backups/drym/web1/: ListObjectsV2: cannot reach the endpoint: dial tcp 192.0.2.1:443: connect: connection refused")
		}), nil, plugin.Unknown, "cannot list the backups of web1 in s3://backups/drym"},
		{"unknown_storage_denied", hostWith(func(h *evidence.Host) {
			h.ListErr = fmt.Errorf("s3://backups/drym/web1/: ListObjectsV2 denied (AccessDenied): %w", store.ErrDenied)
		}), nil, plugin.Unknown, "check read_profile in the monitoring settings and that the read-only policy allows s3:ListBucket"},
		{"unknown_storage_truncated", hostWith(func(h *evidence.Host) { h.Listing.Truncated = true }), nil, plugin.Unknown,
			"more than 3000 objects in s3://backups/drym/web1 are named within the last 3d2h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := evaluateStorage(tt.h, defaults(t, append([]string{"--host", "web1"}, tt.argv...)...), "/etc/drym/monitoring.toml")
			plugintest.Judge(t, tt.name, r, plugintest.Verdict{State: tt.state, First: tt.first})
		})
	}
}
