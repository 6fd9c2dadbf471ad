package restore

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/drym-backup/drym/internal/archive"
)

// members remembers what the archive held for each path until the manifest
// (the last member) is matched against it, in as little memory as will do:
// test-restore's peak RSS must not grow with the number of files.
//
// A map[string]seen cost ≈ 300 bytes a member (the key and the hex SHA-256
// as separate allocations, 88-byte slots, growth slack). Here members are
// encoded one after the other into a byte arena: the name front-coded
// against the previous one (tar order keeps neighbours' prefixes shared),
// then type, mode, mtime (as a difference), size, and the raw SHA-256 of a
// file or the target of a link. A restart point every restartEvery members
// lets any member decode from at most restartEvery entries; the index is an
// open-addressing table of 8-byte slots (32 bits of hash, member number),
// and a bitset marks members matched by the manifest. About 60 bytes a file.
//
// drym writes members in walk order: names strictly increasing when
// compared component by component. While that holds there can be no
// duplicate and a name is found by binary search over the restart points,
// so the index is not built at all; the first member out of order (stock
// tar, several sources, a hostile archive) builds it from what came so far.
type members struct {
	// blocks hold the encoded members; a restart group never spans two,
	// and a new block starts once one is nearly full, so the arena grows
	// without ever copying (a doubling slice left its old copy as garbage
	// at the peak).
	blocks    [][]byte
	restarts  []uint64 // block<<32 | offset of every restartEvery-th member
	n         int
	done      []uint64 // bitset: matched by the manifest (or superseded)
	slots     []uint64 // hash32<<32 | member+1; 0 is empty; nil while ordered
	unordered bool
	used      int
	seed      maphash.Seed
	last      string // the previous name, for front coding (not a copy)
	lastMTime int64
	name      []byte // decode scratch
	cur       cursor
}

// cursor walks the members in archive order for lookup: the manifest lists
// paths in the order drym archived them, so the member after the last one
// matched is almost always the next one asked for, and a binary search
// (with a restart group decoded each time) for every entry was a tenth of a
// test restore's CPU for 100,000 small files.
type cursor struct {
	next   int // the member peeked at, or to be decoded next
	blk    int // the block it is in (not the slice: a block may grow)
	off    int
	name   []byte
	mtime  int64
	v      view
	peeked bool
}

const (
	restartEvery = 16
	blockSize    = 64 << 10
)

var typeCodes = []string{"", archive.TypeFile, archive.TypeDir, archive.TypeSymlink, archive.TypeHardlink}

func typeCode(t string) byte {
	for i, s := range typeCodes {
		if s == t {
			return byte(i)
		}
	}
	return 0
}

func newMembers() *members {
	return &members{seed: maphash.MakeSeed()}
}

// unhex32 decodes 64 hex digits without allocating.
func unhex32(s string) ([32]byte, bool) {
	var b [32]byte
	if len(s) != 64 {
		return b, false
	}
	for i := range b {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return [32]byte{}, false
		}
		b[i] = hi<<4 | lo
	}
	return b, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// view is a decoded member.
type view struct {
	typ   string
	size  int64
	sha   [32]byte
	mode  int64
	mtime int64
	link  string
	attrs [32]byte
}

// attrsFlag marks, in the type byte, a member followed by the digest of its
// extended attributes and ACLs (most have none, and store nothing).
const attrsFlag = 0x80

func (m *members) isDone(i int) bool { return m.done[i/64]&(1<<(i%64)) != 0 }
func (m *members) setDone(i int)     { m.done[i/64] |= 1 << (i % 64) }

// find returns the number of the member called name, or -1.
func (m *members) find(name string) int {
	if !m.unordered {
		return m.search(name)
	}
	h32 := uint32(maphash.String(m.seed, name))
	mask := uint64(len(m.slots) - 1)
	for p := uint64(h32) & mask; ; p = (p + 1) & mask {
		sl := m.slots[p]
		if sl == 0 {
			return -1
		}
		if uint32(sl>>32) == h32 {
			i := int(uint32(sl)) - 1
			if nm, _ := m.decode(i, false); string(nm) == name {
				return i
			}
		}
	}
}

// lookup returns the number of the member called name (-1 for none) and
// the member decoded in full. While the members are in walk order it tries
// the member after the previous match first; find settles the rest.
func (m *members) lookup(name string) (int, view) {
	if !m.unordered && m.peek() && string(m.cur.name) == name {
		i := m.cur.next
		m.cur.next++
		m.cur.peeked = false
		return i, m.cur.v
	}
	i := m.find(name)
	if i < 0 {
		return -1, view{}
	}
	_, v := m.decode(i, true)
	if !m.unordered {
		m.seek(i + 1)
	}
	return i, v
}

// peek decodes the cursor's member, if there is one.
func (m *members) peek() bool {
	c := &m.cur
	if c.peeked {
		return true
	}
	if c.next >= m.n {
		return false
	}
	if c.next%restartEvery == 0 {
		r := m.restarts[c.next/restartEvery]
		c.blk, c.off, c.name, c.mtime = int(r>>32), int(uint32(r)), c.name[:0], 0
	}
	c.off, c.name, c.mtime = entry(m.blocks[c.blk], c.off, c.name, c.mtime, true, &c.v)
	c.peeked = true
	return true
}

// seek moves the cursor to member i.
func (m *members) seek(i int) {
	c := &m.cur
	c.next, c.peeked = i, false
	if i%restartEvery == 0 {
		return // peek starts from the restart point
	}
	g := i / restartEvery // i−1 exists, and is in group g
	r := m.restarts[g]
	c.blk, c.off, c.name, c.mtime = int(r>>32), int(uint32(r)), c.name[:0], 0
	for j := g * restartEvery; j < i; j++ {
		c.off, c.name, c.mtime = entry(m.blocks[c.blk], c.off, c.name, c.mtime, false, &c.v)
	}
}

// put appends s for name. A second member of the same name supersedes the
// first (which is marked done, so it is neither matched nor reported); put
// reports whether there was one.
func (m *members) put(name string, s seen) (dup bool) {
	i := m.n
	if !m.unordered && i > 0 && walkCompare(m.last, name) >= 0 {
		m.index()
	}
	old := -1
	if m.unordered {
		old = m.find(name)
	}
	if i%64 == 0 {
		m.done = append(m.done, 0)
	}
	shared := 0
	if i%restartEvery == 0 {
		if len(m.blocks) == 0 || len(m.blocks[len(m.blocks)-1]) > blockSize-blockSize/8 {
			m.blocks = append(m.blocks, make([]byte, 0, blockSize))
		}
		cur := len(m.blocks) - 1
		m.restarts = append(m.restarts, uint64(cur)<<32|uint64(len(m.blocks[cur])))
		m.lastMTime = 0
	} else {
		for shared < len(m.last) && shared < len(name) && m.last[shared] == name[shared] {
			shared++
		}
	}
	t := typeCode(s.typ)
	hasAttrs := s.attrs != [32]byte{}
	if hasAttrs {
		t |= attrsFlag
	}
	e := m.blocks[len(m.blocks)-1]
	e = binary.AppendUvarint(e, uint64(shared))
	e = binary.AppendUvarint(e, uint64(len(name)-shared))
	e = append(e, name[shared:]...)
	e = append(e, t)
	e = binary.AppendUvarint(e, uint64(s.mode))
	e = binary.AppendVarint(e, s.mtime-m.lastMTime)
	e = binary.AppendVarint(e, s.size)
	switch s.typ {
	case archive.TypeFile:
		// A value that is not 64 hex digits cannot come from hashing;
		// zeros then differ from any manifest digest.
		sum := s.sum
		if !s.hasSum {
			sum, _ = unhex32(s.sha256)
		}
		e = append(e, sum[:]...)
	case archive.TypeSymlink, archive.TypeHardlink:
		e = binary.AppendUvarint(e, uint64(len(s.link)))
		e = append(e, s.link...)
	}
	if hasAttrs {
		e = append(e, s.attrs[:]...)
	}
	m.blocks[len(m.blocks)-1] = e
	m.last = name
	m.lastMTime = s.mtime
	m.n++
	if !m.unordered {
		return false
	}
	h32 := uint32(maphash.String(m.seed, name))
	if old >= 0 {
		m.setDone(old)
		m.slots[m.slot(h32, old)] = uint64(h32)<<32 | uint64(i+1)
		return true
	}
	// The index, kept at most half full.
	if 2*(m.used+1) > len(m.slots) {
		m.grow()
	}
	m.insert(h32, i)
	return false
}

// index builds the hash index of every member so far and keeps it from
// now on.
func (m *members) index() {
	m.unordered = true
	size := 1024
	for size < 4*m.n {
		size *= 2
	}
	m.slots = make([]uint64, size)
	m.each(func(i int, name []byte) {
		m.insert(uint32(maphash.Bytes(m.seed, name)), i)
	})
}

// search finds name by binary search while the members are in walk order:
// the first name of each restart group is stored whole.
func (m *members) search(name string) int {
	groups := len(m.restarts)
	// The last group whose first name is ≤ name.
	lo, hi := 0, groups // invariant: groups < lo start ≤ name, ≥ hi start > name
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if walkCompare(string(m.first(mid)), name) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	g := lo - 1
	if g < 0 {
		return -1
	}
	r := m.restarts[g]
	e, off := m.blocks[r>>32], int(uint32(r))
	var b []byte
	var mtime int64
	var v view
	for i := g * restartEvery; i < min(m.n, (g+1)*restartEvery); i++ {
		off, b, mtime = entry(e, off, b, mtime, false, &v)
		if string(b) == name {
			return i
		}
	}
	return -1
}

// first is the first name of restart group g (valid until the next call).
func (m *members) first(g int) []byte {
	r := m.restarts[g]
	e, off := m.blocks[r>>32], int(uint32(r))
	var v view
	_, b, _ := entry(e, off, m.name[:0], 0, false, &v)
	m.name = b
	return b
}

// walkCompare orders paths component by component (as a directory walk
// visits them): a '/' sorts before every other byte.
func walkCompare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		switch {
		case x == '/':
			return -1
		case y == '/':
			return 1
		case x < y:
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// slot is where member i sits in the index.
func (m *members) slot(h32 uint32, i int) uint64 {
	mask := uint64(len(m.slots) - 1)
	want := uint64(h32)<<32 | uint64(i+1)
	p := uint64(h32) & mask
	for m.slots[p] != want {
		p = (p + 1) & mask
	}
	return p
}

func (m *members) insert(h32 uint32, i int) {
	mask := uint64(len(m.slots) - 1)
	for p := uint64(h32) & mask; ; p = (p + 1) & mask {
		if m.slots[p] == 0 {
			m.slots[p] = uint64(h32)<<32 | uint64(i+1)
			m.used++
			return
		}
	}
}

func (m *members) grow() {
	old := m.slots
	m.slots = make([]uint64, 2*len(old))
	m.used = 0
	for _, sl := range old {
		if sl != 0 {
			m.insert(uint32(sl>>32), int(uint32(sl))-1)
		}
	}
}

// decode returns the name of member i (valid until the next decode) and,
// when full, the rest of it.
func (m *members) decode(i int, full bool) ([]byte, view) {
	r := m.restarts[i/restartEvery]
	e, off := m.blocks[r>>32], int(uint32(r))
	b := m.name[:0]
	var v view
	var mtime int64
	for j := i - i%restartEvery; j <= i; j++ {
		off, b, mtime = entry(e, off, b, mtime, j == i && full, &v)
	}
	m.name = b
	return b, v
}

// entry decodes the member at off, after the name b and mtime of the one
// before it; with full, it fills v.
func entry(e []byte, off int, b []byte, mtime int64, full bool, v *view) (int, []byte, int64) {
	uv := func() uint64 {
		x, n := binary.Uvarint(e[off:])
		off += n
		return x
	}
	sv := func() int64 {
		x, n := binary.Varint(e[off:])
		off += n
		return x
	}
	shared := int(uv())
	l := int(uv())
	b = append(b[:shared], e[off:off+l]...)
	off += l
	t := e[off]
	off++
	hasAttrs := t&attrsFlag != 0
	t &^= attrsFlag
	mode := int64(uv())
	mtime += sv()
	size := sv()
	if full {
		*v = view{typ: typeCodes[t], size: size, mode: mode, mtime: mtime}
	}
	switch typeCodes[t] {
	case archive.TypeFile:
		if full {
			copy(v.sha[:], e[off:off+32])
		}
		off += 32
	case archive.TypeSymlink, archive.TypeHardlink:
		l := int(uv())
		if full {
			v.link = string(e[off : off+l])
		}
		off += l
	}
	if hasAttrs {
		if full {
			copy(v.attrs[:], e[off:off+32])
		}
		off += 32
	}
	return off, b, mtime
}

// each calls fn with every member's number and name (valid during the
// call), in archive order.
func (m *members) each(fn func(i int, name []byte)) {
	m.eachView(false, func(i int, name []byte, _ *view) { fn(i, name) })
}

// eachView is each with the members decoded in full when full is set.
func (m *members) eachView(full bool, fn func(i int, name []byte, v *view)) {
	var e, b []byte
	var off int
	var mtime int64
	var v view
	for i := 0; i < m.n; i++ {
		if i%restartEvery == 0 {
			r := m.restarts[i/restartEvery]
			e, off, mtime = m.blocks[r>>32], int(uint32(r)), 0
		}
		off, b, mtime = entry(e, off, b, mtime, full, &v)
		fn(i, b, &v)
	}
}
