// Package restore reads drym backup objects back: it streams an object
// through SHA-256, OpenPGP decryption and zstd into a tar reader, verifies
// every member against the archive's manifest (test-restore), and extracts
// archives into a directory without ever writing outside it (restore).
//
// Nothing is spooled to disk and memory stays bounded: reading (with the
// object's SHA-256), decryption and decompression each run on a goroutine
// of their own, joined by bounded chunked pipes to the caller's tar reader,
// so the CPU-heavy stages spread over every core.
package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/klauspost/compress/zstd"

	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/pipe"
)

// Pipeline sizing: 1 MiB chunks. The object pipe (read+SHA-256 →
// decrypt) only needs to keep the decrypter fed; the plaintext pipe
// (decrypt → decompress) absorbs the jitter between the two CPU-heavy
// stages, which run on different cores.
const (
	chunkSize  = 1 << 20
	objDepth   = 2
	chunkDepth = 4
	tarDepth   = 2
)

// MaxWindow bounds the zstd window a stream may ask for. drym writes small
// windows; 128 MiB is what `zstd --long` uses, so archives made by stock
// zstd decode too, while a hostile frame cannot claim gigabytes.
const MaxWindow = 128 << 20

// Want is a SHA-256 the object is expected to have, and where that
// expectation comes from (for messages).
type Want struct {
	SHA256 string // lower-case hex
	From   string // e.g. "sidecar <name>.sha256"
}

// Result describes the object as read.
type Result struct {
	ObjectBytes  int64
	ObjectSHA256 string
	// SHA256Checked is true when at least one Want was compared and matched.
	SHA256Checked bool
}

// Stream is the decompressed tar stream of one backup object. Read it, then
// call Finish exactly once, even after an error.
type Stream struct {
	ctx    context.Context
	op     *pipe.Pipe // object bytes, hashed
	p      *pipe.Pipe // plaintext (zstd)
	tp     *pipe.Pipe // decompressed tar
	zr     *zstd.Decoder
	zerr   error
	zdone  chan struct{}
	done   chan struct{}
	decErr error // set by the decrypt goroutine before done closes
	rdone  chan struct{}
	objErr error // set by the read goroutine before rdone closes
	obj    *pipe.Tap
}

// Open starts reading the OpenPGP object obj: one goroutine reads and
// hashes the raw bytes, another decrypts them with keys into a bounded
// pipe; reads from the Stream decompress. onRead, when set, is called with
// the number of object bytes read (progress), from the read goroutine.
//
// Three stages, not two: SHA-256 of the object and decryption (AES + the
// SHA-1 MDC) together took as long as decompression plus the SHA-256 of
// every file, so on one goroutine they left the other core waiting; split,
// the Go scheduler spreads the three over two cores.
func Open(ctx context.Context, obj io.Reader, keys openpgp.EntityList, onRead func(int)) *Stream {
	s := &Stream{
		ctx:   ctx,
		op:    pipe.New(chunkSize, objDepth),
		p:     pipe.New(chunkSize, chunkDepth),
		tp:    pipe.New(chunkSize, tarDepth),
		done:  make(chan struct{}),
		zdone: make(chan struct{}),
		rdone: make(chan struct{}),
		obj:   &pipe.Tap{R: obj, Hash: sha256.New(), OnRead: onRead},
	}
	go s.read()
	go s.decrypt(keys)
	// Concurrency 1: the decoder runs on a goroutine of its own, joined
	// to the tar reader (and the SHA-256 of every file) by another pipe;
	// zstd's own concurrent mode was slower here.
	s.zr, s.zerr = zstd.NewReader(s.p,
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderConcurrency(1),
	)
	if s.zerr != nil {
		s.zerr = fmt.Errorf("decompressing: %w", s.zerr)
		s.tp.CloseWrite(s.zerr)
		close(s.zdone)
	} else {
		go s.decompress()
	}
	return s
}

// decompress copies the decompressed stream into tp until its end, or
// until Finish stops reading.
func (s *Stream) decompress() {
	defer close(s.zdone)
	_, err := s.zr.WriteTo(s.tp)
	if err != nil && !errors.Is(err, pipe.ErrClosed) {
		err = fmt.Errorf("decompressing: %w", err)
	}
	s.tp.CloseWrite(err)
}

// read copies the whole object through its SHA-256 into op.
func (s *Stream) read() {
	defer close(s.rdone)
	_, err := s.op.ReadFrom(s.obj)
	if err != nil && !errors.Is(err, pipe.ErrClosed) {
		err = fmt.Errorf("reading the object: %w", err)
	} else {
		err = nil
	}
	s.objErr = err
	s.op.CloseWrite(err)
}

func (s *Stream) decrypt(keys openpgp.EntityList) {
	defer close(s.done)
	err := func() error {
		plain, err := crypt.Decrypt(s.op, keys)
		if err != nil {
			return err
		}
		if _, err := s.p.ReadFrom(plain); err != nil {
			if errors.Is(err, pipe.ErrClosed) {
				// The reader gave up (bad zstd, bad tar): keep
				// decrypting so the integrity check still runs and
				// can name the real cause.
				_, err = io.Copy(io.Discard, plain)
			}
			return err
		}
		return nil
	}()
	// Read what is left of the object, so its SHA-256 covers every byte
	// (trailing bytes, or the rest after a failure) and can be compared.
	rest, _ := io.Copy(io.Discard, s.op)
	<-s.rdone
	if err == nil && s.objErr != nil {
		err = s.objErr
	}
	if err == nil && rest > 0 {
		err = fmt.Errorf("%w: %d bytes of unexpected data after the encrypted message", crypt.ErrIntegrity, rest)
	}
	s.decErr = err
	s.p.CloseWrite(err)
}

// Read returns decompressed tar bytes.
func (s *Stream) Read(b []byte) (int, error) { return s.tp.Read(b) }

// ReadChunk returns decompressed tar bytes without a copy, valid until the
// next read (verify's tar scanner hashes them in place).
func (s *Stream) ReadChunk() ([]byte, error) { return s.tp.ReadChunk() }

// WriteTo lets io.Copy take the pipe's chunks without a copy.
func (s *Stream) WriteTo(w io.Writer) (int64, error) { return s.tp.WriteTo(w) }

// Finish reads the rest of the stream (the tar end padding, and, after a
// failure, the rest of the object, so the OpenPGP integrity check reaches
// its verdict), compares the object's SHA-256 with want, and returns the
// error that best names what is wrong: readErr is the caller's own error
// (a tar or decompression failure, or cancellation), nil if it read the
// archive to its end.
func (s *Stream) Finish(readErr error, want ...Want) (Result, error) {
	if readErr == nil {
		// Bytes after the tar end-of-archive marker still need to
		// decompress cleanly: a frame checksum error there is damage too.
		if _, err := io.Copy(io.Discard, s.tp); err != nil {
			readErr = err
		}
	}
	// After a failure there is no point decompressing the rest: stop
	// the decoder, then let the decrypter run to the end.
	s.tp.CloseRead(nil)
	<-s.zdone
	if s.zr != nil {
		s.zr.Close()
	}
	// Drain the pipe: the decrypt goroutine then runs to the end of the
	// object, or stops at once when ctx is cancelled (the store's reader
	// fails).
	_, _ = io.Copy(io.Discard, s.p)
	<-s.done

	res := Result{ObjectBytes: s.obj.N, ObjectSHA256: hex.EncodeToString(s.obj.Hash.Sum(nil))}
	var shaErr error
	for _, w := range want {
		if w.SHA256 == "" {
			continue
		}
		if w.SHA256 != res.ObjectSHA256 {
			shaErr = fmt.Errorf("%w: the object's SHA-256 %s differs from %s in %s (the object was altered or damaged in storage)",
				crypt.ErrIntegrity, short(res.ObjectSHA256), short(w.SHA256), w.From)
			break
		}
		res.SHA256Checked = true
	}
	if shaErr != nil {
		res.SHA256Checked = false
	}
	return res, cause(s.ctx, s.decErr, shaErr, readErr)
}

// cause orders what went wrong, most fundamental first: cancellation; an
// integrity failure of the decryption (it names truncation or MDC); a
// SHA-256 mismatch (it explains a garbled key packet better than "not our
// key"); any other decryption failure; then decompression or tar errors,
// which are only symptoms when one of the former holds.
func cause(ctx context.Context, decErr, shaErr, readErr error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var errs []error
	switch {
	case decErr != nil && errors.Is(decErr, crypt.ErrIntegrity):
		errs = append(errs, decErr, shaErr)
	case shaErr != nil:
		errs = append(errs, shaErr, decErr)
	case decErr != nil:
		errs = append(errs, decErr)
	default:
		errs = append(errs, readErr)
	}
	var msg string
	var first error
	for _, e := range errs {
		if e == nil {
			continue
		}
		if first == nil {
			first, msg = e, e.Error()
		} else {
			msg += "; also " + e.Error()
		}
	}
	if first == nil {
		return nil
	}
	if len(errs) > 1 && msg != first.Error() {
		return &joined{first: first, msg: msg}
	}
	return first
}

// joined keeps errors.Is working on the primary cause while the message
// lists the others too.
type joined struct {
	first error
	msg   string
}

func (j *joined) Error() string { return j.msg }
func (j *joined) Unwrap() error { return j.first }

func short(hexsum string) string {
	if len(hexsum) > 16 {
		return hexsum[:16] + "…"
	}
	return hexsum
}
