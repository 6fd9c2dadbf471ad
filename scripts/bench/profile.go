package main

// profile runs the backup pipeline in-process, once as a whole and once per
// stage, and writes CPU profiles: that is how the per-stage bounds in
// BENCHMARKS.md were found.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	czstd "github.com/DataDog/zstd"

	"github.com/drym-backup/drym/internal/archive"
	"github.com/drym-backup/drym/internal/backup"
	"github.com/drym-backup/drym/internal/crypt"
	"github.com/drym-backup/drym/internal/store"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type stage struct {
	name string
	fn   func() error
}

// profileRun measures each stage alone and the whole pipeline, writing
// <out>/<stage>.pprof for each.
func profileRun(tree, keyFile, out string, only string) error {
	keys, err := crypt.ReadKeyFile(keyFile)
	if err != nil {
		return err
	}
	ctx := context.Background()
	os.MkdirAll(out, 0o755)
	zfile := filepath.Join(out, "stream.tar.zst")
	stages := []stage{
		{"archive", func() error {
			_, err := archive.Write(ctx, io.Discard, archive.Options{Host: "bench", Sources: []string{tree}, Now: time.Now()})
			return err
		}},
		{"archive+zstd", func() error {
			f, err := os.Create(zfile)
			if err != nil {
				return err
			}
			defer f.Close()
			zw := &segmentWriter{w: f, zc: czstd.NewCtx()}
			if _, err := archive.Write(ctx, zw, archive.Options{Host: "bench", Sources: []string{tree}, Now: time.Now()}); err != nil {
				return err
			}
			return zw.flush()
		}},
		{"encrypt", func() error {
			f, err := os.Open(zfile)
			if err != nil {
				return err
			}
			defer f.Close()
			w, err := crypt.Encrypt(io.Discard, keys)
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, f); err != nil {
				return err
			}
			return w.Close()
		}},
		{"sha256", func() error {
			f, err := os.Open(zfile)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(sha256.New(), f)
			return err
		}},
		{"pipeline", func() error {
			dir := filepath.Join(out, "store")
			os.RemoveAll(dir)
			_, err := backup.Run(ctx, backup.Params{Host: "bench", Sources: []string{tree}, Recipients: keys, Signer: keys[0], Store: store.NewDir(dir), Now: time.Now()})
			return err
		}},
	}
	for _, s := range stages {
		if only != "" && only != s.name {
			continue
		}
		pf, err := os.Create(filepath.Join(out, s.name+".pprof"))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(pf)
		if tp := os.Getenv("BENCH_TRACE"); tp != "" && s.name == "pipeline" {
			tf, _ := os.Create(tp)
			trace.Start(tf)
			defer trace.Stop()
		}
		c0, t0 := cpuTime(), time.Now()
		err = s.fn()
		wall, cpu := time.Since(t0), cpuTime()-c0
		pprof.StopCPUProfile()
		pf.Close()
		if mf, err := os.Create(filepath.Join(out, s.name+".mem.pprof")); err == nil {
			pprof.Lookup("allocs").WriteTo(mf, 0)
			mf.Close()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Printf("%-14s wall %6.2fs cpu %6.2fs (%3.0f%%)\n", s.name, wall.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/wall.Seconds())
	}
	return nil
}

// segmentWriter compresses 1 MiB segments one at a time at libzstd level
// 2 (the backup's level for segments of small files; others get level 1),
// so that the archive+zstd stage shows the compressor's share without the
// parallel pipeline around it.
type segmentWriter struct {
	w       io.Writer
	zc      czstd.Ctx
	in, out []byte
}

func (s *segmentWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		m := min(len(p), 1<<20-len(s.in))
		s.in = append(s.in, p[:m]...)
		p = p[m:]
		if len(s.in) == 1<<20 {
			if err := s.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (s *segmentWriter) flush() error {
	if len(s.in) == 0 {
		return nil
	}
	var err error
	if s.out, err = s.zc.CompressLevel(s.out[:cap(s.out)], s.in, 2); err != nil {
		return err
	}
	s.in = s.in[:0]
	_, err = s.w.Write(s.out)
	return err
}
