package faults

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/testutil"
)

// TestSecretKeyMode: init under the most permissive umask still creates the
// secret key 0600, and creates it with that mode in the open(2) itself
// (O_CREAT|O_EXCL, 0600): there is no moment where the key exists with a
// wider mode, and an existing file (or a symlink planted by someone else) is
// never written through.
func TestSecretKeyMode(t *testing.T) {
	t.Parallel()
	strace := testutil.Need(t, "strace")
	dir := t.TempDir()
	dest, _ := dirDest(t)
	cfgPath := filepath.Join(dir, "etc", "drym.toml")
	key := filepath.Join(dir, "etc", "host-key.asc")
	trace := filepath.Join(dir, "strace.log")
	runner := testutil.Binary(t, "backup_runner")
	cmd := exec.Command("sh", "-c", `umask 000 && exec "$@"`, "sh",
		strace, "-f", "-qq", "-e", "trace=open,openat,openat2,creat,chmod,fchmod,fchmodat", "-o", trace,
		runner, "--config", cfgPath, "init", "--source", smallSource(t), "--dest", dest.URL,
		"--state-dir", filepath.Join(dir, "state"), "--key-file", key, "--host", host)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init under umask 000: %v\n%s", err, out)
	}
	for path, want := range map[string]fs.FileMode{key: 0o600, config.PublicKeyPath(key): 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", path, fi.Mode().Perm(), want)
		}
	}
	// Every syscall that names the secret key file.
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var opens []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"`+key+`"`) && !strings.Contains(line, "O_RDONLY") {
			opens = append(opens, line)
		}
	}
	if len(opens) == 0 {
		t.Fatalf("strace saw no write-open of %s", key)
	}
	creat := regexp.MustCompile(`O_CREAT\|O_EXCL.*, 0600\)`)
	for _, l := range opens {
		if !creat.MatchString(l) {
			t.Errorf("the secret key is opened for writing without O_CREAT|O_EXCL and mode 0600: %s", l)
		}
	}
}

// TestNoKeyMaterialInOutput: nothing the runner prints, logs or records (its
// output with -v, the status files, the settings, the metrics) holds the
// secret key, even when the key file is damaged and the error is about it.
func TestNoKeyMaterialInOutput(t *testing.T) {
	t.Parallel()
	dest, _ := dirDest(t)
	e := newEnv(t, dest, nil, smallSource(t))
	secret, err := os.ReadFile(e.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(secret, []byte("PRIVATE KEY")) {
		t.Fatalf("%s does not look like an armored secret key", e.cfg.KeyFile)
	}
	e.cfg.Escrow.URL = "dir://" + t.TempDir()
	e.writeConfig()
	var out strings.Builder
	// Every command, verbose, working: their output is what a journal keeps.
	for _, args := range [][]string{
		{"-v", "init"}, {"-v", "escrow"}, {"-v", "backup"}, {"-v", "test-restore"}, {"-v", "list"}, {"status"}, {"status", "--json"},
	} {
		r := e.run(args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		out.WriteString(r.stdout + r.stderr)
	}
	// A damaged key: the error must say so without quoting it.
	if err := os.WriteFile(e.cfg.KeyFile, secret[:len(secret)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-v", "test-restore"}, {"-v", "init"}, {"-v", "escrow"}} {
		r := e.run(args...)
		if r.code == 0 {
			t.Errorf("%v succeeded with a damaged secret key:\n%s", args, r.stdout)
		}
		out.WriteString(r.stdout + r.stderr)
	}
	texts := map[string]string{"runner output": out.String()}
	_ = filepath.WalkDir(e.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			texts[p] = string(b)
		}
		return nil
	})
	cfgData, _ := os.ReadFile(e.cfgPath)
	texts[e.cfgPath] = string(cfgData)
	for what, text := range texts {
		if leak := keyLeak(secret, text); leak != "" {
			t.Errorf("%s holds secret key material: %q", what, leak)
		}
	}
}

// keyLeak returns a piece of the armored secret key found in text: the
// armor header or any 24-character run of a body line.
func keyLeak(secret []byte, text string) string {
	if strings.Contains(text, "PRIVATE KEY") {
		return "PRIVATE KEY"
	}
	inBody := false
	for line := range strings.SplitSeq(string(secret), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "-----"):
			inBody = !inBody
			continue
		case !inBody || line == "" || strings.Contains(line, ":") || strings.HasPrefix(line, "="):
			continue
		}
		for i := 0; i+24 <= len(line); i += 12 {
			if strings.Contains(text, line[i:i+24]) {
				return line[i : i+24]
			}
		}
	}
	return ""
}

// TestConfigRefusesCredentials: credentials written into the settings (a key
// the SDK would use, a user:secret@ URL, an endpoint with credentials) make
// every program refuse the file with a pointer to the AWS credential chain,
// and the secret itself is never echoed.
func TestConfigRefusesCredentials(t *testing.T) {
	t.Parallel()
	const secret = "Sup3rSecretValue0123"
	base := "host = \"" + host + "\"\nsources = [\"/etc\"]\nstate_dir = \"/var/lib/drym-test\"\n"
	for name, body := range map[string]string{
		"secret key in destination": base + "[destination]\nurl = \"s3://bucket/drym\"\naws_secret_access_key = \"" + secret + "\"\n",
		"access key at the top":     "aws_access_key_id = \"" + secret + "\"\n" + base + "[destination]\nurl = \"s3://bucket/drym\"\n",
		"escrow password":           base + "[destination]\nurl = \"s3://bucket/drym\"\n[escrow]\nurl = \"s3://bucket/escrow\"\npassword = \"" + secret + "\"\n",
		"user:secret in the url":    base + "[destination]\nurl = \"s3://AKIAEXAMPLE:" + secret + "@bucket/drym\"\n",
		"user:secret in endpoint":   base + "[destination]\nurl = \"s3://bucket/drym\"\nendpoint = \"http://AKIAEXAMPLE:" + secret + "@127.0.0.1:9000\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "drym.toml")
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			p := startProc(t, cleanEnv(), testutil.Binary(t, "backup_runner"), "--config", path, "backup")
			r := p.wait(30e9)
			if r.code != 2 {
				t.Fatalf("backup_runner: want exit 2 (settings error), got %d\n%s", r.code, r.stderr)
			}
			oneLine(t, "stderr", r.stderr)
			if !strings.Contains(r.stderr, "credential chain") || !strings.Contains(r.stderr, path) {
				t.Fatalf("the refusal does not name the file and point to the AWS credential chain: %s", r.stderr)
			}
			c := check(t, cleanEnv(), "check_backup_age", "--config", path)
			if c.code == 0 {
				t.Fatalf("check_backup_age is OK with credentials in the settings:\n%s", c.stdout)
			}
			for what, s := range map[string]string{"backup_runner": r.stdout + r.stderr, "check_backup_age": c.stdout + c.stderr} {
				if strings.Contains(s, secret) {
					t.Errorf("%s echoes the secret: %s", what, s)
				}
			}
		})
	}
}
