package restore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/drym-backup/drym/internal/archive"
)

// walkNames is a tree listed in walk order: a directory, then its children,
// with siblings such as "d" and "d.txt" on both sides of "d/…".
func walkNames(n int) []string {
	var names []string
	for d := 0; len(names) < n; d++ {
		dir := fmt.Sprintf("srv/www/site%03d", d)
		names = append(names, dir)
		for f := 0; f < 37 && len(names) < n; f++ {
			names = append(names, fmt.Sprintf("%s/page%04d.html", dir, f))
		}
		names = append(names, dir+".conf")
	}
	return names[:n]
}

func seenFor(i int, name string) seen {
	switch i % 5 {
	case 0:
		return seen{typ: archive.TypeDir, mode: 0o755, mtime: 1700000000 + int64(i)}
	case 1:
		return seen{typ: archive.TypeSymlink, mode: 0o777, mtime: 1600000000 - int64(i), link: "../" + name}
	case 2:
		return seen{typ: archive.TypeHardlink, link: "srv/first"}
	}
	s := seen{typ: archive.TypeFile, size: int64(i) << 20, mode: 0o600, mtime: int64(i) * 7,
		sha256: fmt.Sprintf("%064x", i*7919)}
	if i%5 == 4 { // as verify records it: the raw sum, no hex
		s.sum, _ = unhex32(s.sha256)
		s.hasSum, s.sha256 = true, ""
	}
	return s
}

func checkMembers(t *testing.T, label string, names []string, m *members) {
	t.Helper()
	for i, name := range names {
		if got := m.find(name); got != i {
			t.Fatalf("%s: find(%q) = %d, want %d", label, name, got, i)
		}
		nm, v := m.decode(i, true)
		s := seenFor(i, name)
		if string(nm) != name || v.typ != s.typ || v.size != s.size || v.mode != s.mode || v.mtime != s.mtime || v.link != s.link {
			t.Fatalf("%s: member %d decodes as %q %+v, want %q %+v", label, i, nm, v, name, s)
		}
		if s.hasSum && v.sha != s.sum || s.typ == archive.TypeFile && !s.hasSum && !sameSHA256(s.sha256, &v.sha) {
			t.Fatalf("%s: member %d: sha256 does not round-trip", label, i)
		}
	}
	for _, absent := range []string{"", "srv", "srv/www/site000/page9999.html", "zzz", "srv/www/site000/"} {
		if got := m.find(absent); got != -1 {
			t.Errorf("%s: find(%q) = %d, want -1", label, absent, got)
		}
	}
	var order []string
	m.each(func(_ int, name []byte) { order = append(order, string(name)) })
	if !slices.Equal(order, names) {
		t.Errorf("%s: each lists %d names, not the %d put", label, len(order), len(names))
	}
}

func TestMembers(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 1000, 5000} {
		names := walkNames(n)
		shuffled := slices.Clone(names)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, tc := range []struct {
			label     string
			names     []string
			unordered bool
		}{
			{fmt.Sprintf("%d in walk order", n), names, false},
			{fmt.Sprintf("%d shuffled", n), shuffled, n > 2},
		} {
			m := newMembers()
			for i, name := range tc.names {
				if m.put(name, seenFor(i, name)) {
					t.Fatalf("%s: %q reported as a duplicate", tc.label, name)
				}
			}
			if m.unordered != tc.unordered {
				t.Errorf("%s: unordered = %v, want %v", tc.label, m.unordered, tc.unordered)
			}
			checkMembers(t, tc.label, tc.names, m)
		}
	}
	// A duplicate, in order or not, is reported and supersedes the first.
	for _, at := range []int{0, 16, 999} {
		names := walkNames(1000)
		m := newMembers()
		for i, name := range names {
			m.put(name, seenFor(i, name))
		}
		if !m.put(names[at], seen{typ: archive.TypeDir, mode: 0o700}) {
			t.Errorf("duplicate of member %d not reported", at)
		}
		i := m.find(names[at])
		if _, v := m.decode(i, true); i != 1000 || v.mode != 0o700 || !m.isDone(at) {
			t.Errorf("duplicate of member %d: find gives %d (mode %o), first done %v", at, i, v.mode, m.isDone(at))
		}
	}
}

func TestWalkCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"a", "a", 0}, {"a", "a/b", -1}, {"a/b", "a.txt", -1}, {"a.txt", "a/b", 1},
		{"a/z", "a0", -1}, {"ab", "a/b", 1}, {"a", "b", -1}, {"etc/x", "etc", 1},
	} {
		if got := walkCompare(tc.a, tc.b); got != tc.want {
			t.Errorf("walkCompare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	// A real walk order is strictly increasing.
	names := walkNames(500)
	for i := 1; i < len(names); i++ {
		if walkCompare(names[i-1], names[i]) >= 0 {
			t.Fatalf("%q then %q: not increasing", names[i-1], names[i])
		}
	}
}

// TestLookup: the cursor gives what find and decode give, whatever order
// the manifest asks in: the archive's own, with paths missing on either
// side, backwards, at random, and after members were added behind it.
func TestLookup(t *testing.T) {
	names := walkNames(1000)
	skip := func(step int) []string {
		var out []string
		for i := 0; i < len(names); i += step {
			out = append(out, names[i])
		}
		return out
	}
	reversed := slices.Clone(names)
	slices.Reverse(reversed)
	shuffled := slices.Clone(names)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	withAbsent := []string{"aaa", names[0], "srv/www/site000/zzz", names[1], names[2], "zzz", names[17], names[16], names[15], names[999]}
	for _, tc := range []struct {
		label string
		ask   []string
	}{
		{"archive order", names},
		{"every other", skip(2)},
		{"every 17th", skip(17)},
		{"backwards", reversed},
		{"at random", shuffled},
		{"absent names between", withAbsent},
	} {
		for _, members := range []int{0, 1, 16, 17, 1000} {
			m := newMembers()
			for i, name := range names[:members] {
				m.put(name, seenFor(i, name))
			}
			for _, name := range tc.ask {
				want := m.find(name)
				got, v := m.lookup(name)
				if got != want {
					t.Fatalf("%s, %d members: lookup(%q) = %d, find says %d", tc.label, members, name, got, want)
				}
				if got < 0 {
					continue
				}
				_, wantV := m.decode(got, true)
				if v != wantV {
					t.Fatalf("%s, %d members: lookup(%q) decodes %+v, want %+v", tc.label, members, name, v, wantV)
				}
			}
		}
	}
	// Members put after the cursor reached the end (a member after the
	// manifest) are found too.
	m := newMembers()
	for i, name := range names[:20] {
		m.put(name, seenFor(i, name))
	}
	for _, name := range names[:20] {
		m.lookup(name)
	}
	for i, name := range names[20:40] {
		m.put(name, seenFor(20+i, name))
	}
	for i, name := range names[20:40] {
		if got, v := m.lookup(name); got != 20+i || v.mtime != seenFor(20+i, name).mtime {
			t.Fatalf("lookup(%q) after more members = %d (%+v), want %d", name, got, v, 20+i)
		}
	}
}
