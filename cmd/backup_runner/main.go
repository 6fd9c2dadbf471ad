package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alexflint/go-arg"

	"github.com/drym-backup/drym/internal/config"
	"github.com/drym-backup/drym/internal/status"
	"github.com/drym-backup/drym/internal/version"
)

// Exit codes (docs/REFERENCE.md#exit-codes).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type args struct {
	Config  string `arg:"--config,env:DRYM_CONFIG" help:"settings file [default: /etc/drym/drym.toml]" placeholder:"FILE"`
	Verbose bool   `arg:"-v,--verbose" help:"debug logs on stderr"`
	Quiet   bool   `arg:"-q,--quiet" help:"print only errors"`

	Init        *initCmd        `arg:"subcommand:init" help:"write settings, create the host key, ship the escrow zip (safe to re-run)"`
	Backup      *backupCmd      `arg:"subcommand:backup" help:"make one backup and sign it with the host key (runs as root)"`
	TestRestore *testRestoreCmd `arg:"subcommand:test-restore" help:"check a backup's signature, download it and verify every file against its manifest"`
	Restore     *restoreCmd     `arg:"subcommand:restore" help:"check a backup's signature and restore it into a directory"`
	Escrow      *escrowCmd      `arg:"subcommand:escrow" help:"rebuild and ship the escrow zip"`
	List        *listCmd        `arg:"subcommand:list" help:"list the backups in the destination, newest first: signed or not, dated in the future, latest"`
	Files       *filesCmd       `arg:"subcommand:files" help:"list the paths a backup holds, after verifying the whole backup"`
	Status      *statusCmd      `arg:"subcommand:status" help:"show the last backup, test restore and escrow"`
	Doctor      *doctorCmd      `arg:"subcommand:doctor" help:"probe the destination and the escrow: can this host add backups but neither delete nor replace them?"`
}

func (args) Version() string { return "backup_runner " + version.Version }

func (args) Description() string {
	return `backup_runner makes drym backups: tar + zstd + OpenPGP, streamed to a local
directory or S3 under names nobody can guess or overwrite, each signed with the
host key; it runs test restores (which, like restore, trust only backups the
host key signed), ships the key escrow zip, and records every outcome in
status files that the Nagios checks read (check_backup_age,
check_test_restore, check_key_escrow).
`
}

func (args) Epilogue() string {
	return `Exit status: 0 success, 1 failure (the status file says why; doctor: a FAIL
line), 2 usage or settings error (also a --backup name that is malformed or
not in the destination; no status file is written).

Examples:
  backup_runner init --source /etc --source /var/www --dest s3://bucket/drym --escrow dir:///mnt/escrow
  backup_runner backup
  backup_runner test-restore
  backup_runner files --backup latest /etc/nginx
  backup_runner restore --to /tmp/restore /etc/nginx
  backup_runner status
  backup_runner doctor`
}

// app is what every subcommand gets: settings path, output, logger, clock.
type app struct {
	cfgPath string
	verbose bool
	quiet   bool
	stdout  io.Writer
	stderr  io.Writer
	log     *slog.Logger
	now     func() time.Time
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	var a args
	p, err := arg.NewParser(arg.Config{Program: "backup_runner", Out: stdout, Exit: func(int) {}}, &a)
	if err != nil {
		fmt.Fprintln(stderr, "backup_runner:", err)
		return exitUsage
	}
	err = p.Parse(argv)
	switch {
	case errors.Is(err, arg.ErrHelp):
		p.WriteHelpForSubcommand(stdout, p.SubcommandNames()...)
		return exitOK
	case errors.Is(err, arg.ErrVersion):
		fmt.Fprintln(stdout, a.Version())
		return exitOK
	case err != nil:
		fmt.Fprintln(stderr, "backup_runner:", err)
		p.WriteUsageForSubcommand(stderr, p.SubcommandNames()...)
		return exitUsage
	}
	level := slog.LevelWarn
	if a.Verbose {
		level = slog.LevelDebug
	}
	ap := &app{
		cfgPath: config.PathFromEnv(a.Config), verbose: a.Verbose, quiet: a.Quiet,
		stdout: stdout, stderr: stderr, now: time.Now,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if a.Quiet {
		ap.stdout = io.Discard
	}
	// SIGINT/SIGTERM cancel the context: every job then aborts its upload
	// and records "failed: interrupted" instead of dying mid-write.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case a.Init != nil:
		return a.Init.run(ctx, ap)
	case a.Backup != nil:
		return a.Backup.run(ctx, ap)
	case a.TestRestore != nil:
		return a.TestRestore.run(ctx, ap)
	case a.Restore != nil:
		return a.Restore.run(ctx, ap)
	case a.Escrow != nil:
		return a.Escrow.run(ctx, ap)
	case a.List != nil:
		return a.List.run(ctx, ap)
	case a.Files != nil:
		return a.Files.run(ctx, ap)
	case a.Status != nil:
		return a.Status.run(ctx, ap)
	case a.Doctor != nil:
		return a.Doctor.run(ctx, ap)
	}
	p.WriteHelp(stderr)
	return exitUsage
}

// loadConfig loads the settings; a problem with them is a usage error.
func (a *app) loadConfig() (*config.Config, int, error) {
	cfg, err := config.Load(a.cfgPath)
	if err != nil {
		return nil, exitUsage, err
	}
	return cfg, exitOK, nil
}

// fail prints a one-line error and returns the exit code.
func (a *app) fail(code int, format string, args ...any) int {
	fmt.Fprintf(a.stderr, "backup_runner: "+format+"\n", args...)
	return code
}

// printf writes progress and results unless -q.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.stdout, format, args...)
}

// endJob records in c how a job ended: its finish time, and ok or failed
// with the error on one line (a signal reads "interrupted"). It returns the
// error as recorded.
func (a *app) endJob(ctx context.Context, c *status.Common, err error) error {
	c.Finished = a.now().UTC()
	if err == nil {
		c.State = status.OK
		return nil
	}
	err = interrupted(ctx, err)
	c.State, c.Error = status.Failed, oneLine(err.Error())
	return err
}

// interrupted turns a context cancellation by a signal into the words the
// status file and the checks use.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return errors.New("interrupted (SIGINT/SIGTERM)")
	}
	return err
}
