package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// statusSeeds are real-shaped status files and the damage the checks must
// survive: truncation, wrong types, unknown schema, future times, huge
// numbers, duplicate keys.
var statusSeeds = []string{
	`{"schema":1,"job":"backup","host":"web1","version":"v1","pid":42,"state":"ok","started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:14:05Z","destination":"s3://b/p","object":"web1/20260102T030405Z-00112233445566778899aabbccddeeff.tar.zst.gpg","bytes_in":10,"bytes_out":5,"files":1,"sha256":"` + zeros64 + `","history":[{"started":"2026-01-01T03:04:05Z","finished":"2026-01-01T03:05:05Z","state":"ok","bytes_in":10,"bytes_out":5,"files":1,"warnings":0}],"last_success":{"started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:14:05Z","state":"ok","bytes_in":1,"bytes_out":1,"files":1,"warnings":0}}`,
	`{"schema":1,"job":"backup","host":"web1","version":"v1","pid":42,"state":"running","started":"2026-01-02T03:04:05Z"}`,
	`{"schema":1,"job":"backup","host":"web1","version":"v1","pid":42,"state":"failed","error":"boom","started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:04:06Z"}`,
	`{"schema":1,"job":"test-restore","host":"web1","version":"v1","pid":1,"state":"ok","started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:04:06Z","verified":true,"sha256_checked":true,"mismatches":["a"]}`,
	`{"schema":1,"job":"escrow","host":"web1","version":"v1","pid":1,"state":"ok","started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:04:06Z","zip":"x.zip"}`,
	`{"schema":2,"job":"backup","state":"ok"}`,
	`{"schema":"1","job":"backup"}`,
	`{"schema":1,"schema":2,"job":"backup"}`,
	`{"schema":1,"job":"backup","state":"ok","started":"9999-12-31T23:59:59Z","finished":"9999-12-31T23:59:59Z"}`,
	`{"schema":1,"job":"backup","state":"ok","started":"2026-01-02T03:04:05+14:00","finished":"2026-01-02T03:04:05-12:00"}`,
	`{"schema":1,"job":"backup","state":"OK","started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:04:06Z"}`,
	`{"schema":1,"job":"backup","state":"ok","started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:04:06Z","bytes_out":1e400}`,
	`{"schema":1,"job":"backup","state":"ok","started":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:04:06Z"} trailing`,
	`{"schema":1,"job":"backup","state":"ok","started":"2026-01-02T03:04:05Z","fini`,
	`null`, `[]`, `{}`, ``, "\x00\xff", `{"schema":null}`, `{"schema":1e309}`,
}

const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"

// FuzzParse feeds arbitrary bytes to the status parser the checks use. It
// must never panic, and anything it accepts must satisfy the invariants the
// checks rely on to avoid a false OK: the current schema, the expected job,
// a known state, a start time, a finish time (not before the start) once
// finished, an error when failed. An accepted file must also survive a
// write/read round trip, and no strict prefix of it may be accepted (a
// truncated file is never mistaken for a whole one).
func FuzzParse(f *testing.F) {
	for _, s := range statusSeeds {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		var v any
		switch kind % 3 {
		case 0:
			v = new(Backup)
		case 1:
			v = new(TestRestore)
		default:
			v = new(Escrow)
		}
		err := Parse(data, v)
		if err != nil {
			// Every refusal is one the checks map to UNKNOWN (or, for a
			// type mix-up, a programming error that never reaches users).
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownSchema) {
				t.Fatalf("Parse error %v is neither ErrCorrupt nor ErrUnknownSchema", err)
			}
			return
		}
		c, want := common(v)
		switch {
		case c.Schema != Schema:
			t.Fatalf("accepted schema %d", c.Schema)
		case c.Job != want:
			t.Fatalf("accepted job %q as %q", c.Job, want)
		case c.State != Running && c.State != OK && c.State != Failed:
			t.Fatalf("accepted state %q", c.State)
		case c.Started.IsZero():
			t.Fatal("accepted a file without a start time")
		case c.State != Running && c.Finished.IsZero():
			t.Fatalf("accepted %s without a finish time", c.State)
		case !c.Finished.IsZero() && c.Finished.Before(c.Started):
			t.Fatal("accepted finished before started")
		case c.State == Failed && c.Error == "":
			t.Fatal("accepted failed without an error")
		}
		// Round trip: what the runner would write back must read the same.
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal accepted status: %v", err)
		}
		again := newLike(v)
		if err := Parse(out, again); err != nil {
			t.Fatalf("re-parse of accepted status failed: %v\n%s", err, out)
		}
		c2, _ := common(again)
		if c2.State != c.State || !c2.Started.Equal(c.Started) || !c2.Finished.Equal(c.Finished) {
			t.Fatalf("round trip changed the status: %+v → %+v", *c, *c2)
		}
		// Truncation anywhere inside the JSON value is refused.
		trimmed := bytes.TrimRight(data, " \t\r\n")
		for _, n := range []int{len(trimmed) - 1, len(trimmed) / 2, 1} {
			if n <= 0 || n >= len(trimmed) {
				continue
			}
			if Parse(trimmed[:n], newLike(v)) == nil {
				t.Fatalf("accepted a truncated file (%d of %d bytes): %q", n, len(trimmed), trimmed[:n])
			}
		}
	})
}

func newLike(v any) any {
	switch v.(type) {
	case *Backup:
		return new(Backup)
	case *TestRestore:
		return new(TestRestore)
	}
	return new(Escrow)
}

// FuzzCheckClock: a timestamp more than ClockSkew ahead is always refused,
// whatever the times are (no overflow turns the future into the past).
func FuzzCheckClock(f *testing.F) {
	f.Add(int64(0), int64(0), int64(1_700_000_000))
	f.Add(int64(1<<62), int64(-1<<62), int64(0))
	f.Add(int64(253402300799), int64(0), int64(1_700_000_000))
	f.Fuzz(func(t *testing.T, started, finished, now int64) {
		c := Common{Started: time.Unix(started, 0), Finished: time.Unix(finished, 0)}
		n := time.Unix(now, 0)
		err := CheckClock(c, n)
		for _, ts := range []time.Time{c.Started, c.Finished} {
			if ts.IsZero() {
				continue
			}
			// time.Sub saturates, so compare without it.
			if ts.After(n.Add(ClockSkew)) && n.Add(ClockSkew).After(n) && err == nil {
				t.Fatalf("accepted %s with now %s", ts, n)
			}
		}
	})
}
