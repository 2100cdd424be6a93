package health

// Health of what dozod cannot work without: Vault, which holds every
// dataset key and every identity, and the catalog. A background probe
// checks both every interval; while it finds Vault down, the broker refuses
// every authenticated request, so no request is served on a remembered
// identity while Vault is gone.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is how often Vault and the catalog are checked when
// DepsConfig sets none. A check times out after half the interval and a
// dependency that was up is taken as down after downAfter (2) failed
// checks in a row, so a Vault that stops answering is seen down within 2.5
// intervals; while it is down it is checked every quarter interval, so it
// is seen up again within that.
const DefaultInterval = 2 * time.Second

// Dependency states.
const (
	Unknown = "unknown"
	Up      = "up"
	Down    = "down"
)

// Dependency is the last verdict on one dependency.
type Dependency struct {
	State     string // Unknown (not checked yet, or no way to check), Up or Down
	Since     time.Time
	CheckedAt time.Time
	LastError string
	failures  int // failed checks in a row
}

// downAfter is how many checks in a row must fail before a dependency that
// was up is taken as down: one slow answer on a loaded machine must not
// make dozod refuse every request.
const downAfter = 2

// DepsConfig is what Deps needs.
type DepsConfig struct {
	Interval time.Duration                   // 0: DefaultInterval
	Vault    func(ctx context.Context) error // nil: Vault's state stays Unknown
	Catalog  func(ctx context.Context) error // required
	Event    EventFunc                       // nil: changes are only logged
	Now      func() time.Time                // nil: time.Now
	Log      *slog.Logger                    // nil: slog.Default()
}

// Deps keeps the last verdict of the Vault and catalog checks. Safe for
// concurrent use.
type Deps struct {
	cfg DepsConfig

	mu      sync.Mutex
	vault   Dependency
	catalog Dependency
}

// NewDeps returns both dependencies Unknown since now.
func NewDeps(cfg DepsConfig) *Deps {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Event == nil {
		cfg.Event = func(context.Context, string, string, string, string) {}
	}
	now := cfg.Now()
	return &Deps{cfg: cfg, vault: Dependency{State: Unknown, Since: now}, catalog: Dependency{State: Unknown, Since: now}}
}

// Run checks Vault and the catalog now and then every interval, until ctx
// ends; while either is down it checks four times as often, so requests
// are served again soon after it is back. It returns at once.
func (d *Deps) Run(ctx context.Context) {
	go func() {
		for {
			d.Check(ctx)
			wait := d.cfg.Interval
			if d.anyDown() {
				wait /= 4
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

func (d *Deps) anyDown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vault.State == Down || d.catalog.State == Down
}

// Check checks Vault and the catalog once, each within half the interval,
// and records the verdicts. A check cut short by ctx gives no verdict.
func (d *Deps) Check(ctx context.Context) {
	check := func(name string, f func(context.Context) error) {
		cctx, cancel := context.WithTimeout(ctx, d.cfg.Interval/2)
		defer cancel()
		err := f(cctx)
		if ctx.Err() != nil {
			return // shutting down: no verdict
		}
		d.set(ctx, name, err)
	}
	var wg sync.WaitGroup
	if d.cfg.Vault != nil {
		wg.Go(func() { check("vault", d.cfg.Vault) })
	}
	wg.Go(func() { check("catalog", d.cfg.Catalog) })
	wg.Wait()
}

func (d *Deps) set(ctx context.Context, name string, err error) {
	now := d.cfg.Now()
	d.mu.Lock()
	dep := &d.catalog
	if name == "vault" {
		dep = &d.vault
	}
	was := dep.State
	dep.CheckedAt = now
	if err == nil {
		dep.State, dep.LastError, dep.failures = Up, "", 0
	} else {
		dep.failures++
		dep.LastError = OneLine(err.Error())
		if was != Up || dep.failures >= downAfter {
			dep.State = Down
		}
	}
	if dep.State != was {
		dep.Since = now
	}
	state, lastErr := dep.State, dep.LastError
	d.mu.Unlock()
	switch {
	case state == was:
	case state == Down:
		d.cfg.Log.Error(name+" down: refusing requests until it is back", "error", lastErr)
		d.cfg.Event(ctx, name+".down", name, "error", lastErr)
	case was == Down:
		d.cfg.Log.Info(name + " up again")
		d.cfg.Event(ctx, name+".up", name, "ok", "")
	}
}

// VaultDown returns why Vault was found down at the last check, or nil
// when it was not.
func (d *Deps) VaultDown() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vault.State != Down {
		return nil
	}
	return errors.New("the health probe found Vault down: " + d.vault.LastError)
}

// State returns the last verdicts on Vault and the catalog.
func (d *Deps) State() (vault, catalog Dependency) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vault, d.catalog
}
