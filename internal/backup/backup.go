// Package backup produces one backup object: it streams the sources through
// archive (tar + manifest) → zstd → OpenPGP → store, on overlapping
// goroutines joined by bounded pipes, so nothing is spooled to disk and memory
// does not grow with the data. Beside the object it stores the host's signed
// statement about it (<name>.sha256 and <name>.sig, see internal/statement).
//
// It also judges objects for readers (trust.go): whether a statement is
// signed by the host key, which object is "latest", which are dated in the
// future.
package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/drym-backup/drym/internal/archive"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/pipe"
	"github.com/drym-backup/drym/internal/statement"
	"github.com/drym-backup/drym/internal/store"
)

// Suffix ends every backup object name.
const Suffix = ".tar.zst.gpg"

// Suffixes of the objects stored beside a backup object: the statement
// (sha256sum format) and its detached signature by the host key.
const (
	SidecarSuffix   = statement.SidecarSuffix
	SignatureSuffix = statement.SignatureSuffix
)

// timeLayout is the UTC timestamp at the start of a name: lexical order of
// names is time order (what "latest" means is in trust.go).
const timeLayout = "20060102T150405Z"

// NewName returns <UTC yyyymmddThhmmssZ>-<128 random bits in hex>.tar.zst.gpg:
// time-ordered, and unguessable, so a compromised host cannot pre-empt or
// target a future name.
func NewName(now time.Time) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return now.UTC().Format(timeLayout) + "-" + hex.EncodeToString(b[:]) + Suffix, nil
}

var nameRe = regexp.MustCompile(`^(\d{8}T\d{6}Z)-[0-9a-f]{32}\.tar\.zst\.gpg$`)

// ParseName returns the time encoded in a backup object name, or an error if
// name is not one.
func ParseName(name string) (time.Time, error) {
	m := nameRe.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, fmt.Errorf("%q is not a drym backup name", name)
	}
	return time.Parse(timeLayout, m[1])
}

// IsName reports whether name is a backup object name.
func IsName(name string) bool { return nameRe.MatchString(name) }

// Params says what to back up and where.
type Params struct {
	Host       string
	Sources    []string
	Exclude    []string
	Recipients []*openpgp.Entity // the host key first, then extra recipients
	// Signer is the host's secret key: it signs the statement about the
	// object, which is what makes the backup the host's own (SEIPD's MDC
	// is no MAC: anyone with the public key can make an object that
	// decrypts).
	Signer *openpgp.Entity
	Store  store.Store
	// Now names and dates the backup; the zero time is refused.
	Now time.Time
	// OnFile is called after each regular file (progress).
	OnFile func(size int64)
	// OnOutput is called as encrypted bytes are stored (progress).
	OnOutput func(n int)
}

// Result describes the stored backup.
type Result struct {
	Name     string
	Stats    archive.Stats
	BytesOut int64
	SHA256   string
	// KeyIDs are the key IDs of the session key packets written: the
	// keys that can decrypt the object.
	KeyIDs []string
	// Signature is the name of the statement's signature object.
	Signature string
}

// Pipeline sizing: 1 MiB chunks, 4 deep, between each pair of stages. On
// the 2-core bench host 4 deep keeps the stages as busy as 8 did, and every
// chunk less is 1 MiB less resident.
const (
	chunkSize  = 1 << 20
	chunkDepth = 4
)

// Memory: the pipeline's live heap is fixed (≈ 24 MiB: 1 MiB zstd
// segments in and out, one pair per core and two more, the encrypted chunks,
// zstd history and tables, the file buffer, the encrypter's chunk) plus the
// packed manifest (≈ 70 bytes a file). With the Go default (GOGC=100) the
// heap may grow to twice the live heap before a collection, so peak RSS
// would grow twice as fast as the manifest. A soft memory limit keeps the
// peak flat instead: garbage is collected at memLimit however large the
// tree, and the limit rises with the number of files (by 1.5 times what
// their manifest holds) so that it stays above the live heap and the
// collector never has to run back to back: the backup makes little garbage
// a file (its name, its entry), so a collection every few MiB is cheap. On
// the 100,000-file tree this holds peak RSS near 50 MiB (≈ 58 with the
// previous 48 MiB floor and twice the manifest). GOMEMLIMIT, when set,
// wins.
const (
	memLimit        = 44 << 20
	memFixed        = 32 << 20
	manifestPerFile = 80
)

// limitMemory sets the soft memory limit for a backup and returns a func
// to call per file (it raises the limit as the manifest grows) and one that
// restores the old limit.
func limitMemory() (onFile func(), restore func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}, func() {}
	}
	old := debug.SetMemoryLimit(memLimit)
	var files int64
	return func() {
			files++
			if files%4096 == 0 {
				if want := memFixed + 3*manifestPerFile*files/2; want > memLimit {
					debug.SetMemoryLimit(want)
				}
			}
		}, func() {
			debug.SetMemoryLimit(old)
		}
}

// Run makes one backup. On error nothing is visible in the store under the
// new name (the store's Put guarantees it), and the error names the stage.
func Run(ctx context.Context, p Params) (Result, error) {
	if err := p.check(); err != nil {
		return Result{}, err
	}
	name, err := NewName(p.Now)
	if err != nil {
		return Result{}, err
	}
	countFile, restoreMem := limitMemory()
	defer restoreMem()
	onFile := func(size int64) {
		countFile()
		if p.OnFile != nil {
			p.OnFile(size)
		}
	}
	out, err := stream(ctx, p, name, onFile)
	res := Result{Name: name, Stats: out.stats}
	if err != nil {
		return res, err
	}
	res.BytesOut = out.bytes
	res.SHA256 = out.sha256
	res.KeyIDs = out.keyIDs
	if err := signObject(ctx, p, name, out.bytes, out.sha256); err != nil {
		return res, err
	}
	res.Signature = name + SignatureSuffix
	return res, nil
}

// streamed is what the pipeline made of the sources: the archive's
// figures, the keys the object is encrypted to, and the stored object's
// size and SHA-256.
type streamed struct {
	stats  archive.Stats
	keyIDs []string
	bytes  int64
	sha256 string
}

// stream runs the pipeline into the store under name: stage 1
// (archiveStage) on a goroutine of its own, stage 3 (hash and store) on
// this one, joined by a bounded pipe. A failure of either stage cancels
// the other; the error is the one pipelineError names.
//
// Stage 1 compresses on every core and writes the frames, in order, from
// one goroutine of its own (pzstd.go): that goroutine encrypts them too,
// straight from the frame buffer. CFB is serial, and giving it a stage of
// its own cost a goroutine hop and a copy of every byte through a pipe,
// which on small files was a tenth of the run.
func stream(ctx context.Context, p Params, name string, onFile func(int64)) (streamed, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	encrypted := pipe.New(chunkSize, chunkDepth)
	var out streamed
	var wg sync.WaitGroup
	var archErr, encErr error
	wg.Go(func() {
		var err error
		out.stats, out.keyIDs, encErr, err = archiveStage(ctx, encrypted, p, onFile)
		if err != nil {
			archErr = err
			cancel()
		}
		encrypted.CloseWrite(err)
	})

	h := sha256.New()
	n, putErr := p.Store.Put(ctx, name, &pipe.Tap{R: encrypted, Hash: h, OnRead: p.OnOutput})
	if putErr != nil {
		encrypted.CloseRead(putErr)
		cancel()
	}
	wg.Wait()
	if err := pipelineError(ctx, name, archErr, encErr, putErr); err != nil {
		return out, err
	}
	out.bytes = n
	out.sha256 = hex.EncodeToString(h.Sum(nil))
	return out, nil
}

// archiveStage is stage 1: walk, read, hash, tar; compress; encrypt into
// w. It returns the stage's error and, apart, the encrypter's (which may
// be the store's, come back through the pipe), so that pipelineError can
// tell the two apart.
func archiveStage(ctx context.Context, w io.Writer, p Params, onFile func(int64)) (stats archive.Stats, keyIDs []string, encErr, err error) {
	enc, err := crypt.Encrypt(w, p.Recipients)
	if err != nil {
		return stats, nil, err, err
	}
	keyIDs = enc.KeyIDs()
	ew := &errWriter{w: enc}
	zw, err := newParallelZstd(ew)
	if err != nil {
		return stats, keyIDs, nil, err
	}
	stats, err = archive.Write(ctx, zw, archive.Options{
		Host: p.Host, Sources: p.Sources, Exclude: p.Exclude, Now: p.Now,
		OnFile: func(size int64) {
			zw.fileDone()
			onFile(size)
		},
	})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = enc.Close(); err != nil {
			ew.err = err
		}
	}
	return stats, keyIDs, ew.err, err
}

// check refuses, before anything is read or stored, what would make a
// backup no reader may trust or find.
func (p Params) check() error {
	// A zero time would name the object 00010101T000000Z-… (never
	// "latest") and date its manifest in year 1.
	if p.Now.IsZero() {
		return errors.New("backup: no time given (Params.Now is zero)")
	}
	for _, src := range p.Sources {
		if _, err := os.Lstat(src); err != nil {
			return fmt.Errorf("source %s: %w", src, unwrapPath(err))
		}
	}
	if len(p.Recipients) == 0 {
		return errors.New("no encryption keys")
	}
	// An object without a signature is one no reader may trust.
	if p.Signer == nil || p.Signer.PrivateKey == nil || p.Signer.PrivateKey.Encrypted {
		return errors.New("no usable secret host key to sign the backup with")
	}
	return nil
}

// pipelineError names the one failure of a run from what each stage
// returned. A failed upload closes the pipe with its error, so the
// encrypter, and through it the archiver, may return the store's error
// too: that is a storing failure, not an archiving one.
func pipelineError(ctx context.Context, name string, archErr, encErr, putErr error) error {
	switch {
	case encErr != nil && !errors.Is(encErr, context.Canceled) && !errors.Is(encErr, pipe.ErrClosed) && putErr == nil:
		return fmt.Errorf("encrypting: %w", encErr)
	case archErr != nil && !errors.Is(archErr, context.Canceled) && (encErr == nil || !errors.Is(archErr, encErr)) && (putErr == nil || !errors.Is(archErr, putErr)):
		return fmt.Errorf("archiving: %w", archErr)
	case putErr != nil:
		if errors.Is(putErr, store.ErrExists) {
			return fmt.Errorf("storing %s: %w", name, putErr)
		}
		if ctxErr := context.Cause(ctx); errors.Is(putErr, context.Canceled) && ctxErr != nil && archErr == nil && encErr == nil {
			return fmt.Errorf("interrupted: %w", ctxErr)
		}
		return fmt.Errorf("storing: %w", putErr)
	case archErr != nil:
		return fmt.Errorf("interrupted: %w", archErr)
	}
	return nil
}

// signObject stores the statement about the object, then its signature,
// each written like every object (never over an existing one). A reader
// trusts the object only when both are there and agree with it.
func signObject(ctx context.Context, p Params, name string, size int64, sum string) error {
	stmt := statement.Statement{Host: p.Host, Object: name, Size: size, SHA256: sum}.Marshal()
	sig, err := statement.Sign(stmt, p.Signer)
	if err != nil {
		return err
	}
	if _, err := p.Store.Put(ctx, name+SidecarSuffix, bytes.NewReader(stmt)); err != nil {
		return fmt.Errorf("storing the statement %s%s: %w", name, SidecarSuffix, err)
	}
	if _, err := p.Store.Put(ctx, name+SignatureSuffix, bytes.NewReader(sig)); err != nil {
		return fmt.Errorf("storing the signature %s%s: %w", name, SignatureSuffix, err)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// errWriter remembers the first error of the encrypter under the
// compressor, so that Run can tell an encryption (or storing) failure that
// reaches the archiver through the compressor from an archiving one.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
