package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Linux bounds: a name list and a value are at most 64 KiB.
const (
	xattrListMax = 64 << 10
	xattrSizeMax = 64 << 10
)

// attrs reads the extended attributes and POSIX ACLs of one path (through
// fd when it is open, else by path without following a symlink) into the
// entry and the tar header's PAX records, as GNU tar --xattrs --acls
// archives them. A path without attributes costs one listxattr call.
// Attributes that cannot be read are a warning: the path is archived
// without them, and the run says so.
func (a *writer) attrs(fd int, path, name string, hdr *tar.Header, e *Entry) {
	list := func(b []byte) (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, b)
		}
		return unix.Llistxattr(path, b)
	}
	get := func(attr string, b []byte) (int, error) {
		if fd >= 0 {
			return unix.Fgetxattr(fd, attr, b)
		}
		return unix.Lgetxattr(path, attr, b)
	}
	if a.xnames == nil {
		a.xnames = make([]byte, 4096)
	}
	n, err := retryRange(&a.xnames, xattrListMax, list)
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOTSUP):
		return // a file system without extended attributes
	default:
		a.stats.warn(name, fmt.Errorf("extended attributes and ACLs not archived: %w", err))
		return
	}
	if n == 0 {
		return
	}
	names := strings.Split(strings.TrimRight(string(a.xnames[:n]), "\x00"), "\x00")
	slices.Sort(names)
	var at Attrs
	for _, attr := range names {
		if attr == "" {
			continue
		}
		if a.xval == nil {
			a.xval = make([]byte, 4096)
		}
		m, err := retryRange(&a.xval, xattrSizeMax, func(b []byte) (int, error) { return get(attr, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the list was read
		}
		if err != nil {
			a.stats.warn(name, fmt.Errorf("extended attribute %s not archived: %w", attr, err))
			continue
		}
		val := a.xval[:m]
		switch attr {
		case XattrACLAccess, XattrACLDefault:
			acl, err := DecodeACLXattr(val)
			if err != nil {
				a.stats.warn(name, fmt.Errorf("%s not archived: %w", attr, err))
				continue
			}
			text := acl.Text(a.userNameID, a.groupNameID)
			if attr == XattrACLDefault {
				at.DefaultACL = text
			} else if acl.Extended() {
				at.ACL = text
			}
		default:
			// A PAX keyword is UTF-8 and has no '='; the manifest keys
			// attributes by name as JSON strings.
			if !utf8.ValidString(attr) || strings.ContainsRune(attr, '=') {
				a.stats.warn(name, fmt.Errorf("extended attribute %q not archived: its name cannot be stored in a tar header", attr))
				continue
			}
			at.Xattrs = append(at.Xattrs, Xattr{attr, string(val)})
		}
	}
	e.Attrs = at
	hdr.PAXRecords = at.PAX(hdr.PAXRecords)
}

// retryRange calls fn with *buf, growing it (up to limit) while the kernel
// says it is too small (ERANGE: the attribute grew between calls).
func retryRange(buf *[]byte, limit int, fn func([]byte) (int, error)) (int, error) {
	for {
		n, err := fn(*buf)
		if !errors.Is(err, unix.ERANGE) {
			return n, err
		}
		if len(*buf) >= limit {
			return 0, err
		}
		*buf = make([]byte, min(2*len(*buf), limit))
	}
}

func (a *writer) userNameID(id uint32) string  { return a.userName(int(id)) }
func (a *writer) groupNameID(id uint32) string { return a.groupName(int(id)) }
