package evidence

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/safefile"
)

// Monitoring settings: what the monitoring server reads to judge hosts from
// the store alone (docs/CHECKS.md#monitoring-from-the-store).
const (
	DefaultSettingsPath = "/etc/drym/monitoring.toml"
	EnvSettings         = "DRYM_MONITORING_CONFIG"
)

// Settings is /etc/drym/monitoring.toml. It holds no secret: read
// credentials come from the AWS credential chain (read_profile).
type Settings struct {
	// Destination is where the hosts back up to (scoped to no host: each
	// host is a folder in it).
	Destination config.Remote `toml:"destination"`
	// Escrow is where the hosts ship their escrow zips (optional).
	Escrow config.Remote `toml:"escrow"`
	// Keys is a directory of pinned host public keys, <host>.pub.asc
	// (optional): the strongest check of the statements' signatures.
	Keys string `toml:"keys"`
	// Inventory is the fleet's host list, one name a line (optional).
	Inventory string `toml:"inventory"`

	// Path is the file this was loaded from.
	Path string `toml:"-"`
}

// SettingsPath returns the path to read: the flag, else $DRYM_MONITORING_CONFIG,
// else the default.
func SettingsPath(flag string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv(EnvSettings); v != "" {
		return v
	}
	return DefaultSettingsPath
}

// LoadSettings reads and validates the monitoring settings. Unknown keys
// are errors naming the key, as in drym.toml.
func LoadSettings(path string) (*Settings, error) {
	// A FIFO or device here would hold the check until its -t: refuse it.
	data, err := safefile.ReadFile(path, config.MaxFileSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no monitoring settings %s (write one: see docs/CHECKS.md, or pass --monitoring-config)", path)
		}
		return nil, fmt.Errorf("cannot read monitoring settings: %w", err)
	}
	var s Settings
	md, err := toml.Decode(string(data), &s)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s:%d: unknown key %q", path, lineOf(data, und[0].String()), und[0].String())
	}
	s.Path = path
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

func (s *Settings) validate() error {
	if s.Destination.URL == "" {
		return errors.New("[destination] url is required (the bucket or directory the hosts back up to)")
	}
	for _, r := range []struct {
		table string
		rem   config.Remote
	}{{"destination", s.Destination}, {"escrow", s.Escrow}} {
		if r.rem.URL == "" {
			continue
		}
		if _, err := config.ParseURL(r.rem.URL); err != nil {
			return fmt.Errorf("[%s] url: %w", r.table, err)
		}
		if r.rem.Profile != "" {
			return fmt.Errorf("[%s] profile: the monitoring server never writes; name its read-only credentials with read_profile", r.table)
		}
	}
	return nil
}

var keyLine = regexp.MustCompile(`^\s*([A-Za-z0-9_.-]+)\s*=`)

// lineOf finds the line of a dotted key ("escrow.profil") for messages.
func lineOf(data []byte, key string) int {
	last := key[strings.LastIndexByte(key, '.')+1:]
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		if m := keyLine.FindStringSubmatch(sc.Text()); m != nil && m[1] == last {
			return n
		}
	}
	return 0
}

// ReadInventory reads a host list: one name a line, blank lines and
// "#" comments ignored. Names must be valid drym host names.
func ReadInventory(path string) ([]string, error) {
	f, err := safefile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the inventory: %w", err)
	}
	defer f.Close()
	var hosts []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !config.ValidHost(line) {
			return nil, fmt.Errorf("%s:%d: %q is not a host name", path, n, line)
		}
		if !seen[line] {
			seen[line] = true
			hosts = append(hosts, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the inventory %s: %w", path, err)
	}
	return hosts, nil
}

// ValidHost reports whether name can be a drym host (a folder name in the
// store).
func ValidHost(name string) bool { return config.ValidHost(name) }
