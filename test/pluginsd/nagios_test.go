package pluginsd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drym-backup/drym/internal/testutil"
)

// stockNagiosCfg is the main config Debian's nagios4 package installs; the
// README tells users to add one cfg_dir= line to it, so that is what is tested.
const stockNagiosCfg = "/etc/nagios4/nagios.cfg"

// nagiosVerify runs nagios4 -v on a copy of the stock nagios.cfg with extra
// lines appended, and returns its output, the warning and error totals and
// the number of services it checked.
func nagiosVerify(t *testing.T, nagios string, extra ...string) (out string, warnings, errs, services int) {
	t.Helper()
	dir := publicDir(t)
	stock, err := os.ReadFile(stockNagiosCfg)
	if err != nil {
		t.Fatalf("stock config: %v (installed with nagios4)", err)
	}
	cfg := filepath.Join(dir, "nagios.cfg")
	writeFile(t, cfg, append(stock, []byte("\n"+strings.Join(extra, "\n")+"\n")...), 0o644)
	r := run(t, time.Minute, exec.Command(nagios, "-v", cfg))
	out = r.stdout + r.stderr
	total := func(re string) int {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("nagios4 -v: no %q in output:\n%s", re, out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// An object file nagios4 cannot even read ends the run before the totals.
	if r.code != 0 && strings.Contains(out, "Error processing object config files") {
		return out, 0, 1, 0
	}
	warnings = total(`Total Warnings:\s+(\d+)`)
	errs = total(`Total Errors:\s+(\d+)`)
	if errs == 0 {
		services = total(`Checked (\d+) services\.`)
	}
	if (r.code == 0) != (errs == 0) {
		t.Fatalf("nagios4 -v exited %d with %d errors:\n%s", r.code, errs, out)
	}
	return out, warnings, errs, services
}

// TestNagiosConfig adds plugins.d/nagios with cfg_dir= to Debian's stock
// nagios.cfg, plus hosts that use every template (the example file), and
// requires nagios4 -v to find no warning and no error, and to instantiate
// every example service. The broken cases prove the test can fail.
func TestNagiosConfig(t *testing.T) {
	nagios := testutil.Need(t, "nagios4")
	// Nagios reads the files as root here, but a checkout under /root would
	// not be readable once it drops to nagios: copy them, example included
	// (cfg_dir must skip it: only *.cfg are read).
	shipped := filepath.Join(publicDir(t), "drym")
	files, _ := filepath.Glob(filepath.Join(pluginsDir(t), "nagios", "*"))
	for _, f := range files {
		copyFile(t, f, filepath.Join(shipped, filepath.Base(f)), 0o644)
	}
	example := filepath.Join(shipped, "example-hosts.cfg.example")
	exampleData, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	exampleServices := strings.Count(string(exampleData), "define service")

	_, w, e, stockServices := nagiosVerify(t, nagios)
	if w != 0 || e != 0 {
		t.Fatalf("the stock config alone has %d warnings, %d errors: fix the test machine", w, e)
	}

	tests := []struct {
		name         string
		extra        string // an object file added beside the example hosts
		wantWarnings int
		wantErrors   bool
		wantServices int
	}{
		{name: "shipped", wantServices: stockServices + exampleServices},
		{
			name:       "undefined command",
			extra:      "define service {\n use drym-backup-age\n host_name drym-local-example\n service_description x\n check_command drym_check_nope\n}\n",
			wantErrors: true,
		},
		{
			name:       "undefined template",
			extra:      "define service {\n use drym-nope\n host_name drym-local-example\n}\n",
			wantErrors: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := publicDir(t)
			hosts := filepath.Join(dir, "hosts.cfg")
			writeFile(t, hosts, append(exampleData, tt.extra...), 0o644)
			out, w, e, services := nagiosVerify(t, nagios, "cfg_dir="+shipped, "cfg_file="+hosts)
			if tt.wantErrors {
				if e == 0 {
					t.Fatalf("nagios4 -v found no error, want one:\n%s", out)
				}
				return
			}
			if w != tt.wantWarnings || e != 0 {
				t.Fatalf("nagios4 -v: %d warnings, %d errors, want %d and 0:\n%s", w, e, tt.wantWarnings, out)
			}
			if services != tt.wantServices {
				t.Fatalf("nagios4 -v checked %d services, want %d (stock %d + example %d):\n%s",
					services, tt.wantServices, stockServices, exampleServices, out)
			}
		})
	}
}
