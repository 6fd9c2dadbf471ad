package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drym-backup/drym/internal/archive"
	"github.com/drym-backup/drym/internal/testutil"
)

// capNetBindService is a security.capability value granting
// cap_net_bind_service=+ep: struct vfs_cap_data revision 2, little-endian
// u32s: magic_etc = VFS_CAP_REVISION_2 (0x02000000) | VFS_CAP_FLAGS_EFFECTIVE
// (1), then permitted/inheritable for capabilities 0-31 and 32-63;
// CAP_NET_BIND_SERVICE is 10. The bytes `setcap cap_net_bind_service=+ep f`
// writes (getfattr -n security.capability --only-values f).
var capNetBindService = func() string {
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1)
	binary.LittleEndian.PutUint32(b[4:], 1<<10) // permitted[0]
	return string(b[:])
}()

// heldPriv is what the privileges of one staged or restored path are.
type heldPriv struct {
	uid, gid uint32
	mode     fs.FileMode // permission, setuid and setgid bits
	caps     string      // security.capability, "" if none
}

func (h heldPriv) String() string {
	return fmt.Sprintf("%d:%d %v caps=%x", h.uid, h.gid, h.mode, h.caps)
}

func privOf(t *testing.T, p string) heldPriv {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := fi.Sys().(*syscall.Stat_t)
	h := heldPriv{uid: s.Uid, gid: s.Gid, mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, xattrCaps, buf)
	switch {
	case err == nil:
		h.caps = string(buf[:n])
	case !errors.Is(err, unix.ENODATA):
		t.Fatalf("%s: %s: %v", p, xattrCaps, err)
	}
	return h
}

// TestPrivilegesHeldBack: ownership, setuid/setgid and file capabilities
// are not in the staging directory, which is 0700, while the backup is
// unproven; Commit gives them; a restore that is not proven (Discard, or
// Keep of the unverified files) leaves none of them anywhere in the target.
func TestPrivilegesHeldBack(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Unable(t, "restoring owners and file capabilities needs root")
	}
	const owner = 4242
	mt := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
	capsPAX := map[string]string{archive.PAXXattr + xattrCaps: capNetBindService}
	us := heldPriv{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}

	tests := []struct {
		name string
		hdr  tar.Header
		want heldPriv // after Commit
	}{
		{"setuid", tar.Header{Mode: 0o4755, Uid: owner, Gid: owner},
			heldPriv{uid: owner, gid: owner, mode: 0o755 | fs.ModeSetuid}},
		{"setgid", tar.Header{Mode: 0o2755, Uid: owner, Gid: owner},
			heldPriv{uid: owner, gid: owner, mode: 0o755 | fs.ModeSetgid}},
		{"capability", tar.Header{Mode: 0o755, Uid: owner, Gid: owner, PAXRecords: capsPAX},
			heldPriv{uid: owner, gid: owner, mode: 0o755, caps: capNetBindService}},
		{"capability, owned by us", tar.Header{Mode: 0o755, Uid: int(us.uid), Gid: int(us.gid), PAXRecords: capsPAX},
			heldPriv{uid: us.uid, gid: us.gid, mode: 0o755, caps: capNetBindService}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.hdr
			h.Name, h.ModTime = "bin/f", mt
			data := plainTar(t, member{hdr: h, body: "#!/bin/sh\n"})
			dest := t.TempDir()
			st, err := Extract(context.Background(), bytes.NewReader(data), dest, Options{Owners: true})
			if err != nil {
				t.Fatal(err)
			}
			if st.Report.Files != 1 || st.Report.Refused.Count != 0 {
				t.Fatalf("staged %d files, refused %v", st.Report.Files, st.Report.Refused)
			}

			// Before the verdict: only the staging directory is in the
			// target, private, and the staged file has none of the
			// privileges.
			names, _ := os.ReadDir(dest)
			if len(names) != 1 || names[0].Name() != filepath.Base(st.StagingPath()) {
				t.Fatalf("target holds %v before Commit, want only the staging directory", names)
			}
			if fi, err := os.Lstat(st.StagingPath()); err != nil || fi.Mode() != fs.ModeDir|0o700 {
				t.Fatalf("staging directory: %v %v, want drwx------", fi.Mode(), err)
			}
			wantStaged := heldPriv{uid: us.uid, gid: us.gid, mode: 0o755}
			if got := privOf(t, filepath.Join(st.StagingPath(), "bin/f")); got != wantStaged {
				t.Errorf("staged: %v, want %v (privileges held back)", got, wantStaged)
			}

			rep := st.Commit(context.Background())
			if rep.Files != 1 || rep.Refused.Count != 0 || rep.Attrs.Count != 0 {
				t.Fatalf("commit: %d files, refused %v, attrs %v", rep.Files, rep.Refused, rep.Attrs)
			}
			if got := privOf(t, filepath.Join(dest, "bin/f")); got != tt.want {
				t.Errorf("committed: %v, want %v", got, tt.want)
			}
		})
	}

	// The backup not proven: the manifest disagrees with the content.
	var members []member
	for _, tt := range tests {
		h := tt.hdr
		h.Name, h.ModTime = "bin/"+strings.ReplaceAll(tt.name, " ", "_"), mt
		members = append(members, member{hdr: h, body: "#!/bin/sh\n"})
	}
	man, err := jsonManifest([]archive.Entry{{Path: "bin/setuid", Type: archive.TypeFile, Size: 1, SHA256: sum([]byte("x")), Mode: "04755", MTime: mt.Unix()}})
	if err != nil {
		t.Fatal(err)
	}
	members = append(members, member{hdr: tar.Header{Name: archive.ManifestName, ModTime: mt}, body: string(man)})
	data := plainTar(t, members...)
	for _, keep := range []bool{false, true} {
		name := "unproven, discarded"
		if keep {
			name = "unproven, kept"
		}
		t.Run(name, func(t *testing.T) {
			dest := t.TempDir()
			st, err := Extract(context.Background(), bytes.NewReader(data), dest, Options{Owners: true})
			if err != nil {
				t.Fatal(err)
			}
			if st.Report.Mismatches.Count == 0 || st.Report.Files != int64(len(tests)) {
				t.Fatalf("staged %d files, mismatches %v: want the manifest to fail the backup", st.Report.Files, st.Report.Mismatches)
			}
			if keep {
				if _, err := st.Keep("test"); err != nil {
					t.Fatal(err)
				}
			} else if err := st.Discard(); err != nil {
				t.Fatal(err)
			}
			files := 0
			err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.Type().IsRegular() {
					return nil
				}
				files++
				if got := privOf(t, p); got.uid == owner || got.gid == owner || got.mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 || got.caps != "" {
					t.Errorf("%s: %v: a privilege of an unproven backup", p, got)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: len(tests)}[keep]; files != want {
				t.Errorf("%d files under the target, want %d", files, want)
			}
		})
	}
}
