package evidence

import (
	"fmt"

	"github.com/drym-backup/drym/internal/escrow"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/units"
)

// JudgeEscrowProof weighs the escrow against the newest backup (pure): the
// host's newest zip, opened when this user may read it, must hold a key
// every session key packet of the newest backup is addressed to (the
// settings' recipients aside) and, when its secret key is bare, that key
// must really decrypt the backup's session key and first block.
func JudgeEscrowProof(r *plugin.Result, h *Host) {
	e := h.Escrow
	if e == nil {
		r.Raise(plugin.Unknown, "no escrow location in the monitoring settings: add [escrow] url, or run check_key_escrow on the host")
		return
	}
	if !judgeEscrowFound(r, h) || !judgeZipOpened(r, h) {
		return
	}
	if !judgeReach(r, h) {
		return
	}
	if h.Newest == nil {
		r.Raise(plugin.Unknown, fmt.Sprintf("no acceptable backup of %s to prove the escrow against (its backup service says why): %s", h.Host, fixBackup(h.Host)))
		return
	}
	if !judgeHead(r, h) {
		return
	}
	if len(e.EncIDs) == 0 {
		judgeNoRecord(r, h)
		return
	}
	name := h.Host + "/" + h.Newest.Name
	proven := judgeKeysOpen(r, h, name)
	if r.State == plugin.OK {
		r.Summary = fmt.Sprintf("%s: escrow zip %s (%s old) %s the newest backup %s (%s old)", h.Host, e.Zip.Name,
			plugin.Ago(h.Now, e.Zip.ModTime), proven, h.Newest.Name, plugin.Ago(h.Now, h.Newest.ModTime))
	}
	r.Perfdata = append(r.Perfdata,
		plugin.Seconds("zip_age", max(h.Now.Sub(e.Zip.ModTime), 0).Seconds(), plugin.Range{}, plugin.Range{}),
		plugin.Seconds("backup_age", max(h.Now.Sub(h.Newest.ModTime), 0).Seconds(), plugin.Range{}, plugin.Range{}))
}

// judgeZipOpened raises a zip that is damaged, of another host, not what
// its record says, or (unreadable) without a record; false when there is
// nothing to prove with.
func judgeZipOpened(r *plugin.Result, h *Host) bool {
	e := h.Escrow
	fix := fixEscrow(h.Host)
	if e.Opened == nil {
		if e.OpenErr != nil || len(e.EncIDs) == 0 {
			judgeNoRecord(r, h)
			return false
		}
		r.Addf("escrow zip %s: not readable by this user (%v): key IDs as its public record says, decryption not tried", e.Zip.Name, e.Unreadable)
		return true
	}
	z := e.Opened
	switch {
	case z.Host != h.Host:
		r.Raise(plugin.Critical, fmt.Sprintf("escrow zip %s is for host %s, not %s: it cannot restore %s: %s", e.Zip.Name, z.Host, h.Host, h.Host, fix))
		return false
	case e.Record != nil && e.Record.ZipSHA256 != e.SHA256:
		r.Raise(plugin.Critical, fmt.Sprintf("the record %s does not describe the zip beside it (sha256 %.16s…, the zip has %.16s…): one of them was replaced: %s and find out who wrote them",
			escrow.RecordName(e.Zip.Name), e.Record.ZipSHA256, e.SHA256, fix))
	}
	r.Addf("escrow zip %s: opened, intact (%s, every member checked), key %s", e.Zip.Name, units.Bytes(e.Zip.Size), z.Fingerprint)
	return true
}

// judgeKeysOpen raises a newest backup the escrowed key cannot open and
// returns what was proven, for the OK summary.
func judgeKeysOpen(r *plugin.Result, h *Host, name string) string {
	e := h.Escrow
	fix := fixEscrow(h.Host)
	in := Missing(h.KeyIDs, Missing(h.KeyIDs, e.EncIDs))
	others := Missing(h.KeyIDs, e.EncIDs)
	if len(in) == 0 {
		r.Raise(plugin.Critical, fmt.Sprintf("the escrowed key cannot open the newest backup %s: it is encrypted to %s, escrow zip %s holds %s (the host key rotated, or an encryption subkey was added, without a new escrow): %s",
			name, FormatIDs(h.KeyIDs), e.Zip.Name, FormatIDs(e.EncIDs), fix))
		return ""
	}
	if len(others) > 0 {
		if e.Opened != nil && len(e.Opened.Config.Recipients) == 0 {
			r.Raise(plugin.Warning, fmt.Sprintf("the newest backup %s is also encrypted to %s, neither escrowed nor a recipient in the escrowed settings: find out why, then %s",
				name, FormatIDs(others), fix))
		} else {
			r.Addf("also encrypted to %s (extra recipients)", FormatIDs(others))
		}
	}
	switch {
	case e.Secret != nil && h.OpenErr != nil:
		r.Raise(plugin.Critical, fmt.Sprintf("the escrowed key does not open the newest backup %s: %v: %s", name, h.OpenErr, fix))
		return ""
	case e.Secret != nil:
		r.Addf("opened: escrowed key %s decrypts the session key of %s, and the first block passes its check", FormatID(h.OpenedBy), name)
		return "opens"
	case e.Opened != nil:
		r.Addf("the escrowed secret key is encrypted to the team: key IDs compared, decryption not tried")
		return "holds the keys (team-encrypted secret: decryption not tried) of"
	}
	return "is recorded as holding the keys (zip not opened) of"
}
