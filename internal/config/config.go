// Package config loads, validates and writes drym's TOML settings file
// (/etc/drym/drym.toml by default, or $DRYM_CONFIG).
//
// Loading is strict: an unknown key is an error naming the key and its line,
// because a misspelt "exclude" that is silently ignored backs up what the
// admin meant to leave out, or worse, the other way round.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/drym-backup/drym/internal/safefile"
)

// Defaults of the file contract (docs/REFERENCE.md#files-and-modes).
const (
	DefaultPath     = "/etc/drym/drym.toml"
	DefaultStateDir = "/var/lib/drym"
	DefaultKeyFile  = "/etc/drym/host-key.asc"
	EnvConfig       = "DRYM_CONFIG"
)

// Remote is where objects go: a backup destination or an escrow location.
type Remote struct {
	// URL is dir:///path, a bare absolute path, or s3://bucket/prefix.
	URL       string `toml:"url"`
	Endpoint  string `toml:"endpoint,omitempty"`
	Region    string `toml:"region,omitempty"`
	PathStyle bool   `toml:"path_style,omitempty"`
	// Profile names the AWS shared-config profile used to write (put-only).
	Profile string `toml:"profile,omitempty"`
	// ReadProfile names the profile used to read and list (test-restore,
	// restore, list, checks); empty means the SDK default chain.
	ReadProfile string `toml:"read_profile,omitempty"`
}

// Escrow is the [escrow] table.
type Escrow struct {
	Remote
	// Recipients are public key files of the team: when set, the secret key
	// member is encrypted to them instead of stored bare.
	Recipients []string `toml:"recipients,omitempty"`
}

// Metrics is the [metrics] table.
type Metrics struct {
	// Textfile is a node_exporter textfile collector file to write after
	// every job.
	Textfile string `toml:"textfile,omitempty"`
}

// Config is drym.toml.
type Config struct {
	Host        string   `toml:"host"`
	Sources     []string `toml:"sources"`
	Exclude     []string `toml:"exclude"`
	StateDir    string   `toml:"state_dir"`
	KeyFile     string   `toml:"key_file"`
	Recipients  []string `toml:"recipients"`
	Destination Remote   `toml:"destination"`
	Escrow      Escrow   `toml:"escrow"`
	Metrics     Metrics  `toml:"metrics"`

	// Path is the file this was loaded from (not stored).
	Path string `toml:"-"`
}

// Error is a problem with the settings file. The runner exits 2 on it.
type Error struct {
	Path string
	Line int    // 0 when unknown
	Key  string // the setting at fault ("sources", "destination.url"), when known
	Msg  string
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Key != "" {
		msg = e.Key + ": " + msg
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, msg)
}

// MaxFileSize bounds the settings file: real ones are a few hundred bytes.
const MaxFileSize = 1 << 20

// PathFromEnv returns the config path: flag value, else $DRYM_CONFIG, else
// the default.
func PathFromEnv(flag string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv(EnvConfig); v != "" {
		return v
	}
	return DefaultPath
}

// Load reads and validates the settings file at path.
func Load(path string) (*Config, error) {
	data, err := safefile.ReadFile(path, MaxFileSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{Path: path, Msg: "no settings file (run backup_runner init)"}
		}
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes and validates settings from data; path is for messages.
func Parse(path string, data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Path: path, Line: pe.Position.Line, Msg: pe.Message}
		}
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		key := und[0]
		msg := fmt.Sprintf("unknown key %q", key.String())
		if looksLikeCredential(key[len(key)-1]) {
			msg += " (drym never stores credentials: use the AWS credential chain — environment, ~/.aws/credentials with profile/read_profile, or an instance role)"
		}
		if len(key) == 1 && md.Type(key...) == "Hash" {
			msg = fmt.Sprintf("unknown table [%s]", key.String())
		}
		return nil, &Error{Path: path, Line: lineOf(data, key), Msg: msg}
	}
	c.Path = path
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.Path = path
			if ce.Line == 0 && ce.Key != "" {
				ce.Line = lineOf(data, toml.Key(strings.Split(ce.Key, ".")))
			}
		}
		return nil, err
	}
	return &c, nil
}

// looksLikeCredential: a key named like a credential gets the hint that
// drym never stores them. A plain word list, not a regexp: a package-level
// regexp is compiled when every check binary starts.
func looksLikeCredential(key string) bool {
	k := strings.ToLower(key)
	return slices.ContainsFunc([]string{"access", "secret", "token", "password", "credential"}, func(w string) bool {
		return strings.Contains(k, w)
	})
}

// lineOf finds the line where key was set: toml reports undecoded keys without
// positions, so search for the table header (a key that is a table) or the
// key within its table (also written dotted, table.key = …).
func lineOf(data []byte, key toml.Key) int {
	full := strings.Join(key, ".")
	table := strings.Join(key[:len(key)-1], ".")
	last := key[len(key)-1]
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if c := strings.Index(line, "#"); c >= 0 && !strings.ContainsAny(line[:c], `"'`) {
			line = strings.TrimSpace(line[:c])
		}
		if strings.HasPrefix(line, "[") {
			cur = strings.TrimSpace(strings.Trim(line, "[]"))
			if cur == full {
				return n
			}
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"'`)
		if (cur == table && k == last) || (cur == "" && k == full) {
			return n
		}
	}
	return 0
}

// ApplyDefaults fills empty fields with the documented defaults.
func (c *Config) ApplyDefaults() {
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.KeyFile == "" {
		c.KeyFile = DefaultKeyFile
	}
}

// ValidHost reports whether name can be a drym host: 1 to 253 letters,
// digits, '.', '_' or '-', starting with a letter or digit. The host names
// a folder in every store and escrow zip, so nothing else may pass. It is
// written out rather than a regexp: compiling {0,252} cost every check
// binary milliseconds at start.
func ValidHost(name string) bool {
	if len(name) == 0 || len(name) > 253 || !alnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validBucket is S3's rule for a bucket name as drym accepts it: 3 to 63
// lower-case letters, digits, '.' or '-', starting and ending with a letter
// or digit.
func validBucket(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		edge := i == 0 || i == len(name)-1
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') && (edge || c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// Validate checks the settings for what would fail later. It cleans the
// source paths it accepts (a trailing slash, "//" or "/./" mean the same
// directory; leaving them in made member names that restore could not
// match), and refuses what would make a backup that cannot be restored as
// meant: ".." in a source, the same tree listed twice, and exclude patterns
// that can never match.
func (c *Config) Validate() error {
	bad := func(key, format string, a ...any) error { return &Error{Key: key, Msg: fmt.Sprintf(format, a...)} }
	if !ValidHost(c.Host) {
		return bad("host", "%q is not a usable host name (letters, digits, '.', '_', '-')", c.Host)
	}
	if err := c.cleanSources(); err != nil {
		return err
	}
	for _, g := range c.Exclude {
		if err := checkExclude(g); err != nil {
			return bad("exclude", "%v", err)
		}
	}
	if !filepath.IsAbs(c.StateDir) {
		return bad("state_dir", "%q is not an absolute path", c.StateDir)
	}
	if !filepath.IsAbs(c.KeyFile) {
		return bad("key_file", "%q is not an absolute path", c.KeyFile)
	}
	for _, r := range c.Recipients {
		if !filepath.IsAbs(r) {
			return bad("recipients", "%q is not an absolute path", r)
		}
	}
	if c.Destination.URL == "" {
		return bad("destination.url", "no destination (dir:///path or s3://bucket/prefix)")
	}
	if _, err := ParseURL(c.Destination.URL); err != nil {
		return bad("destination.url", "%v", err)
	}
	if c.Escrow.URL != "" {
		if _, err := ParseURL(c.Escrow.URL); err != nil {
			return bad("escrow.url", "%v", err)
		}
	}
	for _, ep := range []struct{ key, url string }{{"destination.endpoint", c.Destination.Endpoint}, {"escrow.endpoint", c.Escrow.Endpoint}} {
		if err := checkEndpoint(ep.url); err != nil {
			return bad(ep.key, "%v", err)
		}
	}
	for _, r := range c.Escrow.Recipients {
		if !filepath.IsAbs(r) {
			return bad("escrow.recipients", "%q is not an absolute path", r)
		}
	}
	if c.Metrics.Textfile != "" && !filepath.IsAbs(c.Metrics.Textfile) {
		return bad("metrics.textfile", "%q is not an absolute path", c.Metrics.Textfile)
	}
	return nil
}

// cleanSources cleans every source path in place and refuses relative
// paths, "..", and sources listed twice or inside another source (their
// files would be archived twice, and a restore of one would find the other's
// copy).
func (c *Config) cleanSources() error {
	bad := func(format string, a ...any) error { return &Error{Key: "sources", Msg: fmt.Sprintf(format, a...)} }
	if len(c.Sources) == 0 {
		return bad("no sources to back up (add sources = [\"/etc\", …])")
	}
	for i, s := range c.Sources {
		if !filepath.IsAbs(s) {
			return bad("%q is not an absolute path", s)
		}
		if slices.Contains(strings.Split(s, "/"), "..") {
			return bad("%q holds \"..\": write the path it means", s)
		}
		if hasControl(s) {
			return bad("%q holds control characters", s)
		}
		c.Sources[i] = filepath.Clean(s)
	}
	for i, a := range c.Sources {
		for _, b := range c.Sources[i+1:] {
			switch {
			case a == b:
				return bad("%q is listed twice", a)
			case within(b, a):
				return bad("%q is inside %q, which is backed up already: drop it", b, a)
			case within(a, b):
				return bad("%q is inside %q, which is backed up already: drop it", a, b)
			}
		}
	}
	return nil
}

// within reports whether path lies below dir (both clean and absolute).
func within(path, dir string) bool {
	return dir == "/" || strings.HasPrefix(path, dir+"/")
}

// checkExclude refuses patterns that can never match what a user meant:
// patterns are matched (filepath.Match) against each absolute path and
// against each base name, so "/var/cache/" (paths have no trailing slash),
// "var/cache" (a name never holds "/") and "**" (a "*" never crosses a "/")
// would silently exclude nothing.
func checkExclude(g string) error {
	switch {
	case g == "":
		return errors.New("an empty pattern")
	case strings.Contains(g, "**"):
		return fmt.Errorf("%q: \"**\" is not supported (\"*\" matches within one path component): to leave out a name anywhere, give the name alone (\"node_modules\"); to leave out a tree, give its absolute path", g)
	case len(g) > 1 && strings.HasSuffix(g, "/"):
		return fmt.Errorf("%q: paths are matched without a trailing \"/\": write %q", g, strings.TrimRight(g, "/"))
	case !strings.HasPrefix(g, "/") && strings.Contains(g, "/"):
		return fmt.Errorf("%q: a pattern with \"/\" is matched against absolute paths: write \"/%s\", or give a name alone", g, g)
	}
	if _, err := filepath.Match(g, "x"); err != nil {
		return fmt.Errorf("bad glob %q: %v", g, err)
	}
	return nil
}

// Location is a parsed destination URL.
type Location struct {
	Scheme string // "dir" or "s3"
	Path   string // dir: absolute directory
	Bucket string // s3
	Prefix string // s3: without leading or trailing slash; may be empty
}

func (l Location) String() string {
	if l.Scheme == "dir" {
		return "dir://" + l.Path
	}
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// ParseURL parses dir:///path, a bare absolute path, or s3://bucket/prefix.
func ParseURL(raw string) (Location, error) {
	if strings.HasPrefix(raw, "/") {
		if hasControl(raw) {
			return Location{}, fmt.Errorf("%q: the path holds control characters", raw)
		}
		return Location{Scheme: "dir", Path: filepath.Clean(raw)}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.User != nil {
		// Redacted: the error is printed and logged; the secret must not be.
		return Location{}, fmt.Errorf("%q embeds credentials: drym never stores them; use the AWS credential chain (environment, ~/.aws/credentials with a profile, or an instance role)", u.Redacted())
	}
	// Percent-escapes decode to any byte: a NUL or control character in a
	// path or key prefix is damage, never a name someone meant.
	if hasControl(u.Path) {
		return Location{}, fmt.Errorf("%q: the path holds control characters", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Location{}, fmt.Errorf("%q: query strings and fragments are not supported", raw)
	}
	switch u.Scheme {
	case "dir", "file":
		if u.Host != "" {
			return Location{}, fmt.Errorf("%q: write dir:///absolute/path (three slashes)", raw)
		}
		if !filepath.IsAbs(u.Path) {
			return Location{}, fmt.Errorf("%q: the path must be absolute", raw)
		}
		return Location{Scheme: "dir", Path: filepath.Clean(u.Path)}, nil
	case "s3":
		if !validBucket(u.Host) {
			return Location{}, fmt.Errorf("%q: %q is not a valid bucket name", raw, u.Host)
		}
		prefix := strings.Trim(u.Path, "/")
		if strings.Contains(prefix, "//") || strings.Contains("/"+prefix+"/", "/../") || strings.Contains("/"+prefix+"/", "/./") {
			return Location{}, fmt.Errorf("%q: the prefix must not contain empty, '.' or '..' parts", raw)
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	case "":
		return Location{}, fmt.Errorf("%q: want dir:///path, /path or s3://bucket/prefix", raw)
	default:
		return Location{}, fmt.Errorf("%q: unsupported scheme %q (want dir or s3)", raw, u.Scheme)
	}
}

// checkEndpoint refuses an S3 endpoint that embeds credentials
// (http://KEY:SECRET@host): they would sit in a world-readable file and in
// every message that names the endpoint.
func checkEndpoint(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.User != nil {
		return fmt.Errorf("the endpoint embeds credentials: drym never stores them; use the AWS credential chain (environment, ~/.aws/credentials with a profile, or an instance role)")
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// PublicKeyFile is where the public half of the host key lives: beside the
// secret one, host-key.asc → host-key.pub.asc.
func (c *Config) PublicKeyFile() string {
	return PublicKeyPath(c.KeyFile)
}

// PublicKeyPath maps a secret key path to its public key path.
func PublicKeyPath(secret string) string {
	return strings.TrimSuffix(secret, ".asc") + ".pub.asc"
}

// StatusPath returns the path of a status file in the state directory.
func (c *Config) StatusPath(name string) string {
	return filepath.Join(c.StateDir, name)
}

// Encode renders the config as TOML, with a header saying what it is.
func (c *Config) Encode() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# drym settings: see `backup_runner --help` and docs/SETUP.md in drym.\n")
	buf.WriteString("# Credentials never go here: drym uses the AWS credential chain.\n\n")
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
