package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// POSIX ACLs travel in two forms. The kernel keeps them in the extended
// attributes system.posix_acl_access and system.posix_acl_default, in a
// binary form with numeric ids; GNU tar (--acls) archives them as the PAX
// records SCHILY.acl.access and SCHILY.acl.default in the text form of
// acl_to_text(3): one entry a line, "user::rw-", "user:alice:r--",
// "group::r-x", "group:adm:r--", "mask::r--", "other::---", each line ending
// in a newline, named entries by name where the host knows the id and by
// number where it does not. drym writes exactly that text, so that stock
// `tar --acls -x` restores the ACLs too, and restores names as GNU tar
// does: by name on the restoring host, else by number.

// Extended attribute names of POSIX ACLs.
const (
	XattrACLAccess  = "system.posix_acl_access"
	XattrACLDefault = "system.posix_acl_default"
)

// PAX record names (GNU tar's, taken from star).
const (
	PAXXattr      = "SCHILY.xattr."
	PAXACLAccess  = "SCHILY.acl.access"
	PAXACLDefault = "SCHILY.acl.default"
)

// ACL entry tags, as the kernel's binary form numbers them.
const (
	ACLUserObj  = 0x01
	ACLUser     = 0x02
	ACLGroupObj = 0x04
	ACLGroup    = 0x08
	ACLMask     = 0x10
	ACLOther    = 0x20
)

// aclXattrVersion is the version word of the kernel's binary ACL form.
const aclXattrVersion = 2

// aclUndefinedID is the id of the unnamed entries in the binary form.
const aclUndefinedID = 0xFFFFFFFF

// ACLEntry is one entry of a POSIX ACL. For a named entry (ACLUser,
// ACLGroup) Name holds the name or the decimal id as the text form had it,
// and ID the numeric id when known.
type ACLEntry struct {
	Tag   uint16
	Perm  uint16 // r=4, w=2, x=1
	ID    uint32
	Name  string
	HasID bool
}

// ACL is a POSIX ACL.
type ACL []ACLEntry

var errACL = errors.New("malformed ACL")

// DecodeACLXattr parses the kernel's binary form.
func DecodeACLXattr(b []byte) (ACL, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 || binary.LittleEndian.Uint32(b) != aclXattrVersion {
		return nil, errACL
	}
	var acl ACL
	for b = b[4:]; len(b) > 0; b = b[8:] {
		e := ACLEntry{
			Tag:  binary.LittleEndian.Uint16(b[0:]),
			Perm: binary.LittleEndian.Uint16(b[2:]),
			ID:   binary.LittleEndian.Uint32(b[4:]),
		}
		switch e.Tag {
		case ACLUser, ACLGroup:
			e.HasID = true
		case ACLUserObj, ACLGroupObj, ACLMask, ACLOther:
			e.ID = 0
		default:
			return nil, errACL
		}
		if e.Perm > 7 {
			return nil, errACL
		}
		acl = append(acl, e)
	}
	return acl, nil
}

// Extended reports whether the ACL says more than the mode bits do: it has
// named entries or a mask (a minimal ACL is only the mode, and GNU tar does
// not archive it).
func (a ACL) Extended() bool {
	for _, e := range a {
		switch e.Tag {
		case ACLUser, ACLGroup, ACLMask:
			return true
		}
	}
	return false
}

// Text renders the ACL as GNU tar archives it: acl_to_text's form, in the
// kernel's order, with names from user and group where they resolve.
func (a ACL) Text(user, group func(uint32) string) string {
	var b strings.Builder
	for _, e := range a.sorted() {
		var tag, q string
		switch e.Tag {
		case ACLUserObj:
			tag = "user"
		case ACLUser:
			tag, q = "user", qualifier(e, user)
		case ACLGroupObj:
			tag = "group"
		case ACLGroup:
			tag, q = "group", qualifier(e, group)
		case ACLMask:
			tag = "mask"
		case ACLOther:
			tag = "other"
		}
		b.WriteString(tag)
		b.WriteByte(':')
		b.WriteString(q)
		b.WriteByte(':')
		b.WriteString(PermText(e.Perm))
		b.WriteByte('\n')
	}
	return b.String()
}

func qualifier(e ACLEntry, lookup func(uint32) string) string {
	if lookup != nil {
		if n := lookup(e.ID); n != "" {
			return n
		}
	}
	return strconv.FormatUint(uint64(e.ID), 10)
}

// PermText is the "rwx" form of the low three permission bits p, as ACL
// entries and messages about them write it.
func PermText(p uint16) string {
	b := []byte("---")
	if p&4 != 0 {
		b[0] = 'r'
	}
	if p&2 != 0 {
		b[1] = 'w'
	}
	if p&1 != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// ParseACLText parses the text form: entries separated by newlines or
// commas, "#" comments, the long and the one-letter tags, and star's
// trailing numeric id ("user:alice:rw-:1001"), which GNU tar also reads.
// Named entries keep their name; a purely numeric name is also the id.
func ParseACLText(s string) (ACL, error) {
	var acl ACL
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("%w: entry %q", errACL, line)
		}
		var e ACLEntry
		q := f[1]
		switch f[0] {
		case "user", "u":
			e.Tag = ACLUserObj
			if q != "" {
				e.Tag = ACLUser
			}
		case "group", "g":
			e.Tag = ACLGroupObj
			if q != "" {
				e.Tag = ACLGroup
			}
		case "mask", "m":
			e.Tag = ACLMask
		case "other", "o":
			e.Tag = ACLOther
		default:
			return nil, fmt.Errorf("%w: entry %q", errACL, line)
		}
		if (e.Tag == ACLMask || e.Tag == ACLOther) && q != "" {
			return nil, fmt.Errorf("%w: entry %q", errACL, line)
		}
		for _, c := range f[2] {
			switch c {
			case 'r':
				e.Perm |= 4
			case 'w':
				e.Perm |= 2
			case 'x':
				e.Perm |= 1
			case '-':
			default:
				return nil, fmt.Errorf("%w: entry %q", errACL, line)
			}
		}
		if e.Tag == ACLUser || e.Tag == ACLGroup {
			e.Name = q
			if id, err := strconv.ParseUint(q, 10, 32); err == nil {
				e.ID, e.HasID = uint32(id), true
			} else if len(f) == 4 {
				if id, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					e.ID, e.HasID = uint32(id), true
				}
			}
		}
		acl = append(acl, e)
	}
	if err := acl.valid(); err != nil {
		return nil, err
	}
	return acl, nil
}

// valid checks what the kernel checks: exactly one owner, owning group and
// other entry, at most one mask, required when there are named entries, and
// no name twice.
func (a ACL) valid() error {
	var n [0x21]int
	seen := map[[2]any]bool{}
	for _, e := range a {
		n[e.Tag]++
		if e.Tag == ACLUser || e.Tag == ACLGroup {
			k := [2]any{e.Tag, e.Name}
			if seen[k] {
				return fmt.Errorf("%w: %s listed twice", errACL, e.Name)
			}
			seen[k] = true
		}
	}
	if n[ACLUserObj] != 1 || n[ACLGroupObj] != 1 || n[ACLOther] != 1 || n[ACLMask] > 1 ||
		(n[ACLMask] == 0 && n[ACLUser]+n[ACLGroup] > 0) {
		return fmt.Errorf("%w: needs one user::, group:: and other:: entry, and a mask:: with named entries", errACL)
	}
	return nil
}

// EncodeXattr returns the kernel's binary form, ids resolved: by name
// through user/group when the name is known there (as GNU tar restores), else
// by the number in the text. It fails naming the first entry it cannot
// resolve.
func (a ACL) EncodeXattr(user, group func(string) (uint32, bool)) ([]byte, error) {
	r := make(ACL, len(a))
	copy(r, a)
	for i := range r {
		e := &r[i]
		switch e.Tag {
		case ACLUser, ACLGroup:
			lookup := user
			if e.Tag == ACLGroup {
				lookup = group
			}
			if lookup != nil && e.Name != "" {
				if id, ok := lookup(e.Name); ok {
					e.ID, e.HasID = id, true
				}
			}
			if !e.HasID {
				kind := "user"
				if e.Tag == ACLGroup {
					kind = "group"
				}
				return nil, fmt.Errorf("no %s %q on this host", kind, e.Name)
			}
		default:
			e.ID = aclUndefinedID
		}
	}
	r = r.sorted()
	for i := 1; i < len(r); i++ {
		if r[i].Tag == r[i-1].Tag && r[i].ID == r[i-1].ID && (r[i].Tag == ACLUser || r[i].Tag == ACLGroup) {
			return nil, fmt.Errorf("two entries resolve to %s id %d", map[uint16]string{ACLUser: "user", ACLGroup: "group"}[r[i].Tag], r[i].ID)
		}
	}
	b := make([]byte, 4, 4+8*len(r))
	binary.LittleEndian.PutUint32(b, aclXattrVersion)
	for _, e := range r {
		b = binary.LittleEndian.AppendUint16(b, e.Tag)
		b = binary.LittleEndian.AppendUint16(b, e.Perm)
		b = binary.LittleEndian.AppendUint32(b, e.ID)
	}
	return b, nil
}

// sorted returns the entries in the kernel's order: by tag, named entries
// by id.
func (a ACL) sorted() ACL {
	s := slices.Clone(a)
	slices.SortStableFunc(s, func(x, y ACLEntry) int {
		if x.Tag != y.Tag {
			return int(x.Tag) - int(y.Tag)
		}
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
	return s
}

// GroupClass returns the permissions the owning group effectively has
// (its entry limited by the mask): the group bits a mode may carry when the
// ACL itself cannot be applied. The mode's group bits hold the mask, which
// may grant more than the group entry: using them instead would widen access.
func (a ACL) GroupClass() uint16 {
	g, m := uint16(0), uint16(7)
	for _, e := range a {
		switch e.Tag {
		case ACLGroupObj:
			g = e.Perm
		case ACLMask:
			m = e.Perm
		}
	}
	return g & m
}
