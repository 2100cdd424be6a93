package broker

// Health of what dozod cannot work without: Vault, which holds every
// dataset key and every identity, and the catalog. A background probe
// checks both every health interval; while it finds Vault down, every
// authenticated request is refused with the one 503 of errors.go, so no
// request is served on a remembered identity (the token cache) while Vault
// is gone. GET /v1/health reports both, with the storage targets (ops.go).

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// DefaultHealthInterval is how often Vault and the catalog are checked
// when Options set none. A check times out after half the interval and a
// dependency that was up is taken as down after downAfter (2) failed
// checks in a row, so a Vault that stops answering is seen down within 2.5
// intervals; while it is down it is checked every quarter interval, so it
// is seen up again within that.
const DefaultHealthInterval = 2 * time.Second

// vaultHealthChecker is a KeyService that can say whether Vault can
// serve (*vault.Client: sys/health). Without one, Vault's state stays
// "unknown": requests are not refused on it, and dozod is never ready.
type vaultHealthChecker interface {
	Health(ctx context.Context) error
}

// Dependency states.
const (
	depUnknown = "unknown"
	depUp      = "up"
	depDown    = "down"
)

type depState struct {
	state     string
	since     time.Time
	checkedAt time.Time
	lastErr   string
	failures  int // failed checks in a row
}

// downAfter is how many checks in a row must fail before a dependency that
// was up is taken as down: one slow answer on a loaded machine must not
// make dozod refuse every request.
const downAfter = 2

// depsState is the last verdict of the dependency probe.
type depsState struct {
	interval time.Duration
	mu       sync.Mutex
	vault    depState
	catalog  depState
}

func (s *Server) initDeps(o Options) {
	s.deps.interval = o.HealthInterval
	if s.deps.interval <= 0 {
		s.deps.interval = DefaultHealthInterval
	}
	now := s.now()
	s.deps.vault = depState{state: depUnknown, since: now}
	s.deps.catalog = depState{state: depUnknown, since: now}
}

// startDependencyProbe checks Vault and the catalog now and then every
// interval, until ctx ends. While either is down it checks four times as
// often, so requests are served again soon after it is back.
func (s *Server) startDependencyProbe(ctx context.Context) {
	go func() {
		for {
			s.checkDependencies(ctx)
			wait := s.deps.interval
			if s.dependencyDown() {
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

func (s *Server) dependencyDown() bool {
	s.deps.mu.Lock()
	defer s.deps.mu.Unlock()
	return s.deps.vault.state == depDown || s.deps.catalog.state == depDown
}

// checkDependencies checks Vault and the catalog once, each within half the
// interval, and records the verdicts.
func (s *Server) checkDependencies(ctx context.Context) {
	check := func(name string, f func(context.Context) error) {
		cctx, cancel := context.WithTimeout(ctx, s.deps.interval/2)
		defer cancel()
		err := f(cctx)
		if ctx.Err() != nil {
			return // shutting down: no verdict
		}
		s.setDependency(ctx, name, err)
	}
	var wg sync.WaitGroup
	if h, ok := s.keys.(vaultHealthChecker); ok {
		wg.Go(func() { check("vault", h.Health) })
	}
	wg.Go(func() { check("catalog", s.cat.Ping) })
	wg.Wait()
}

func (s *Server) setDependency(ctx context.Context, name string, err error) {
	now := s.now()
	s.deps.mu.Lock()
	d := &s.deps.catalog
	if name == "vault" {
		d = &s.deps.vault
	}
	was := d.state
	d.checkedAt = now
	if err == nil {
		d.state, d.lastErr, d.failures = depUp, "", 0
	} else {
		d.failures++
		d.lastErr = oneLine(err.Error())
		if was != depUp || d.failures >= downAfter {
			d.state = depDown
		}
	}
	if d.state != was {
		d.since = now
	}
	state, lastErr := d.state, d.lastErr
	s.deps.mu.Unlock()
	switch {
	case state == was:
	case state == depDown:
		s.log.Error(name+" down: refusing requests until it is back", "error", lastErr)
		s.recordEvent(ctx, "dozod", name+".down", name, "error", lastErr)
	case was == depDown:
		s.log.Info(name + " up again")
		s.recordEvent(ctx, "dozod", name+".up", name, "ok", "")
	}
}

// vaultDown returns why Vault was found down at the last check, or nil
// when it was not.
func (s *Server) vaultDown() error {
	s.deps.mu.Lock()
	defer s.deps.mu.Unlock()
	if s.deps.vault.state != depDown {
		return nil
	}
	return errors.New("the health probe found Vault down: " + s.deps.vault.lastErr)
}

func apiDependency(d depState) *api.DependencyHealth {
	return &api.DependencyHealth{State: d.state, Since: d.since.UTC(), CheckedAt: d.checkedAt.UTC()}
}

// healthReport is GET /v1/health's answer: the last verdicts, and ready
// only when Vault and the catalog were both up at their last check (not
// before the first one).
func (s *Server) healthReport() api.Health {
	h := api.Health{Version: s.version}
	s.deps.mu.Lock()
	h.Vault, h.Catalog = apiDependency(s.deps.vault), apiDependency(s.deps.catalog)
	s.deps.mu.Unlock()
	ts := &api.TargetsHealth{Total: len(s.targetIDs)}
	for _, st := range s.targetStatus() {
		if st.Up {
			ts.Up++
		}
		if st.LastProbe.After(ts.CheckedAt) {
			ts.CheckedAt = st.LastProbe.UTC()
		}
	}
	switch ts.Up {
	case ts.Total:
		ts.State = "up"
	case 0:
		ts.State = "down"
	default:
		ts.State = "degraded"
	}
	h.Targets = ts
	h.Ready = h.Vault.State == depUp && h.Catalog.State == depUp
	switch {
	case h.Vault.State == depDown || h.Catalog.State == depDown:
		h.Status = "unavailable"
	case ts.State != "up":
		h.Status = "degraded"
	default:
		h.Status = "ok"
	}
	return h
}
