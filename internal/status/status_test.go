package status

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	b := &Backup{Common: NewCommon(JobBackup, "web1", "v1", now), Destination: "dir:///x", Object: "o", Files: 3}
	b.State, b.Finished = OK, now.Add(time.Minute)
	path := filepath.Join(dir, BackupFile)
	if err := Write(path, b); err != nil {
		t.Fatal(err)
	}
	var got Backup
	if err := Read(path, &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "o" || got.Files != 3 || !got.Finished.Equal(b.Finished) || got.Duration() != time.Minute {
		t.Fatalf("got %+v", got)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"started": "2026-11-23T03:00:00Z"`) {
		t.Fatalf("timestamps must be RFC 3339 UTC:\n%s", raw)
	}
	// No temp files left.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %v", ents)
	}
	// A test-restore file is not a backup file.
	if err := Read(path, &TestRestore{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read backup.json as test-restore: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, data string
		want       error
	}{
		{"garbage", "not json", ErrCorrupt},
		{"empty", "", ErrCorrupt},
		{"truncated", `{"schema":1,"job":"backup","host":"h","state":"ok","started":"2026-11-23T03:0`, ErrCorrupt},
		{"no schema", `{"job":"backup"}`, ErrCorrupt},
		{"unknown schema", `{"schema":2,"job":"backup"}`, ErrUnknownSchema},
		{"unknown state", `{"schema":1,"job":"backup","state":"great","started":"2026-11-23T03:00:00Z"}`, ErrCorrupt},
		{"no start", `{"schema":1,"job":"backup","state":"running"}`, ErrCorrupt},
		{"ok without finish", `{"schema":1,"job":"backup","state":"ok","started":"2026-11-23T03:00:00Z"}`, ErrCorrupt},
		{"failed without error", `{"schema":1,"job":"backup","state":"failed","started":"2026-11-23T03:00:00Z","finished":"2026-11-23T03:01:00Z"}`, ErrCorrupt},
		{"finish before start", `{"schema":1,"job":"backup","state":"ok","started":"2026-11-23T03:00:00Z","finished":"2026-11-23T02:00:00Z"}`, ErrCorrupt},
		{"bad time", `{"schema":1,"job":"backup","state":"ok","started":"yesterday"}`, ErrCorrupt},
		{"too big", `{"schema":1,"x":"` + strings.Repeat("a", MaxFileSize) + `"}`, ErrCorrupt},
	}
	for _, c := range cases {
		var b Backup
		if err := Parse([]byte(c.data), &b); !errors.Is(err, c.want) {
			t.Errorf("%s: want %v, got %v", c.name, c.want, err)
		}
	}
	if err := Read(filepath.Join(t.TempDir(), "none.json"), &Backup{}); !errors.Is(err, ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheckClock(t *testing.T) {
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	ok := Common{Started: now.Add(-time.Hour), Finished: now.Add(ClockSkew - time.Second)}
	if err := CheckClock(ok, now); err != nil {
		t.Fatal(err)
	}
	future := Common{Started: now.Add(time.Hour)}
	if err := CheckClock(future, now); !errors.Is(err, ErrFuture) {
		t.Fatalf("future: %v", err)
	}
}

// A failed write (directory gone read-only, disk full) leaves the previous
// file intact.
func TestWriteFailureKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, BackupFile)
	if err := WriteFileAtomic(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A value that cannot be marshalled fails before touching the file.
	if err := Write(path, map[string]any{"x": make(chan int)}); err == nil {
		t.Fatal("marshal of a channel succeeded")
	}
	// A directory that cannot take the temp file fails without damage.
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("new"), 0o644); err == nil {
		t.Fatal("write into a missing dir succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("previous file changed: %q", b)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, err := TryLock(dir, JobBackup)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := TryLock(dir, JobBackup); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second lock: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("refusal was not immediate")
	}
	l.Unlock()
	l2, err := TryLock(dir, JobBackup)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	l2.Unlock()
}

func TestJobAlive(t *testing.T) {
	if !JobAlive(os.Getpid(), time.Now()) {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if JobAlive(cmd.Process.Pid, time.Now()) {
		t.Fatal("an exited process is alive")
	}
	// A live pid that started after the job did is a reused pid.
	if JobAlive(os.Getpid(), time.Now().Add(-24*time.Hour*365)) {
		t.Fatal("a process younger than the job was taken for it")
	}
	if JobAlive(0, time.Now()) || JobAlive(-1, time.Now()) {
		t.Fatal("pid 0/-1 alive")
	}
}

func TestAddHistory(t *testing.T) {
	var h []BackupRun
	for i := range HistoryLen + 5 {
		h = AddHistory(h, BackupRun{Files: int64(i)})
	}
	if len(h) != HistoryLen || h[0].Files != HistoryLen+4 {
		t.Fatalf("history %v", h)
	}
}
