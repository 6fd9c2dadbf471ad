package pluginsd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/testutil"
)

// stockIcinga2Dir holds Debian's stock icinga2.conf and what it includes.
const stockIcinga2Dir = "/etc/icinga2"

// icingaSetup writes a copy of the stock icinga2.conf that includes the
// shipped plugins.d/icinga2 files and hostsConf, in a dir the nagios user can
// read (icinga2 drops to it before reading). It returns the config path and
// the -D flag that keeps icinga2's cache (vars and object dump) in the temp
// dir instead of /var/cache/icinga2.
func icingaSetup(t *testing.T, hostsConf string) (cfg, cacheDef string) {
	t.Helper()
	dir := publicDir(t)
	stock, err := os.ReadFile(filepath.Join(stockIcinga2Dir, "icinga2.conf"))
	if err != nil {
		t.Fatalf("stock config: %v (installed with icinga2)", err)
	}
	// The stock file's relative includes are relative to its own directory.
	conf := regexp.MustCompile(`(?m)^(include(?:_recursive)?\s+)"([^/"][^"]*)"`).
		ReplaceAllString(string(stock), `$1"`+stockIcinga2Dir+`/$2"`)
	shipped := filepath.Join(pluginsDir(t), "icinga2")
	files, _ := filepath.Glob(filepath.Join(shipped, "*.conf"))
	if len(files) == 0 {
		t.Fatalf("no *.conf in %s", shipped)
	}
	for _, f := range files {
		copyFile(t, f, filepath.Join(dir, "drym", filepath.Base(f)), 0o644)
	}
	writeFile(t, filepath.Join(dir, "hosts.conf"), []byte(hostsConf), 0o644)
	conf += "\ninclude \"" + dir + "/drym/*.conf\"\ninclude \"" + dir + "/hosts.conf\"\n"
	cfg = filepath.Join(dir, "icinga2.conf")
	writeFile(t, cfg, []byte(conf), 0o644)

	cache := filepath.Join(dir, "cache")
	if err := os.Mkdir(cache, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cache, 0o777); err != nil { // written as user nagios
		t.Fatal(err)
	}
	return cfg, "-DCacheDir=" + cache
}

// icingaService is one instantiated Service as icinga2 object list shows it.
type icingaService struct {
	host, name, command, nrpeCommand string
}

var (
	objectRe  = regexp.MustCompile(`(?m)^Object '([^'!]+)!([^']+)' of type 'Service':$`)
	commandRe = regexp.MustCompile(`(?m)^  \* check_command = "([^"]*)"$`)
	nrpeRe    = regexp.MustCompile(`(?m)^    \* nrpe_command = "([^"]*)"$`)
)

// parseServices reads the drym services out of icinga2 object list output.
func parseServices(out string) []icingaService {
	var svcs []icingaService
	locs := objectRe.FindAllStringSubmatchIndex(out, -1)
	for i, l := range locs {
		end := len(out)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		block := out[l[0]:end]
		s := icingaService{host: out[l[2]:l[3]], name: out[l[4]:l[5]]}
		if !strings.HasPrefix(s.name, "drym-") {
			continue
		}
		if m := commandRe.FindStringSubmatch(block); m != nil {
			s.command = m[1]
		}
		if m := nrpeRe.FindStringSubmatch(block); m != nil {
			s.nrpeCommand = m[1]
		}
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(i, j int) bool {
		return svcs[i].host+"!"+svcs[i].name < svcs[j].host+"!"+svcs[j].name
	})
	return svcs
}

// serviceBlock is the object list output of one service ("" when absent).
func serviceBlock(out, name string) string {
	start := strings.Index(out, "Object '"+name+"' of type 'Service':")
	if start < 0 {
		return ""
	}
	rest := out[start+1:]
	if end := strings.Index(rest, "\nObject '"); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// TestIcinga2Config includes plugins.d/icinga2 from Debian's stock
// icinga2.conf, adds hosts marked for local and NRPE checks, and requires
// icinga2 daemon -C to validate it without a warning and the apply rules to
// give each host exactly its three services with the right commands.
func TestIcinga2Config(t *testing.T) {
	icinga := testutil.Need(t, "icinga2")
	tests := []struct {
		name    string
		hosts   string
		wantErr string // in the output when validation must fail
		want    []icingaService
	}{
		{
			name: "local, nrpe, both, from the store, fleet",
			hosts: `
object Host "h-local" { check_command = "dummy"; address = "127.0.0.1"; vars.drym = true
  vars.drym_backup_age_warning = "30h"; vars.drym_backup_age_remote = true }
object Host "h-nrpe" { check_command = "dummy"; address = "127.0.0.1"; vars.drym_nrpe = true; vars.nrpe_no_ssl = true }
object Host "h-both" { check_command = "dummy"; address = "127.0.0.1"; vars.drym = true; vars.drym_nrpe = true }
object Host "h-none" { check_command = "dummy"; address = "127.0.0.1" }
object Host "web3" { check_command = "dummy"; address = "192.0.2.3"; vars.drym_storage = true }
object Host "h-nrpe-store" { check_command = "dummy"; address = "127.0.0.1"; vars.drym_nrpe = true; vars.drym_storage = true; vars.drym_host = "db1" }
object Host "monitoring" { check_command = "dummy"; address = "127.0.0.1"; vars.drym_fleet = true
  vars.drym_backup_fleet_inventory = "/etc/drym/hosts" }
`,
			want: []icingaService{
				{"h-both", "drym-backup-age", "nrpe", "check_backup_age"},
				{"h-both", "drym-key-escrow", "nrpe", "check_key_escrow"},
				{"h-both", "drym-test-restore", "nrpe", "check_test_restore"},
				{"h-local", "drym-backup-age", "drym_backup_age", ""},
				{"h-local", "drym-key-escrow", "drym_key_escrow", ""},
				{"h-local", "drym-test-restore", "drym_test_restore", ""},
				{"h-nrpe", "drym-backup-age", "nrpe", "check_backup_age"},
				{"h-nrpe", "drym-key-escrow", "nrpe", "check_key_escrow"},
				{"h-nrpe", "drym-test-restore", "nrpe", "check_test_restore"},
				{"h-nrpe-store", "drym-backup-age", "nrpe", "check_backup_age"},
				{"h-nrpe-store", "drym-backup-storage", "drym_backup_age", ""},
				{"h-nrpe-store", "drym-escrow-storage", "drym_key_escrow", ""},
				{"h-nrpe-store", "drym-key-escrow", "nrpe", "check_key_escrow"},
				{"h-nrpe-store", "drym-test-restore", "nrpe", "check_test_restore"},
				{"monitoring", "drym-backup-fleet", "drym_backup_fleet", ""},
				{"web3", "drym-backup-storage", "drym_backup_age", ""},
				{"web3", "drym-escrow-storage", "drym_key_escrow", ""},
			},
		},
		{
			name:    "duplicate service is caught",
			hosts:   `object Host "h" { check_command = "dummy"; vars.drym = true }` + "\n" + `object Service "drym-backup-age" { host_name = "h"; check_command = "dummy" }`,
			wantErr: "already exists",
		},
		{
			name:    "unknown command is caught",
			hosts:   `object Host "h" { check_command = "drym_nope" }`,
			wantErr: "drym_nope",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, cacheDef := icingaSetup(t, tt.hosts)
			r := run(t, 2*time.Minute, exec.Command(icinga, "daemon", "-C", "-c", cfg, cacheDef))
			out := r.stdout + r.stderr
			if tt.wantErr != "" {
				if r.code == 0 || !strings.Contains(out, tt.wantErr) {
					t.Fatalf("icinga2 daemon -C exited %d, want a failure naming %q:\n%s", r.code, tt.wantErr, out)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("icinga2 daemon -C exited %d:\n%s", r.code, out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "warning/") || strings.Contains(line, "critical/") {
					t.Errorf("icinga2 daemon -C: %s", line)
				}
			}
			// object list reads the object dump daemon -C just wrote.
			r = run(t, time.Minute, exec.Command(icinga, "object", "list", "--type", "Service", cacheDef))
			if r.code != 0 {
				t.Fatalf("icinga2 object list exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			got := parseServices(r.stdout)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("drym services:\n got %v\nwant %v", got, tt.want)
			}
			// The storage-side services judge the host by its drym name.
			for svc, want := range map[string]string{
				"web3!drym-backup-storage":         `* drym_backup_age_host = "web3"`,
				"h-nrpe-store!drym-backup-storage": `* drym_backup_age_host = "db1"`,
				"web3!drym-escrow-storage":         `* drym_key_escrow_host = "web3"`,
			} {
				if b := serviceBlock(r.stdout, svc); b != "" && !strings.Contains(b, want) {
					t.Errorf("%s lacks %s:\n%s", svc, want, b)
				}
			}
		})
	}
}

// checkFlags are every flag of every check (docs/REFERENCE.md): the
// CheckCommand of each must offer all of them as arguments.
var checkFlags = map[string][]string{
	"check_backup_age":   {"--warning", "--critical", "--timeout", "--config", "--state-dir", "-v", "--remote", "--max-runtime", "--shrink-warning", "--remote-verify", "--host", "--monitoring-config"},
	"check_test_restore": {"--warning", "--critical", "--timeout", "--config", "--state-dir", "-v", "--max-backup-age", "--max-runtime"},
	"check_key_escrow":   {"--warning", "--critical", "--timeout", "--config", "--state-dir", "-v", "--zip", "--expiry-warning", "--expiry-critical", "--host", "--monitoring-config"},
	"check_backup_fleet": {"--warning", "--critical", "--timeout", "-v", "--shrink-warning", "--inventory", "--escrow-proof", "--concurrency", "--worst", "--monitoring-config"},
}

var (
	checkCommandRe = regexp.MustCompile(`(?s)object CheckCommand "drym_(\w+)" \{(.*?)\n\}`)
	argumentRe     = regexp.MustCompile(`(?m)^\t\t"(-[-\w]+)" = \{`)
	argVarRe       = regexp.MustCompile(`\$(drym_\w+)\$`)
	helpFlagRe     = regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z][-a-z]*)`)
)

// TestIcinga2Arguments holds each CheckCommand to the flags of its check:
// all of them, each driven by a drym_<check>_<flag> custom var, and, for each
// check built from cmd/, every flag its --help lists (so a new flag cannot be
// forgotten here).
func TestIcinga2Arguments(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(pluginsDir(t), "icinga2", "drym-commands.conf"))
	if err != nil {
		t.Fatal(err)
	}
	commands := map[string]string{}
	for _, m := range checkCommandRe.FindAllStringSubmatch(string(data), -1) {
		commands["check_"+m[1]] = m[2]
	}
	// Every check in cmd/ is held to its --help: one missing from the list
	// would go unchecked.
	mains, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "cmd", "check_*", "main.go"))
	for _, m := range mains {
		if check := filepath.Base(filepath.Dir(m)); checkFlags[check] == nil {
			t.Errorf("cmd/%s has no entry in checkFlags (and so no CheckCommand test)", check)
		}
	}
	for check, flags := range checkFlags {
		t.Run(check, func(t *testing.T) {
			body, ok := commands[check]
			if !ok {
				t.Fatalf("no CheckCommand drym_%s", strings.TrimPrefix(check, "check_"))
			}
			if !strings.Contains(body, `PluginDir + "/`+check+`"`) {
				t.Errorf("drym_%s does not run PluginDir/%s", check, check)
			}
			var args []string
			for _, m := range argumentRe.FindAllStringSubmatch(body, -1) {
				args = append(args, m[1])
			}
			for _, f := range flags {
				if !slices.Contains(args, f) {
					t.Errorf("flag %s missing from the arguments %v", f, args)
				}
			}
			prefix := "drym_" + strings.TrimPrefix(check, "check_") + "_"
			for _, m := range argVarRe.FindAllStringSubmatch(body, -1) {
				if !strings.HasPrefix(m[1], prefix) {
					t.Errorf("custom var %s should start with %s", m[1], prefix)
				}
			}
			if n := len(argVarRe.FindAllString(body, -1)); n != len(args) {
				t.Errorf("%d arguments but %d custom vars: one var per argument", len(args), n)
			}

			main := filepath.Join(testutil.RepoRoot(t), "cmd", check, "main.go")
			if _, err := os.Stat(main); err != nil {
				t.Fatalf("checkFlags lists %s, but there is no %s", check, main)
			}
			r := run(t, time.Minute, exec.Command(testutil.Binary(t, check), "--help"))
			if r.code != 0 {
				t.Fatalf("%s --help exited %d:\n%s%s", check, r.code, r.stdout, r.stderr)
			}
			for _, m := range helpFlagRe.FindAllStringSubmatch(r.stdout, -1) {
				f := m[1]
				if f == "--help" || f == "--version" || f == "--verbose" && slices.Contains(args, "-v") {
					continue
				}
				if !slices.Contains(args, f) {
					t.Errorf("%s --help lists %s, but drym_%s has no such argument", check, f, strings.TrimPrefix(check, "check_"))
				}
			}
		})
	}
}
