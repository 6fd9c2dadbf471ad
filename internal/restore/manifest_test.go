package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/drym-backup/drym/internal/archive"
)

// decodeBoth runs the fast decoder and the reference one on the same bytes
// and returns what each handed to fn, and its error text.
func decodeBoth(data []byte, read func(io.Reader) io.Reader) (fast, ref string) {
	run := func(dec func(io.Reader, func(archive.Entry) error) error) string {
		var b strings.Builder
		err := dec(read(bytes.NewReader(data)), func(e archive.Entry) error {
			fmt.Fprintf(&b, "%+v\n", e)
			return nil
		})
		fmt.Fprintf(&b, "err: %v", err)
		return b.String()
	}
	fast = run(decodeManifest)
	ref = run(func(r io.Reader, fn func(archive.Entry) error) error {
		_, err := archive.DecodeManifest(r, fn)
		return err
	})
	return fast, ref
}

const (
	manHead = `{"version":2,"host":"h","created":"2025-03-01T12:00:00Z","sources":["/srv"],"entries":[`
	eDir    = `{"path":"srv","type":"dir","mode":"0755","mtime":1740830400}`
	eFile   = `{"path":"srv/a.txt","type":"file","size":5,"sha256":"` + sha64 + `","mode":"0644","mtime":1740830400}`
	eLink   = `{"path":"srv/l","type":"symlink","mode":"0777","mtime":-5,"link":"a.txt"}`
	sha64   = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
)

// manifestCases are manifests the fast path reads, manifests it hands to
// the reference decoder at once or part way, and broken ones: in every case
// the entries and the error must be the reference decoder's.
var manifestCases = []struct{ name, data string }{
	{"drym's own", manHead + eDir + "," + eFile + "," + eLink + "]}"},
	{"empty list", manHead + "]}"},
	{"null list", `{"version":2,"entries":null}`},
	{"trailing bytes after the end", manHead + eDir + "]}garbage"},
	{"version 1", `{"version":1,"entries":[{"path":"a","type":"dir","mode":"0755","mtime":"2025-03-01T12:00:00Z"}]}`},
	{"unknown version", `{"version":3,"entries":[` + eDir + "]}"},
	{"no version", `{"entries":[` + eDir + "]}"},
	{"version after entries", manHead + eDir + `],"version":3}`},
	{"no entries", `{"version":2}`},
	{"entries not a list", `{"version":2,"entries":{}}`},
	{"entries key in a string", `{"version":2,"host":"\"entries\":[","entries":[` + eDir + "]}"},
	{"nested entries key", `{"version":2,"x":{"entries":[` + eDir + "]},\"entries\":[]}"},
	{"whitespace", "{ \"version\": 2, \"entries\": [ " + eDir + " , " + eFile + " ] }"},
	{"whitespace after an entry", manHead + eDir + " ," + eFile + "\n]}"},
	{"trailing comma", manHead + eDir + ",]}"},
	{"leading comma", manHead + "," + eDir + "]}"},
	{"missing comma", manHead + eDir + eFile + "]}"},
	{"escaped path", manHead + eDir + `,{"path":"srv/\u00e9","type":"dir","mode":"0755","mtime":1}]}`},
	{"base64 path", manHead + `{"path":{"base64":"c3J2/w=="},"type":"dir","mode":"0755","mtime":1}]}`},
	{"raw non-UTF-8 path", manHead + "{\"path\":\"srv/\xff\",\"type\":\"dir\",\"mode\":\"0755\",\"mtime\":1}]}"},
	{"non-UTF-8 mode", manHead + "{\"path\":\"srv\",\"type\":\"dir\",\"mode\":\"07\xff\",\"mtime\":1}]}"},
	{"control byte in a path", manHead + "{\"path\":\"srv/\x01\",\"type\":\"dir\",\"mode\":\"0755\",\"mtime\":1}]}"},
	{"xattrs and ACLs", manHead + eDir + `,{"path":"srv/x","type":"file","size":0,"sha256":"` + sha64 + `","mode":"0644","mtime":1,"xattrs":{"user.a":"b"},"acl":"user::rw-"}]}`},
	{"unknown key", manHead + eDir + `,{"path":"srv/y","type":"dir","mode":"0755","mtime":1,"extra":[1,2]}]}`},
	{"key in capitals", manHead + `{"Path":"srv","type":"dir","mode":"0755","mtime":1}]}`},
	{"key twice", manHead + `{"path":"srv","path":"etc","type":"dir","mode":"0755","mtime":1}]}`},
	{"null value", manHead + `{"path":"srv","type":"dir","mode":null,"mtime":1}]}`},
	{"fractional size", manHead + eDir + `,{"path":"srv/a","type":"file","size":1.5,"sha256":"` + sha64 + `","mode":"0644","mtime":1}]}`},
	{"huge size", manHead + `{"path":"srv/a","type":"file","size":99999999999999999999,"sha256":"` + sha64 + `","mode":"0644","mtime":1}]}`},
	{"negative size", manHead + eDir + `,{"path":"srv/a","type":"file","size":-1,"sha256":"` + sha64 + `","mode":"0644","mtime":1}]}`},
	{"minus zero", manHead + `{"path":"srv","type":"dir","mode":"0755","mtime":-0}]}`},
	{"leading zero", manHead + `{"path":"srv","type":"dir","mode":"0755","mtime":01}]}`},
	{"mtime as text", manHead + eDir + "," + eDir + `,{"path":"srv/b","type":"dir","mode":"0755","mtime":"1"}]}`},
	{"short sha256", manHead + eDir + `,{"path":"srv/a","type":"file","size":1,"sha256":"abc","mode":"0644","mtime":1}]}`},
	{"unknown type", manHead + eDir + "," + eFile + `,{"path":"dev/null","type":"char","mode":"0666","mtime":1}]}`},
	{"unclean path", manHead + eDir + `,{"path":"srv/../etc","type":"dir","mode":"0755","mtime":1}]}`},
	{"absolute path", manHead + `{"path":"/etc","type":"dir","mode":"0755","mtime":1}]}`},
	{"empty object", manHead + eDir + ",{}]}"},
	{"not an object", manHead + eDir + ",42]}"},
	{"list left open", manHead + eDir + "," + eFile},
	{"object left open", manHead + eDir + `,{"path":"srv/a","type"`},
	{"cut after an entry", manHead + eDir},
	{"cut after the list", manHead + eDir + "]"},
	{"cut in the head", `{"version":2,"host":"h`},
	{"empty", ""},
	{"not JSON", "tar tar tar"},
	{"a path too long for the fast path", manHead + eDir + `,{"path":"srv/` + strings.Repeat("p", maxManifestEntry) + `","type":"dir","mode":"0755","mtime":1}]}`},
}

// TestCursor pins the fast manifest decoder to the reference one: the same
// entries and the same error, however the reader splits the bytes.
func TestCursor(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"whole":        func(r io.Reader) io.Reader { return r },
		"a byte a go":  iotest.OneByteReader,
		"half at a go": iotest.HalfReader,
	}
	for _, tc := range manifestCases {
		for rname, read := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				fast, ref := decodeBoth([]byte(tc.data), read)
				if fast != ref {
					t.Errorf("fast decoder:\n%s\nreference:\n%s", fast, ref)
				}
			})
		}
	}
}

// TestCursorFastPath: what drym writes is read without the reference
// decoder.
func TestCursorFastPath(t *testing.T) {
	calls := 0
	referenceHook = func() { calls++ }
	defer func() { referenceHook = nil }()
	for _, data := range []string{manifestCases[0].data, manifestCases[1].data, manifestCases[3].data} {
		n := 0
		err := decodeManifest(iotest.OneByteReader(strings.NewReader(data)), func(archive.Entry) error { n++; return nil })
		if err != nil || calls != 0 {
			t.Errorf("%.60s…: %d entries, err %v, reference decoder called %d times", data, n, err, calls)
		}
	}
}

// TestCursorManyEntries crosses the cursor's buffer boundaries with entries
// in every state, the reference decoder taking over part way.
func TestCursorManyEntries(t *testing.T) {
	var b strings.Builder
	b.WriteString(manHead)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"path":"srv/d%04d","type":"file","size":%d,"sha256":"%s","mode":"0644","mtime":%d}`, i, i, sha64, 1740830400+i)
	}
	good := b.String() + "]}"
	for _, tc := range []struct{ name, data string }{
		{"all fast", good},
		{"broken at the end", b.String() + `,{"path":"srv/zz","type":"file","size":1,"sha256":"x","mode":"0644","mtime":1}]}`},
		{"escape at the end", b.String() + `,{"path":"srv/\u00e9","type":"dir","mode":"0755","mtime":1}]}`},
		{"cut", good[:len(good)*2/3]},
	} {
		fast, ref := decodeBoth([]byte(tc.data), func(r io.Reader) io.Reader { return r })
		if fast != ref {
			t.Errorf("%s: the fast decoder and the reference differ (%d and %d bytes of output)", tc.name, len(fast), len(ref))
		}
	}
}

// TestCursorReadError: a read error (a truncated tar member) is the
// reference decoder's error too, wherever it strikes.
func TestCursorReadError(t *testing.T) {
	data := []byte(manHead + eDir + "," + eFile + "," + eLink + "]}")
	boom := errors.New("boom")
	for cut := 0; cut < len(data); cut += 7 {
		read := func(r io.Reader) io.Reader {
			return io.MultiReader(io.LimitReader(r, int64(cut)), errReader{boom})
		}
		if fast, ref := decodeBoth(data, read); fast != ref {
			t.Errorf("error after %d bytes: fast decoder:\n%s\nreference:\n%s", cut, fast, ref)
		}
	}
}

// FuzzCursor: whatever the bytes, the fast decoder says what the reference
// decoder says. Inputs are bounded to 2 KiB (a manifest head and a few
// entries; longer ones are in the table above): every exec, and so the
// fuzzer's minimization of every new input, stays quick.
func FuzzCursor(f *testing.F) {
	for _, tc := range manifestCases {
		if len(tc.data) <= 2<<10 {
			f.Add([]byte(tc.data))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2<<10 {
			return
		}
		fast, ref := decodeBoth(data, func(r io.Reader) io.Reader { return r })
		if fast != ref {
			t.Errorf("fast decoder:\n%s\nreference:\n%s", fast, ref)
		}
	})
}
