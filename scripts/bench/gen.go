package main

// The benchmark tree: deterministic (fixed seeds, fixed mtimes), shaped like
// a server's /etc, /var/www, /var/log and a home with media, so that about
// half of the bytes compress and half do not. It is written once per scale
// and reused: a marker file records the parameters it was made with.

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// genVersion changes whenever the tree's shape changes, so a stale tree is
// regenerated instead of silently measured.
const genVersion = 2

var genMTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

var words = []string{
	"server", "listen", "location", "proxy_pass", "root", "index", "include", "error_log", "access_log",
	"user", "group", "worker", "timeout", "keepalive", "ssl_certificate", "upstream", "backend", "cache",
	"enable", "disable", "true", "false", "max", "min", "default", "path", "socket", "port", "host",
	"the", "a", "of", "to", "and", "in", "is", "for", "on", "with", "as", "by", "at", "from", "this",
	"function", "return", "if", "else", "var", "const", "class", "public", "private", "static", "new",
	"div", "span", "href", "src", "title", "content", "body", "head", "script", "style", "meta", "link",
	"GET", "POST", "HTTP/1.1", "200", "301", "404", "500", "Mozilla/5.0", "curl/7.88.1", "bot", "api",
	"connection", "accepted", "closed", "session", "opened", "for", "user", "root", "systemd", "cron",
}

var (
	methods = []string{"GET", "GET", "GET", "POST", "HEAD"}
	codes   = []string{"200", "200", "200", "200", "301", "304", "404", "500"}
	agents  = []string{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "curl/7.88.1", "Googlebot/2.1 (+http://www.google.com/bot.html)"}
)

// textFile writes size bytes of config/source-like text.
func textFile(path string, size int, r *rand.Rand) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	line := make([]byte, 0, 256)
	n := 0
	for n < size {
		line = line[:0]
		indent := r.IntN(3)
		for range indent {
			line = append(line, "    "...)
		}
		nw := 2 + r.IntN(8)
		for i := range nw {
			if i > 0 {
				line = append(line, ' ')
			}
			line = append(line, words[r.IntN(len(words))]...)
			if r.IntN(6) == 0 {
				line = strconv.AppendInt(line, int64(r.IntN(10000)), 10)
			}
		}
		line = append(line, ";\n"...)
		if n+len(line) > size {
			line = line[:size-n]
		}
		w.Write(line)
		n += len(line)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logFile writes size bytes of access-log lines with increasing timestamps.
func logFile(path string, size int, r *rand.Rand) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	line := make([]byte, 0, 512)
	t := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Unix()
	n := 0
	for n < size {
		t += int64(r.IntN(3))
		line = line[:0]
		line = time.Unix(t, 0).UTC().AppendFormat(line, "02/Jan/2006:15:04:05 +0000")
		line = append(line, " 10."...)
		line = strconv.AppendInt(line, int64(r.IntN(256)), 10)
		line = append(line, '.')
		line = strconv.AppendInt(line, int64(r.IntN(256)), 10)
		line = append(line, '.')
		line = strconv.AppendInt(line, int64(r.IntN(256)), 10)
		line = append(line, ` - - "`...)
		line = append(line, methods[r.IntN(len(methods))]...)
		line = append(line, " /"...)
		for i := range 1 + r.IntN(4) {
			if i > 0 {
				line = append(line, '/')
			}
			line = append(line, words[r.IntN(len(words))]...)
		}
		line = append(line, ` HTTP/1.1" `...)
		line = append(line, codes[r.IntN(len(codes))]...)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(r.IntN(200000)), 10)
		line = append(line, ` "-" "`...)
		line = append(line, agents[r.IntN(len(agents))]...)
		line = append(line, " id="...)
		line = strconv.AppendUint(line, r.Uint64()>>20, 16)
		line = append(line, "\"\n"...)
		if n+len(line) > size {
			line = line[:size-n]
		}
		w.Write(line)
		n += len(line)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// randomFile writes size incompressible bytes (media, archives).
func randomFile(path string, size int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var key [32]byte
	for i := range 4 {
		key[i] = byte(seed >> (8 * i))
	}
	c := rand.NewChaCha8(key)
	buf := make([]byte, 1<<20)
	for size > 0 {
		m := min(size, len(buf))
		c.Read(buf[:m])
		if _, err := f.Write(buf[:m]); err != nil {
			f.Close()
			return err
		}
		size -= m
	}
	return f.Close()
}

// generate writes the server tree for scale (1 ≈ 1 GiB) under dir, unless
// a complete one is already there. It returns the total bytes of file
// content. div > 1 makes a tree div times smaller (fewer and smaller
// files, the same mix): -quick's.
func generate(dir string, scale, div int) (int64, error) {
	marker := dir + ".ok" // beside the tree, so it is not backed up
	want := fmt.Sprintf("drym bench tree v%d scale %d\n", genVersion, scale)
	if div > 1 {
		want = fmt.Sprintf("drym bench tree v%d scale %d div %d\n", genVersion, scale, div)
	} else {
		div = 1
	}
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return treeSize(dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, err
	}
	r := rand.New(rand.NewPCG(uint64(scale), 42))
	var seed uint64
	mk := func(p string) string {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		return full
	}
	for s := range scale {
		// /etc: 3,000 small config files, 200 B – 8 KiB.
		for i := range 3000 / div {
			if err := textFile(mk(fmt.Sprintf("etc%d/conf.d/%02d/app%04d.conf", s, i%50, i)), 200+r.IntN(8000), r); err != nil {
				return 0, err
			}
		}
		// /var/www: 8,000 site files, 1 – 40 KiB.
		for i := range 8000 / div {
			if err := textFile(mk(fmt.Sprintf("var/www%d/site%02d/%03d/page%04d.php", s, i%20, i%97, i)), 1000+r.IntN(40000), r); err != nil {
				return 0, err
			}
		}
		// /var/log: 6 logs of 48 MiB.
		for i := range 6 {
			if err := logFile(mk(fmt.Sprintf("var/log%d/nginx/access.log.%d", s, i)), 48<<20/div, r); err != nil {
				return 0, err
			}
		}
		// /home: 60 media files, 1 – 13 MiB, and two 48 MiB archives.
		for i := range 60 / div {
			seed++
			if err := randomFile(mk(fmt.Sprintf("home%d/user/media/IMG_%04d.jpg", s, i)), (1+r.IntN(13))<<20, seed); err != nil {
				return 0, err
			}
		}
		for i := range 2 {
			seed++
			if err := randomFile(mk(fmt.Sprintf("home%d/user/backup-%d.tar.gz", s, i)), 48<<20/div, seed); err != nil {
				return 0, err
			}
		}
		os.Symlink("conf.d/00/app0000.conf", mk(fmt.Sprintf("etc%d/app.conf", s)))
	}
	return finish(dir, marker, want)
}

// finish gives every file of a generated tree the fixed mtime (so the tar
// stream is identical from run to run), then writes its marker.
func finish(dir, marker, want string) (int64, error) {
	if err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return os.Chtimes(p, genMTime, genMTime)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if err := os.WriteFile(marker, []byte(want), 0o644); err != nil {
		return 0, err
	}
	return treeSize(dir)
}

func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// generateSmall writes the many-small-files tree: n files of 200 B to 6 KB
// (text, like a mail spool, a source checkout or a cache), 500 to a
// directory. 168,000 files are ≈ 520 MB.
func generateSmall(dir string, n int) (int64, error) {
	marker := dir + ".ok"
	want := fmt.Sprintf("drym bench small tree v%d files %d\n", genVersion, n)
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return treeSize(dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, err
	}
	r := rand.New(rand.NewPCG(uint64(n), 168))
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%03d/%02d/f%06d.txt", i/5000, i/500%10, i))
		if i%500 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return 0, err
			}
		}
		if err := textFile(p, 200+r.IntN(5801), r); err != nil {
			return 0, err
		}
	}
	return finish(dir, marker, want)
}

// generateLarge writes the large-file tree: half compressible logs, half
// incompressible images, in files of each MiB (4 files in all).
func generateLarge(dir string, each int) (int64, error) {
	marker := dir + ".ok"
	want := fmt.Sprintf("drym bench large tree v%d each %d MiB\n", genVersion, each)
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return treeSize(dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		return 0, err
	}
	os.MkdirAll(filepath.Join(dir, "log"), 0o755)
	r := rand.New(rand.NewPCG(uint64(each), 4))
	for i := range 2 {
		if err := logFile(filepath.Join(dir, fmt.Sprintf("log/app.log.%d", i)), each<<20, r); err != nil {
			return 0, err
		}
		if err := randomFile(filepath.Join(dir, fmt.Sprintf("images/disk%d.img", i)), each<<20, uint64(1000+i)); err != nil {
			return 0, err
		}
	}
	return finish(dir, marker, want)
}
