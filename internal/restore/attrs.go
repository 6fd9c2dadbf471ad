package restore

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/archive"
)

// xattrCaps is the file capability attribute: a privilege like setuid, so
// it is held back until the backup is proven, and set after chown (which
// clears it).
const xattrCaps = "security.capability"

// privileged reports an attribute only root may set (trusted.* needs
// CAP_SYS_ADMIN; security.* labels and capabilities need privileges too).
func privileged(name string) bool {
	return strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")
}

// ids resolves owner names to ids on this host, as GNU tar does: by name
// when the name exists here (ids differ between hosts; names are what the
// admin meant), else by number.
type ids struct {
	uids, gids map[string]int
}

func newIDs() *ids { return &ids{uids: map[string]int{}, gids: map[string]int{}} }

func (x *ids) user(name string) (uint32, bool) {
	id, ok := x.uids[name]
	if !ok {
		id = -1
		if u, err := user.Lookup(name); err == nil {
			id, _ = strconv.Atoi(u.Uid)
		}
		x.uids[name] = id
	}
	return uint32(id), id >= 0
}

func (x *ids) group(name string) (uint32, bool) {
	id, ok := x.gids[name]
	if !ok {
		id = -1
		if g, err := user.LookupGroup(name); err == nil {
			id, _ = strconv.Atoi(g.Gid)
		}
		x.gids[name] = id
	}
	return uint32(id), id >= 0
}

// owner resolves a member's owner (uname/gname first, else the numbers).
func (x *ids) owner(uname, gname string, uid, gid int) (int, int) {
	if uname != "" {
		if id, ok := x.user(uname); ok {
			uid = int(id)
		}
	}
	if gname != "" {
		if id, ok := x.group(gname); ok {
			gid = int(id)
		}
	}
	return uid, gid
}

// attrJob is what to set on one path, and how.
type attrJob struct {
	name  string // for messages
	attrs archive.Attrs
	// set writes one extended attribute on the path.
	set func(attr string, value []byte) error
	// remove deletes one (only for the ACLs of a directory that existed).
	remove func(attr string) error
	// root: privileged attributes are set too; else they are counted in
	// unpriv and left.
	root bool
	// heldCaps: security.capability is not set here but returned, to be
	// set once the backup is proven (after chown).
	heldCaps bool
}

// attrResult is what applying an attrJob did.
type attrResult struct {
	caps     string // the held-back capability value, if any
	aclFail  bool   // the access ACL could not be applied
	groupCls uint16 // the ACL's owning group class, for the mode
	problems []string
	unpriv   int64
}

// apply sets extended attributes, then the access and default ACLs (in the
// kernel's binary form, ids resolved by name as GNU tar does).
func (j *attrJob) apply(x *ids) attrResult {
	var r attrResult
	for _, xa := range j.attrs.Xattrs {
		switch {
		case xa.Name == xattrCaps && j.heldCaps:
			if j.root {
				r.caps = xa.Value
			} else {
				r.unpriv++
			}
			continue
		case privileged(xa.Name) && !j.root:
			r.unpriv++
			continue
		}
		if err := j.set(xa.Name, []byte(xa.Value)); err != nil {
			r.problems = append(r.problems, fmt.Sprintf("extended attribute %s not restored: %v", xa.Name, xattrErr(err)))
		}
	}
	if j.attrs.ACL != "" {
		acl, err := archive.ParseACLText(j.attrs.ACL)
		if err == nil {
			r.groupCls = acl.GroupClass()
			var b []byte
			if b, err = acl.EncodeXattr(x.user, x.group); err == nil {
				err = j.set(archive.XattrACLAccess, b)
				err = xattrErr(err)
			}
		}
		if err != nil {
			r.aclFail = true
			r.problems = append(r.problems, fmt.Sprintf("ACL not restored: %v; group permissions set to what the ACL gave the owning group (%s), never more", err, archive.PermText(r.groupCls)))
		}
	} else if j.remove != nil {
		if err := j.remove(archive.XattrACLAccess); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			r.problems = append(r.problems, fmt.Sprintf("ACL not removed: %v", err))
		}
	}
	if j.attrs.DefaultACL != "" {
		acl, err := archive.ParseACLText(j.attrs.DefaultACL)
		if err == nil {
			var b []byte
			if b, err = acl.EncodeXattr(x.user, x.group); err == nil {
				err = xattrErr(j.set(archive.XattrACLDefault, b))
			}
		}
		if err != nil {
			r.problems = append(r.problems, fmt.Sprintf("default ACL not restored: %v", err))
		}
	} else if j.remove != nil {
		if err := j.remove(archive.XattrACLDefault); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			r.problems = append(r.problems, fmt.Sprintf("default ACL not removed: %v", err))
		}
	}
	return r
}

// xattrErr words the errors a user can act on.
func xattrErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOTSUP):
		return errors.New("the file system of the restore directory does not support it")
	case errors.Is(err, unix.EPERM):
		return errors.New("operation not permitted (run as root)")
	}
	return err
}

// modeFor is the permission bits to set: the archived ones, with the group
// bits narrowed to the ACL's owning group class when the ACL could not be
// applied (the archived group bits are the ACL's mask, which may grant
// more).
func modeFor(mode int64, r *attrResult) uint32 {
	m := uint32(mode & 0o7777)
	if r.aclFail {
		m = m&^0o070 | uint32(r.groupCls&7)<<3
	}
	return m
}

func timeText(sec int64) string {
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}
