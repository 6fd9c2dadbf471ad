package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// The checks run as Debian's nagios user (NRPE, or nagios4 locally) and must
// read the settings, the public key and the status files whatever umask the
// admin ran init with (a umask of 077 made all three unreadable). Modes are
// therefore set explicitly after every create, never left to the umask:
//
//	settings file        0644
//	directories we make  0755 (the settings and key directory)
//	state directory      0750, group nagios when it exists and we are root
//	secret key           0600 (crypt.WriteKeyFiles; never readable by nagios)
//
// See docs/REFERENCE.md#files-and-modes.
const (
	settingsMode = 0o644
	dirMode      = 0o755
	stateDirMode = 0o750
)

// nagiosGID is the gid of group nagios, or -1 when there is none or we are
// not root (only root can give a directory to another group).
func nagiosGID() int {
	if os.Geteuid() != 0 {
		return -1
	}
	g, err := user.LookupGroup("nagios")
	if err != nil {
		return -1
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1
	}
	return gid
}

// mkdirs creates dir and its missing parents with mode, set explicitly. An
// existing directory keeps its mode: that was someone's choice.
func mkdirs(dir string, mode os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	if err := mkdirs(filepath.Dir(dir), dirMode); err != nil {
		return err
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("cannot set the mode of %s: %w", dir, err)
	}
	return nil
}

// prepareStateDir makes the state directory the checks can read: 0750,
// group nagios (when it exists and we are root). drym owns this directory,
// so an existing one is corrected too (an earlier init under umask 077 left
// it 0700).
func prepareStateDir(dir string) error {
	if err := mkdirs(dir, stateDirMode); err != nil {
		return fmt.Errorf("cannot create state dir %s: %w", dir, err)
	}
	if gid := nagiosGID(); gid >= 0 {
		if err := os.Chown(dir, 0, gid); err != nil {
			return fmt.Errorf("cannot give group nagios access to %s: %w", dir, err)
		}
	}
	if err := os.Chmod(dir, stateDirMode); err != nil {
		return fmt.Errorf("cannot set the mode of %s: %w", dir, err)
	}
	return nil
}

// nagiosCannotRead returns why user nagios cannot read path ("" when it
// can, or when there is no nagios user to ask about): the first directory
// on the way it cannot search, or the file it cannot read.
func nagiosCannotRead(path string) string {
	u, err := user.Lookup("nagios")
	if err != nil {
		return ""
	}
	uid, _ := strconv.Atoi(u.Uid)
	gids := map[int]bool{}
	if g, err := strconv.Atoi(u.Gid); err == nil {
		gids[g] = true
	}
	if groups, err := u.GroupIds(); err == nil {
		for _, g := range groups {
			if n, err := strconv.Atoi(g); err == nil {
				gids[n] = true
			}
		}
	}
	may := func(p string, bit os.FileMode) bool {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return true
		}
		m := fi.Mode().Perm()
		switch {
		case int(st.Uid) == uid:
			return m&(bit<<6) != 0
		case gids[int(st.Gid)]:
			return m&(bit<<3) != 0
		}
		return m&bit != 0
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if !may(dir, 0o1) {
			return fmt.Sprintf("user nagios cannot enter %s", dir)
		}
		if dir == "/" {
			break
		}
	}
	if !may(abs, 0o4) {
		return fmt.Sprintf("user nagios cannot read %s", abs)
	}
	return ""
}
