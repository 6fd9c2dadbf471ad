package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/plugin/plugintest"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/store"
)

const keyEsc = 0x8A7B5C4D3E2F1A0B

// proven is web1 as the office sees it: its newest zip opened, holding the
// bare secret key that decrypted the newest backup's session key.
func proven() *evidence.Host {
	o := evidence.Object{Info: store.Info{Name: objName, Size: 1288490188, ModTime: now.Add(-11 * time.Hour)},
		Made: now.Add(-11*time.Hour - 5*time.Minute), StatementSize: 150, SignatureSize: 250}
	c := evidence.Candidate{Object: o, Statement: evidence.Statement{Object: objName, KeysFrom: "the public key in escrow zip " + zipName, Signer: fpHost,
		Parsed: statement.Statement{Host: "web1", Object: objName, Size: o.Size, SHA256: strings.Repeat("ab", 32)}}}
	return &evidence.Host{Host: "web1", Where: "s3://backups/drym", Now: now, Window: proofWindow,
		Listing: evidence.Listing{Backups: []evidence.Object{o}, Requests: 1}, Examined: []evidence.Candidate{c}, Newest: &c,
		KeyIDs: []uint64{keyEsc}, OpenedBy: keyEsc, KeysFrom: c.Statement.KeysFrom, Requests: 7,
		Escrow: &evidence.Escrow{Where: "s3://escrow/keys", Zip: store.Info{Name: zipName, Size: 20480, ModTime: now.Add(-9 * 24 * time.Hour)},
			Record: &escrow.Record{Zip: zipName, ZipSHA256: strings.Repeat("5", 64)}, SHA256: strings.Repeat("5", 64),
			Opened: &escrow.Facts{Host: "web1", Fingerprint: fpHost, Config: &config.Config{Host: "web1"}},
			Secret: &openpgp.Entity{}, EncIDs: []uint64{keyEsc}, Requests: 3}}
}

func provenWith(mod func(h *evidence.Host)) *evidence.Host {
	h := proven()
	mod(h)
	return h
}

func TestEvaluateProof(t *testing.T) {
	tests := []struct {
		name  string
		h     *evidence.Host
		state plugin.State
		first string
	}{
		{"ok_host_opens", proven(), plugin.OK,
			"web1: escrow zip " + zipName + " (9d old) opens the newest backup " + objName + " (11h old)"},
		{"ok_host_record_only", provenWith(func(h *evidence.Host) {
			h.Escrow.Opened, h.Escrow.Secret, h.Escrow.SHA256 = nil, nil, ""
			h.Escrow.Unreadable = fmt.Errorf("s3://escrow/keys/%s: GetObject denied (AccessDenied): %w", zipName, store.ErrDenied)
		}), plugin.OK, "is recorded as holding the keys (zip not opened) of the newest backup"},
		{"critical_host_key_rotated", provenWith(func(h *evidence.Host) { h.KeyIDs = []uint64{0xD00DFEED01234567} }), plugin.Critical,
			"the escrowed key cannot open the newest backup web1/" + objName + ": it is encrypted to D00DFEED01234567, escrow zip " + zipName + " holds 8A7B5C4D3E2F1A0B (the host key rotated, or an encryption subkey was added, without a new escrow): run backup_runner escrow on web1"},
		{"critical_host_does_not_decrypt", provenWith(func(h *evidence.Host) {
			h.OpenErr = fmt.Errorf("%w: the session key of packet 8A7B5C4D3E2F1A0B decrypts but its first block fails the quick check (wrong key, or damaged data)", evidence.ErrCannotOpen)
		}), plugin.Critical, "the escrowed key does not open the newest backup web1/" + objName},
		{"warning_host_unknown_recipient", provenWith(func(h *evidence.Host) { h.KeyIDs = []uint64{keyEsc, 0x1111222233334444} }), plugin.Warning,
			"is also encrypted to 1111222233334444, neither escrowed nor a recipient in the escrowed settings"},
		{"critical_host_no_zip", provenWith(func(h *evidence.Host) { h.Escrow = &evidence.Escrow{Where: "s3://escrow/keys", None: true} }), plugin.Critical,
			"no escrow zip for web1 in s3://escrow/keys: the host key exists only on web1: run backup_runner escrow on web1"},
		{"critical_host_broken_zip", provenWith(func(h *evidence.Host) {
			h.Escrow.Opened, h.Escrow.Secret, h.Escrow.EncIDs = nil, nil, nil
			h.Escrow.OpenErr = escrow.Broken("member \"drym-web1/restore.sh\" fails its CRC check: the zip is damaged")
		}), plugin.Critical, "escrow zip " + zipName + " in s3://escrow/keys is unusable: member \"drym-web1/restore.sh\" fails its CRC check"},
		{"critical_host_record_not_the_zip", provenWith(func(h *evidence.Host) { h.Escrow.SHA256 = strings.Repeat("a", 64) }), plugin.Critical,
			"the record " + zipName + ".json does not describe the zip beside it"},
		{"unknown_host_no_record", provenWith(func(h *evidence.Host) {
			h.Escrow.Opened, h.Escrow.Secret, h.Escrow.EncIDs, h.Escrow.Record = nil, nil, nil, nil
			h.Escrow.Unreadable = &fs.PathError{Op: "open", Path: "/srv/escrow/" + zipName, Err: fs.ErrPermission}
			h.Escrow.RecordErr = fmt.Errorf("x: %w", store.ErrNotFound)
		}), plugin.Unknown, "no public record " + zipName + ".json beside web1's escrow zip"},
		{"unknown_host_no_backup", provenWith(func(h *evidence.Host) {
			h.Newest, h.Examined, h.Listing.Backups = nil, nil, nil
			h.Listing.Never = true
		}), plugin.Unknown, "no acceptable backup of web1 to prove the escrow against"},
		{"unknown_host_unreachable", provenWith(func(h *evidence.Host) {
			h.ListErr = errors.New("s3://backups/drym/web1/: ListObjectsV2: timed out: context deadline exceeded")
		}), plugin.Unknown, "cannot list the backups of web1 in s3://backups/drym"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := evaluateProof(tt.h, "/etc/drym/monitoring.toml")
			plugintest.Judge(t, tt.name, r, plugintest.Verdict{State: tt.state, First: tt.first})
		})
	}
}
