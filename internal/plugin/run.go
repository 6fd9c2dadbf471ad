package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/alexflint/go-arg"
	nagios "github.com/atc0005/go-nagios"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/version"
)

// Base holds the flags every drym check has, those of a check that reads no
// host settings (check_backup_fleet) included: -t and -v (and --version).
type Base struct {
	Timeout Duration `arg:"-t,--timeout" default:"10s" placeholder:"DURATION" help:"give up with UNKNOWN after this long (e.g. 10s, 1m, or seconds; more than 0)"`
	Verbose bool     `arg:"-v,--verbose" help:"log each step on stderr"`

	stderr io.Writer
}

// Common holds the flags of a check that reads a host's settings and
// status files: Base, --config and --state-dir. Embed it (not a pointer)
// in the check's go-arg struct; the check adds its own -w/-c with its
// defaults.
type Common struct {
	Base
	Config   string `arg:"--config,env:DRYM_CONFIG" placeholder:"FILE" help:"drym settings file [default: /etc/drym/drym.toml]"`
	StateDir string `arg:"--state-dir" placeholder:"DIR" help:"directory of the status files [default: state_dir from the settings, /var/lib/drym]"`
}

// Version is printed by --version and atop --help (go-arg's Versioned).
func (Base) Version() string { return "drym " + version.Version }

func (b *Base) base() *Base { return b }

// Args is implemented by every struct that embeds Base (or Common).
type Args interface{ base() *Base }

// Validator is implemented by Args that check flag combinations after
// parsing; an error exits 3 like a bad flag.
type Validator interface{ Validate() error }

// Check is one check binary.
type Check struct {
	// Name is the program name shown in usage and messages.
	Name string
	// Args points to the check's go-arg struct, which embeds Common (or
	// Base) and may
	// implement Description() and Epilogue() (go-arg) and Validator.
	Args Args
	// Run gathers and evaluates. It runs in its own goroutine under the -t
	// deadline carried by ctx; it should pass ctx to anything that can
	// block, but a Run stuck where ctx cannot reach (open(2) on a FIFO, a
	// hung NFS read) is abandoned at the deadline all the same.
	Run func(ctx context.Context) Result
}

// Main runs the check as a program and exits with the plugin exit code.
func (c Check) Main() {
	p := nagios.NewPlugin()
	p.SetOutputTarget(TrimmedLines(os.Stdout))
	// First defer: turns a panic into CRITICAL and calls os.Exit.
	defer p.ReturnCheckResults()
	c.exec(p, os.Args[1:], os.Stdout, os.Stderr)
}

// Exec is Main without os.Exit, for tests: it writes the output to stdout
// and returns the exit code.
func (c Check) Exec(argv []string, stdout, stderr io.Writer) int {
	p := nagios.NewPlugin()
	p.SkipOSExit()
	p.SetOutputTarget(TrimmedLines(stdout))
	func() {
		defer p.ReturnCheckResults()
		c.exec(p, argv, stdout, stderr)
	}()
	return p.ExitStatusCode
}

func (c Check) exec(p *nagios.Plugin, argv []string, stdout, stderr io.Writer) {
	// Preset UNKNOWN: any early return must not print nothing and exit 0.
	p.ExitStatusCode = nagios.StateUNKNOWNExitCode
	p.ServiceOutput = "UNKNOWN: " + c.Name + " ended without a result (a drym bug: run it with -v and report it)"

	parser, err := arg.NewParser(arg.Config{Program: c.Name, Exit: func(int) {}, Out: stdout}, c.Args)
	if err != nil {
		p.ServiceOutput = "UNKNOWN: " + c.Name + ": bad flag definitions (a drym bug): " + err.Error()
		return
	}
	err = parser.Parse(argv)
	if err == nil {
		err = c.Args.base().validate()
	}
	if err == nil {
		if v, ok := c.Args.(Validator); ok {
			err = v.Validate()
		}
	}
	switch {
	case errors.Is(err, arg.ErrHelp):
		quiet(p)
		parser.WriteHelp(stdout)
		return
	case errors.Is(err, arg.ErrVersion):
		quiet(p)
		fmt.Fprintf(stdout, "%s %s\n", c.Name, c.Args.base().Version())
		return
	case err != nil:
		var usage bytes.Buffer
		parser.WriteUsage(&usage)
		Render(p, Result{
			State:   Unknown,
			Summary: fmt.Sprintf("bad command line: %v (see %s --help)", err, c.Name),
			Long:    strings.Split(strings.TrimSpace(usage.String()), "\n"),
		})
		return
	}

	cm := c.Args.base()
	cm.stderr = io.Discard
	if cm.Verbose {
		cm.stderr = stderr
	}
	Render(p, c.runWithDeadline(cm, cm.Timeout.D()))
}

// validate refuses a timeout of 0: it would either wait for ever (the
// opposite of what -t is for) or silently mean the default.
func (c *Base) validate() error {
	if c.Timeout.D() <= 0 {
		return errors.New("-t/--timeout must be longer than 0 (e.g. -t 10s)")
	}
	return nil
}

// quiet makes ReturnCheckResults print nothing and exit 0 (help, version).
func quiet(p *nagios.Plugin) {
	p.ExitStatusCode = nagios.StateOKExitCode
	p.ServiceOutput = ""
	p.LongServiceOutput = ""
}

type outcome struct {
	res      Result
	panicked any
	stack    []byte
}

func (c Check) runWithDeadline(cm *Base, timeout time.Duration) Result {
	act := &activity{what: "starting", log: cm.stderr, start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx = context.WithValue(ctx, activityKey{}, act)

	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- outcome{panicked: v, stack: debug.Stack()}
			}
		}()
		done <- outcome{res: c.Run(ctx)}
	}()
	select {
	case o := <-done:
		if o.panicked != nil {
			// Re-panic here so go-nagios reports it as CRITICAL with a stack.
			panic(fmt.Sprintf("%v\n%s", o.panicked, o.stack))
		}
		if ctx.Err() == nil {
			act.logf("done: %s", o.res.State)
			return o.res
		}
		// Run returned because the deadline cut a call short: report the
		// timeout, not the I/O error it caused.
	case <-ctx.Done():
	}
	what := act.current()
	return Result{
		State: Unknown,
		Summary: fmt.Sprintf("timed out after %s %s: is a mount or the store hung? fix that, or raise -t if %s is just slow",
			HumanDuration(timeout), what, c.Name),
	}
}

type activityKey struct{}

type activity struct {
	mu    sync.Mutex
	what  string
	log   io.Writer
	start time.Time
}

func (a *activity) current() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.what
}

func (a *activity) logf(format string, args ...any) {
	if a.log == nil || a.log == io.Discard {
		return
	}
	fmt.Fprintf(a.log, "%7.3fs %s\n", time.Since(a.start).Seconds(), fmt.Sprintf(format, args...))
}

// Doing names the step Run is taking ("reading /var/lib/drym/backup.json"):
// the timeout message reports the last one, and -v logs each on stderr.
// It is a no-op on a context that did not come from Check.
func Doing(ctx context.Context, format string, args ...any) {
	a, ok := ctx.Value(activityKey{}).(*activity)
	if !ok {
		return
	}
	what := fmt.Sprintf(format, args...)
	a.mu.Lock()
	a.what = what
	a.mu.Unlock()
	a.logf("%s", what)
}

// Logf logs a line on stderr under -v only.
func Logf(ctx context.Context, format string, args ...any) {
	if a, ok := ctx.Value(activityKey{}).(*activity); ok {
		a.logf(format, args...)
	}
}

// ErrNotSetUp means drym was never set up on this host: no settings file and
// no state directory. Checks report it CRITICAL with NotSetUpFix. Settings
// returns it as a *NotSetUpError, which says what is missing.
var ErrNotSetUp = errors.New("not set up")

// NotSetUpError is ErrNotSetUp with what was looked for and not found, kept
// as data so the check's line can quote it without trimming error text.
type NotSetUpError struct {
	Missing string // e.g. "no settings file /etc/drym/drym.toml"
}

func (e *NotSetUpError) Error() string        { return ErrNotSetUp.Error() + ": " + e.Missing }
func (e *NotSetUpError) Is(target error) bool { return target == ErrNotSetUp }

// NotSetUpFix is the command that sets drym up.
const NotSetUpFix = "run backup_runner init"

// Settings loads the settings file (--config, $DRYM_CONFIG, or the default)
// and returns it with the state directory (--state-dir wins over state_dir).
// Without a settings file, --state-dir alone is enough and cfg is nil. The
// error wraps ErrNotSetUp when there is neither a settings file nor a state
// directory; otherwise it says what is wrong with the file.
func (c *Common) Settings(ctx context.Context) (cfg *config.Config, stateDir string, err error) {
	path := config.PathFromEnv(c.Config)
	Doing(ctx, "reading settings %s", path)
	_, statErr := os.Stat(path)
	switch {
	case statErr == nil:
		cfg, err = config.Load(path)
		if err != nil {
			return nil, "", fmt.Errorf("cannot use settings: %w", err)
		}
		stateDir = cfg.StateDir
	case errors.Is(statErr, fs.ErrNotExist):
		if c.StateDir == "" {
			return nil, "", &NotSetUpError{Missing: "no settings file " + path}
		}
	default:
		return nil, "", fmt.Errorf("cannot use settings: %w (the check runs as user nagios: make the file readable by group nagios)", statErr)
	}
	if c.StateDir != "" {
		stateDir = c.StateDir
	}
	Doing(ctx, "looking at state directory %s", stateDir)
	if _, err := os.Stat(stateDir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return cfg, stateDir, &NotSetUpError{Missing: "no state directory " + stateDir}
		}
		return cfg, stateDir, fmt.Errorf("cannot use state directory: %w (the check runs as user nagios: make it readable by group nagios)", err)
	}
	return cfg, stateDir, nil
}

// SettingsResult turns an error from Settings into the check's result:
// CRITICAL "not set up: run backup_runner init (…)" or UNKNOWN naming the
// problem with the file.
func SettingsResult(err error) Result {
	if ns := (*NotSetUpError)(nil); errors.As(err, &ns) {
		return Result{State: Critical, Summary: fmt.Sprintf("not set up: %s (%s)", NotSetUpFix, ns.Missing)}
	}
	if errors.Is(err, ErrNotSetUp) {
		return Result{State: Critical, Summary: "not set up: " + NotSetUpFix}
	}
	return Result{State: Unknown, Summary: err.Error() + ": correct it, then check with backup_runner status"}
}
