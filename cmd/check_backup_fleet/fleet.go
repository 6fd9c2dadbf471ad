package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drym-backup/drym/internal/evidence"
	"github.com/drym-backup/drym/internal/plugin"
	"github.com/drym-backup/drym/internal/store"
)

// verdict is one host's result: all the sweep keeps of it, so memory grows
// with the hosts, never with their objects.
type verdict struct {
	Host  string
	State plugin.State
	Line  string // its first line, without the state
	// Age of its newest backup (-1 when there is none).
	Age      time.Duration
	Requests int
}

// facts is everything the sweep found; evaluate judges it without I/O.
type facts struct {
	SettingsErr  error
	Settings     string // path
	Where        string // destination URL
	Inventory    []string
	InventoryOf  string // the inventory file ("" without one)
	InventoryErr error
	// ListErr: the hosts in the destination could not be listed.
	ListErr  error
	Verdicts []verdict
	Requests int
	Took     time.Duration
}

// margin is the part of -t kept to end the sweep and print: hosts not
// judged by then are UNKNOWN, and the check still answers within -t.
func margin(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Second
	}
	return min(max(time.Until(d)/10, 200*time.Millisecond), 2*time.Second)
}

// sweep lists the hosts in the destination, reads the inventory, and
// judges every host with bounded concurrency until shortly before -t.
func sweep(ctx context.Context, a *args, now time.Time) facts {
	var f facts
	start := time.Now()
	s, err := evidence.LoadSettings(evidence.SettingsPath(a.Monitoring))
	if err != nil {
		f.SettingsErr = err
		return f
	}
	f.Settings, f.Where = s.Path, s.Destination.URL
	f.InventoryOf = a.Inventory
	if f.InventoryOf == "" {
		f.InventoryOf = s.Inventory
	}
	if f.InventoryOf != "" {
		if f.Inventory, f.InventoryErr = evidence.ReadInventory(f.InventoryOf); f.InventoryErr != nil {
			return f
		}
	}
	o, err := evidence.Open(ctx, s)
	if err != nil {
		f.SettingsErr = fmt.Errorf("cannot open the stores of %s: %w", s.Path, err)
		return f
	}
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-margin(ctx)))
		defer cancel()
	}
	stored, n, err := listHosts(ctx, o.Dest)
	f.Requests += n
	if err != nil {
		f.ListErr = err
		return f
	}
	f.Verdicts = judgeAll(ctx, a, o, targets(f.Inventory, f.InventoryOf, stored, o.Destination.URL), now)
	for _, v := range f.Verdicts {
		f.Requests += v.Requests
	}
	f.Took = time.Since(start)
	return f
}

// listHosts lists the host folders of the destination, a page of 1,000 a
// request.
func listHosts(ctx context.Context, dest store.Store) (hosts []string, requests int, err error) {
	token := ""
	for {
		plugin.Doing(ctx, "listing the hosts in %s", dest)
		dirs, next, err := store.ListDirs(ctx, dest, token, store.MaxPage)
		requests++
		if err != nil {
			return nil, requests, err
		}
		for _, d := range dirs {
			if evidence.ValidHost(d) {
				hosts = append(hosts, d)
			}
		}
		if next == "" {
			return hosts, requests, nil
		}
		token = next
	}
}

// target is a host to judge, or (Fixed) one whose verdict needs no request.
type target struct {
	Host  string
	Fixed *verdict
}

// targets joins the inventory and the hosts found: every inventory host is
// judged (one with no folder is never backed up, no request needed), a
// host found but not in the inventory is unmonitored. Without an
// inventory every host found is judged.
func targets(inventory []string, inventoryOf string, stored []string, where string) []target {
	if inventoryOf == "" {
		out := make([]target, len(stored))
		for i, h := range stored {
			out[i] = target{Host: h}
		}
		return out
	}
	found := make(map[string]bool, len(stored))
	for _, h := range stored {
		found[h] = true
	}
	listed := make(map[string]bool, len(inventory))
	var out []target
	for _, h := range inventory {
		listed[h] = true
		if found[h] {
			out = append(out, target{Host: h})
			continue
		}
		out = append(out, target{Host: h, Fixed: &verdict{Host: h, State: plugin.Critical, Age: -1,
			Line: fmt.Sprintf("never backed up: %s has no folder for %s: run backup_runner init on %s (then backup_runner backup)", where, h, h)}})
	}
	for _, h := range stored {
		if !listed[h] {
			out = append(out, target{Host: h, Fixed: &verdict{Host: h, State: plugin.Warning, Age: -1,
				Line: fmt.Sprintf("unmonitored: %s has backups in %s but is not in the inventory %s: add it there (and give it its services), or remove its backups", h, where, inventoryOf)}})
		}
	}
	return out
}

// judgeAll judges the targets, a.Concurrency at a time. A host not started
// before ctx ends, or not finished by then, is UNKNOWN.
func judgeAll(ctx context.Context, a *args, o *evidence.Opened, ts []target, now time.Time) []verdict {
	out := make([]verdict, len(ts))
	jobs := make(chan int)
	var wg sync.WaitGroup
	lim := evidence.Limits{Warning: a.Warning, Critical: a.Critical, Shrink: a.ShrinkWarning}
	for range min(a.Concurrency, max(len(ts), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = judgeOne(ctx, a, o, ts[i], lim, now)
			}
		}()
	}
	for i := range ts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

// judgeOne judges one host (or reports it not reached within -t).
func judgeOne(ctx context.Context, a *args, o *evidence.Opened, t target, lim evidence.Limits, now time.Time) verdict {
	if t.Fixed != nil {
		return *t.Fixed
	}
	notReached := verdict{Host: t.Host, State: plugin.Unknown, Age: -1,
		Line: fmt.Sprintf("not judged within -t: raise -t or --concurrency (check_backup_age --host %s judges it alone)", t.Host)}
	if ctx.Err() != nil {
		return notReached
	}
	p, err := o.Params(t.Host, now, evidence.Window(a.Critical), a.EscrowProof)
	if err != nil {
		return verdict{Host: t.Host, State: plugin.Unknown, Age: -1, Line: err.Error()}
	}
	h := evidence.Gather(ctx, p)
	if ctx.Err() != nil {
		notReached.Requests = h.Requests
		return notReached
	}
	var r plugin.Result
	age := evidence.JudgeBackup(&r, h, lim)
	if a.EscrowProof {
		var proof plugin.Result
		evidence.JudgeEscrowProof(&proof, h)
		r.Raise(proof.State, proof.Summary)
	}
	return verdict{Host: t.Host, State: r.State, Line: r.Summary, Age: age, Requests: h.Requests}
}

// evaluate judges the sweep: pure, no I/O, no clock.
func evaluate(f facts, a args) plugin.Result {
	if r, done := unusable(f, a.Timeout.D()); done {
		return r
	}
	vs := slices.Clone(f.Verdicts)
	slices.SortStableFunc(vs, func(x, y verdict) int {
		if x.State != y.State {
			if x.State.Worse(y.State) {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Host, y.Host)
	})
	count := map[plugin.State]int{}
	var states []plugin.State
	oldest := verdict{Age: -1}
	for _, v := range vs {
		count[v.State]++
		states = append(states, v.State)
		if v.Age > oldest.Age {
			oldest = v
		}
	}
	r := plugin.Result{State: plugin.Worst(states...)}
	r.Summary = summary(vs, count, oldest, a.Worst)
	for _, v := range vs {
		if v.State != plugin.OK {
			r.Addf("%s %s: %s", v.State, v.Host, v.Line)
		}
	}
	inv := "no inventory: every host in the destination judged"
	if f.InventoryOf != "" {
		inv = fmt.Sprintf("%d in the inventory %s", len(f.Inventory), f.InventoryOf)
	}
	r.Addf("hosts: %d judged (%s); %d requests to %s in %s", len(vs), inv, f.Requests, f.Where, plugin.HumanDuration(f.Took.Round(time.Millisecond)))
	r.Addf("thresholds: -w %s -c %s --shrink-warning %s; monitoring settings %s", a.Warning, a.Critical, a.ShrinkWarning, f.Settings)
	r.Perfdata = append(r.Perfdata,
		plugin.Count("hosts", int64(len(vs))),
		plugin.Count("hosts_ok", int64(count[plugin.OK])),
		plugin.Count("hosts_warning", int64(count[plugin.Warning])),
		plugin.Count("hosts_critical", int64(count[plugin.Critical])),
		plugin.Count("hosts_unknown", int64(count[plugin.Unknown])),
		plugin.Seconds("oldest_age", max(oldest.Age, 0).Seconds(), a.Warning.Range, a.Critical.Range),
		plugin.Count("requests", int64(f.Requests)),
	)
	return r
}

// unusable is the result when no host could be judged at all.
func unusable(f facts, timeout time.Duration) (plugin.Result, bool) {
	switch {
	case f.SettingsErr != nil:
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("%v: correct the monitoring settings (see --help)", f.SettingsErr)}, true
	case f.InventoryErr != nil:
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("%v: correct the inventory (--inventory FILE: one host a line)", f.InventoryErr)}, true
	case errors.Is(f.ListErr, context.DeadlineExceeded):
		// A hung store is not a policy problem: pointing at read_profile
		// would send the admin the wrong way. Same wording as the plugin's
		// own timeout, which the sweep's earlier deadline pre-empts here.
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("timed out after %s listing the hosts in %s: is the store hung? fix that, or raise -t if check_backup_fleet is just slow",
			plugin.HumanDuration(timeout), f.Where)}, true
	case f.ListErr != nil:
		return plugin.Result{State: plugin.Unknown, Summary: fmt.Sprintf("cannot list the hosts in %s: %v (check read_profile in %s and that the read-only policy allows listing it)",
			f.Where, f.ListErr, f.Settings)}, true
	case len(f.Verdicts) == 0:
		return plugin.Result{State: plugin.Critical, Summary: fmt.Sprintf("no host: %s holds no backup and there is no inventory: run backup_runner init on each host, and list them in an inventory (--inventory FILE)", f.Where)}, true
	}
	return plugin.Result{}, false
}

// summary is the first line: the counts by state, naming the worst hosts,
// or for OK the oldest backup.
func summary(vs []verdict, count map[plugin.State]int, oldest verdict, worst int) string {
	if count[plugin.OK] == len(vs) {
		return fmt.Sprintf("all %d hosts backed up: the oldest newest backup is %s old (%s)", len(vs), plugin.HumanDuration(oldest.Age.Round(time.Second)), oldest.Host)
	}
	var parts []string
	named := 0
	for _, s := range []plugin.State{plugin.Critical, plugin.Unknown, plugin.Warning} {
		if count[s] == 0 {
			continue
		}
		var names []string
		for _, v := range vs {
			if v.State == s && named < worst {
				names = append(names, v.Host)
				named++
			}
		}
		if len(names) < count[s] {
			names = append(names, "…")
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", count[s], s, strings.Join(names, ", ")))
	}
	return fmt.Sprintf("%s, %d OK of %d hosts: see each host below; check_backup_age --host HOST judges one",
		strings.Join(parts, ", "), count[plugin.OK], len(vs))
}
