package status

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Lock is an exclusive, non-blocking lock on the state directory, so two runs
// never overlap. It is an flock(2) on drym.lock: the kernel drops it when the
// holder dies, so a SIGKILLed runner never leaves a stale lock behind.
type Lock struct {
	f *os.File
}

// ErrLocked means another runner holds the lock.
var ErrLocked = errors.New("locked by another run")

// TryLock takes the lock in stateDir at once or fails with ErrLocked, naming
// the holder's pid and job.
func TryLock(stateDir, job string) (*Lock, error) {
	path := filepath.Join(stateDir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock %s: %w", path, err)
	}
	_ = f.Chmod(0o644) // whatever the umask: it names the holder to whoever looks
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := make([]byte, 128)
		n, _ := f.ReadAt(holder, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(bytes.TrimRight(holder[:n], "\x00")))
			if who == "" {
				who = "another backup_runner"
			}
			return nil, fmt.Errorf("%w: %s holds %s; wait for it to finish (or stop it) and run again", ErrLocked, who, path)
		}
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	// Record the holder for the message the next contender prints.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d (%s, since %s)\n", os.Getpid(), job, time.Now().UTC().Format(time.RFC3339))), 0)
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}

// processAlive: kill(pid, 0) tells whether the pid exists. EPERM means it
// exists but belongs to someone else (the check runs as nagios, the runner
// as root).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// JobAlive reports whether the process pid is alive and old enough to be the
// run that started at started: it is how a check tells a running job from one
// whose runner died (SIGKILL, OOM, reboot). A process that started after the
// job did is an unrelated one that reused the pid (a reboot makes that likely).
func JobAlive(pid int, started time.Time) bool {
	if !processAlive(pid) {
		return false
	}
	st, err := processStart(pid)
	if err != nil {
		return true // cannot tell; kill(0) said it exists
	}
	// Clock ticks make start times coarse; allow a little slack.
	return !st.After(started.Add(2 * time.Second))
}

// processStart reads a process's start time from /proc.
func processStart(pid int) (time.Time, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return time.Time{}, errors.New("bad /proc stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return time.Time{}, errors.New("bad /proc stat")
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64) // field 22: starttime
	if err != nil {
		return time.Time{}, err
	}
	boot, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	const clkTck = 100 // USER_HZ is 100 on every Linux architecture drym targets
	return boot.Add(time.Duration(ticks) * time.Second / clkTck), nil
}

func bootTime() (time.Time, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(s, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}
