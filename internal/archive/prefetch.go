package archive

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"sync"

	"golang.org/x/sys/unix"
)

// Reading ahead. A small file costs the walk five system calls and a
// SHA-256 (walk.go), and on a tree of many small files that serial chain
// was the longest stage of a backup: the compressor and the encrypter
// waited for it with a core to spare, and on a cold disk every file was
// one disk round trip after the other. So the regular files of the
// directory being walked are opened, stat'ed, read and hashed ahead of
// the tar writer, in batches, by a few reader goroutines: the writer only
// lays out headers and copies content, in walk order, and on a cold disk
// several reads are in flight at once.
//
// A reader takes only the plain case: a regular file of at most
// readAheadMax bytes, with one link, no holes and no extended attributes,
// that reads back exactly its stat'ed size. Anything else goes back to the
// writer's own path (addOpen, or addRegAt from the name), which warns,
// pads, cuts, follows hard links and reads attributes exactly as before: a
// reader never decides anything a user would see.
const (
	readAheadFiles = 16        // files a batch
	readAheadBatch = 256 << 10 // content a batch reads, at most (and one file more)
	readAheadMax   = 64 << 10  // larger files are streamed by the writer
	// readAheadDepth batches are in flight at most: memory is bounded by
	// readAheadDepth × (readAheadBatch + readAheadMax) ≈ 2.5 MiB.
	readAheadDepth = 8
	// readers: more than the cores, so that on a cold disk reads wait
	// side by side; on a warm one they are short and the extra goroutines
	// idle.
	readers = 4
)

// How a reader left a file for the writer.
const (
	aheadRedo = iota // the writer archives it from its name (it went wrong, or changed)
	aheadOpen        // open as fd: the writer streams it (large, sparse, linked, attributes)
	aheadRead        // read whole: st, content and SHA-256 are ready
)

type aheadFile struct {
	idx   int   // index of its entry in the directory
	cname *byte // NUL-terminated name in the directory's dirLevel
	state int
	fd    int
	st    unix.Stat_t
	off   int // content is batch.data[off : off+st.Size]
	sum   [sha256.Size]byte
}

type aheadBatch struct {
	dirfd int
	files []aheadFile
	data  []byte
	done  chan struct{} // closed when every file is dealt with
}

// readAhead is the pool of readers and batches of one Write.
type readAhead struct {
	work chan *aheadBatch
	free chan *aheadBatch
	wg   sync.WaitGroup
}

func newReadAhead() *readAhead {
	r := &readAhead{work: make(chan *aheadBatch, readAheadDepth), free: make(chan *aheadBatch, readAheadDepth)}
	for range readAheadDepth {
		r.free <- &aheadBatch{files: make([]aheadFile, 0, readAheadFiles), data: make([]byte, 0, readAheadBatch+readAheadMax+1)}
	}
	for range readers {
		r.wg.Add(1)
		go r.reader()
	}
	return r
}

// stop ends the readers; every batch must have been drained.
func (r *readAhead) stop() {
	close(r.work)
	r.wg.Wait()
}

func (r *readAhead) reader() {
	defer r.wg.Done()
	h := sha256.New()
	var xattrs [1]byte
	for b := range r.work {
		for i := range b.files {
			readOne(b, &b.files[i], h, xattrs[:])
		}
		close(b.done)
	}
}

// readOne takes the plain case of one file (see above), or hands it back.
func readOne(b *aheadBatch, f *aheadFile, h hash.Hash, xattrs []byte) {
	f.state = aheadRedo
	fd, err := openat(b.dirfd, f.cname, regFlags)
	if err == unix.EPERM {
		fd, err = openat(b.dirfd, f.cname, regFlags&^unix.O_NOATIME)
	}
	if err != nil {
		return
	}
	st := &f.st
	if unix.Fstat(fd, st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return
	}
	size := int(st.Size)
	if st.Nlink > 1 || st.Size > readAheadMax || st.Blocks*512 < st.Size || len(b.data)+size > readAheadBatch+readAheadMax {
		f.fd, f.state = fd, aheadOpen
		return
	}
	// Any attribute at all (the one-byte buffer is too small for a name:
	// ERANGE), or an error reading the list: the writer's attrs decides.
	if n, err := unix.Flistxattr(fd, xattrs); n > 0 || (err != nil && !errors.Is(err, unix.ENOTSUP)) {
		f.fd, f.state = fd, aheadOpen
		return
	}
	// One byte more than the size: a file that grew shows it here.
	f.off = len(b.data)
	buf := b.data[f.off : f.off+size+1]
	got := 0
	for {
		m, err := unix.Read(fd, buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			break
		}
		got += m
		if got >= size {
			// It grew; or this read, short of the byte asked beyond
			// the size, ended the file.
			break
		}
	}
	unix.Close(fd)
	if got != size {
		return // shrank, grew or failed while read: the writer does it again, and says so
	}
	h.Reset()
	h.Write(buf[:size])
	h.Sum(f.sum[:0])
	b.data = b.data[:f.off+size]
	f.state = aheadRead
}

// aheadQueue is the read-ahead of one directory: its batches in walk
// order, the next file the writer takes, and the next entry to submit.
type aheadQueue struct {
	batches []*aheadBatch
	head    int // next file of batches[0]
	next    int // next entry of the directory to submit
}

// fill submits the directory's regular files from entry i on, in batches,
// while batches are free, up to the next subdirectory: the batches are all
// taken and free again when the walk goes down into it, so the directories
// below get the whole read-ahead too. It never waits: when no batch is
// free, the files are archived by the writer alone.
func (a *writer) fill(q *aheadQueue, dirfd int, lv *dirLevel, name string, i int) {
	if a.ahead == nil {
		return // Options.serial
	}
	q.next = max(q.next, i)
	for len(q.batches) < readAheadDepth && q.next < len(lv.ents) && !descends(lv.ents[q.next].typ) {
		var b *aheadBatch
		select {
		case b = <-a.ahead.free:
		default:
			return
		}
		b.dirfd, b.files, b.data = dirfd, b.files[:0], b.data[:0]
		for q.next < len(lv.ents) && len(b.files) < readAheadFiles && !descends(lv.ents[q.next].typ) {
			e, idx := lv.ents[q.next], q.next
			q.next++
			if e.typ != unix.DT_REG {
				continue
			}
			if len(a.opt.Exclude) > 0 && a.excluded(joinName(name, string(lv.name(e)))) {
				continue
			}
			b.files = append(b.files, aheadFile{idx: idx, cname: &lv.names[e.off]})
		}
		if len(b.files) == 0 {
			a.ahead.free <- b
			continue
		}
		b.done = make(chan struct{})
		q.batches = append(q.batches, b)
		a.ahead.work <- b // never blocks: there are no more batches than its room
	}
}

// descends: an entry of this type may be a directory the walk goes into.
func descends(typ uint8) bool { return typ == unix.DT_DIR || typ == unix.DT_UNKNOWN }

// release frees the batches the writer has taken every file of (before
// the walk goes down into a subdirectory, and as take moves on).
func (a *writer) release(q *aheadQueue) {
	for len(q.batches) > 0 && q.head == len(q.batches[0].files) {
		a.ahead.free <- q.batches[0]
		q.batches, q.head = q.batches[1:], 0
	}
}

// take returns entry i's file if it was read ahead (waiting for its
// batch), and its batch, which stays the writer's until the next take or
// drain.
func (a *writer) take(q *aheadQueue, i int) (*aheadFile, *aheadBatch) {
	for a.release(q); len(q.batches) > 0; a.release(q) {
		b := q.batches[0]
		f := &b.files[q.head]
		if f.idx > i {
			return nil, nil
		}
		<-b.done
		q.head++
		if f.idx == i {
			return f, b
		}
		if f.state == aheadOpen { // passed over: cannot happen, but do not leak it
			unix.Close(f.fd)
		}
	}
	return nil, nil
}

// drain waits for the directory's batches, closes what was left open and
// frees them: the directory's descriptor and names outlive no reader.
func (a *writer) drain(q *aheadQueue) {
	for n, b := range q.batches {
		<-b.done
		from := 0
		if n == 0 {
			from = q.head
		}
		for _, f := range b.files[from:] {
			if f.state == aheadOpen {
				unix.Close(f.fd)
			}
		}
		a.ahead.free <- b
	}
	q.batches, q.head = nil, 0
}

// addAhead archives a file a reader dealt with: read whole, it is written
// here; otherwise the writer's own path takes it.
func (a *writer) addAhead(f *aheadFile, b *aheadBatch, dirfd int, cname *byte, dir, name string) error {
	switch f.state {
	case aheadOpen:
		defer unix.Close(f.fd)
		return a.addOpen(f.fd, name, name, memberName(name))
	case aheadRedo:
		return a.addRegAt(dirfd, cname, dir, name)
	}
	size := f.st.Size
	hdr, entry := a.newHeader(&f.st, memberName(name))
	hdr.Typeflag = tar.TypeReg
	hdr.Size = size
	raw, err := a.header(hdr)
	if err != nil {
		return err
	}
	var body io.Writer = a.tw
	if raw {
		body = a.out
	}
	if _, err := body.Write(b.data[f.off : f.off+int(size)]); err != nil {
		return err
	}
	if err := a.padRaw(raw, size); err != nil {
		return err
	}
	a.sum = append(a.sum[:0], f.sum[:]...)
	return a.fileEntry(&entry, size)
}
