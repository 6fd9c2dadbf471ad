// Package pipe is the plumbing of drym's object streams: a buffered,
// bounded in-memory pipe between two goroutines, and a Tap that hashes and
// counts a stream as it is read.
//
// io.Pipe hands each Write to a Read synchronously, so the two stages of a
// backup (archive+compress, encrypt+upload) take turns instead of running at
// once. This pipe lets the writer run up to depth chunks ahead, which is what
// makes the stages overlap, while memory stays at depth × chunk size.
package pipe

import (
	"errors"
	"io"
	"sync"
)

// Pipe is created by New. One goroutine writes (Write, ReadFrom) and ends
// with CloseWrite; one reads (Read, WriteTo) and may give up with CloseRead.
type Pipe struct {
	full  chan []byte
	free  chan []byte
	size  int
	cur   []byte // writer's chunk being filled
	rcur  []byte // reader's chunk being drained
	roff  int
	mu    sync.Mutex
	werr  error // set by CloseWrite: io.EOF, or the writer's failure
	rerr  error // set by CloseRead: why the reader went away
	done  chan struct{}
	once  sync.Once
	wdone bool
}

// New returns a pipe of depth chunks of size bytes each.
func New(size, depth int) *Pipe {
	p := &Pipe{
		full: make(chan []byte, depth),
		free: make(chan []byte, depth+2),
		size: size,
		done: make(chan struct{}),
	}
	for range depth + 2 {
		p.free <- make([]byte, 0, size)
	}
	return p
}

// ErrClosed is returned by Write after the reader went away.
var ErrClosed = errors.New("pipe: reader closed")

// Write copies b into chunks; it blocks while depth chunks are waiting.
func (p *Pipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if p.cur == nil {
			select {
			case p.cur = <-p.free:
			case <-p.done:
				return n, p.readerErr()
			}
		}
		m := copy(p.cur[len(p.cur):cap(p.cur)], b)
		p.cur = p.cur[:len(p.cur)+m]
		b = b[m:]
		n += m
		if len(p.cur) == cap(p.cur) {
			if err := p.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// ReadFrom fills chunks straight from r, saving a copy.
func (p *Pipe) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for {
		if p.cur == nil {
			select {
			case p.cur = <-p.free:
			case <-p.done:
				return n, p.readerErr()
			}
		}
		m, err := r.Read(p.cur[len(p.cur):cap(p.cur)])
		p.cur = p.cur[:len(p.cur)+m]
		n += int64(m)
		if len(p.cur) == cap(p.cur) {
			if ferr := p.flush(); ferr != nil {
				return n, ferr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (p *Pipe) flush() error {
	if len(p.cur) == 0 {
		return nil
	}
	select {
	case p.full <- p.cur:
		p.cur = nil
		return nil
	case <-p.done:
		return p.readerErr()
	}
}

func (p *Pipe) readerErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rerr != nil {
		return p.rerr
	}
	return ErrClosed
}

// CloseWrite ends the stream: the reader gets the remaining data, then err
// (io.EOF when err is nil).
func (p *Pipe) CloseWrite(err error) {
	if err == nil {
		if ferr := p.flush(); ferr != nil {
			return
		}
	}
	p.mu.Lock()
	if err == nil {
		err = io.EOF
	}
	if p.werr == nil {
		p.werr = err
	}
	p.mu.Unlock()
	if !p.wdone {
		p.wdone = true
		close(p.full)
	}
}

// next recycles the drained chunk and waits for the next one; at the end of
// the stream it returns the writer's error (io.EOF for a clean end).
func (p *Pipe) next() error {
	if p.rcur != nil {
		p.free <- p.rcur[:0]
		p.rcur = nil
	}
	c, ok := <-p.full
	if !ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.werr
	}
	p.rcur, p.roff = c, 0
	return nil
}

// Read returns buffered data, blocking until a chunk is ready.
func (p *Pipe) Read(b []byte) (int, error) {
	if p.rcur == nil || p.roff == len(p.rcur) {
		if err := p.next(); err != nil {
			return 0, err
		}
	}
	n := copy(b, p.rcur[p.roff:])
	p.roff += n
	return n, nil
}

// ReadChunk returns the rest of the current chunk, or the next one, without
// a copy: the slice is the pipe's and valid until the next read of any
// kind. At the end of the stream it returns the writer's error.
func (p *Pipe) ReadChunk() ([]byte, error) {
	if p.rcur == nil || p.roff == len(p.rcur) {
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	b := p.rcur[p.roff:]
	p.roff = len(p.rcur)
	return b, nil
}

// WriteTo hands whole chunks to w, saving a copy.
func (p *Pipe) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if p.rcur != nil && p.roff < len(p.rcur) {
			m, err := w.Write(p.rcur[p.roff:])
			n += int64(m)
			p.roff += m
			if err != nil {
				return n, err
			}
		}
		if err := p.next(); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
	}
}

// CloseRead tells the writer that nobody reads any more: its next Write
// fails with err (ErrClosed when nil).
func (p *Pipe) CloseRead(err error) {
	p.mu.Lock()
	if p.rerr == nil {
		p.rerr = err
	}
	p.mu.Unlock()
	p.once.Do(func() { close(p.done) })
}
