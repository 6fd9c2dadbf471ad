package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
)

// args are check_key_escrow's flags.
type args struct {
	Zip            string          `arg:"--zip" placeholder:"FILE" help:"check this escrow zip instead of the newest one in [escrow] url"`
	ExpiryWarning  plugin.Duration `arg:"--expiry-warning" default:"30d" placeholder:"DURATION" help:"WARNING when the host key expires within this"`
	ExpiryCritical plugin.Duration `arg:"--expiry-critical" default:"7d" placeholder:"DURATION" help:"CRITICAL when the host key expires within this"`
	Warning        plugin.AgeRange `arg:"-w,--warning" placeholder:"AGE" help:"WARNING when the escrow zip is older (default: never; the key does not age)"`
	Critical       plugin.AgeRange `arg:"-c,--critical" placeholder:"AGE" help:"CRITICAL when the escrow zip is older (default: never)"`
	KeyOwner       string          `arg:"--key-owner" default:"root" placeholder:"USER" help:"user who must own the secret key file"`
	Host           string          `arg:"--host" placeholder:"HOST" help:"prove HOST's escrow where the zips live, against its newest backup in the destination: the zip opened when readable (its key must decrypt the backup's session key and first block), else its public record; reads --monitoring-config"`
	Monitoring     string          `arg:"--monitoring-config,env:DRYM_MONITORING_CONFIG" placeholder:"FILE" help:"monitoring settings for --host: destination, escrow location, pinned keys, read_profile [default: /etc/drym/monitoring.toml]"`
	plugin.Common
}

// Validate refuses flag combinations that mean nothing together.
func (a *args) Validate() error {
	switch {
	case a.Host == "":
		return nil
	case !evidence.ValidHost(a.Host):
		return fmt.Errorf("--host %q is not a host name", a.Host)
	case a.Zip != "" || a.StateDir != "":
		return errors.New("--host reads the escrow location and the destination: drop --zip and --state-dir")
	}
	return nil
}

func (args) Description() string {
	return "check_key_escrow: does the escrow zip off this host hold the key this host encrypts its backups to?\n" +
		"Reads the newest escrow zip (or --zip) or, when it is not readable, its public record; the public key, backup.json and,\n" +
		"when readable (root), the secret key. Runs as user nagios."
}

func (args) Epilogue() string {
	return `States: OK escrowed key == host key == last backup's key, its secret covering every encryption subkey and every
key the last backup was encrypted to (as nagios a 0600 zip is judged by its public record <zip>.json and its size:
the OK line says it was not opened) · WARNING escrow is stale (settings changed), key expires within
--expiry-warning, secret key file too open or not owned by --key-owner · CRITICAL key or subkey mismatch,
no/unusable/other host's zip, record not matching the zip, no escrow configured, not set up, key expires within
--expiry-critical · UNKNOWN bad flags, unreadable files, escrow location unreachable, unreadable zip without a record,
status files of another host, timeout.
--host HOST: where the zips live, prove HOST's newest zip opens HOST's newest backup (session key and first block).
Perfdata: zip_age=s;w;c;0 key_expiry=s;w;c (only when the key expires).
Example: check_key_escrow --expiry-warning 30d --expiry-critical 7d -t 20 · check_key_escrow --host web1 -t 30`
}

func main() {
	var a args
	plugin.Check{Name: "check_key_escrow", Args: &a, Run: func(ctx context.Context) plugin.Result {
		if a.Host != "" {
			return storage(ctx, &a, time.Now())
		}
		return evaluate(gather(ctx, &a), a, time.Now())
	}}.Main()
}
