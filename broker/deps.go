package broker

// Health of what dozod cannot work without: Vault, which holds every
// dataset key and every identity, and the catalog (health.Deps). While the
// probe finds Vault down, every authenticated request is refused with the
// one 503 of errors.go, so no request is served on a remembered identity
// (the token cache) while Vault is gone. GET /v1/health reports both, with
// the storage targets (ops.go).

import (
	"context"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/health"
)

// DefaultHealthInterval is how often Vault and the catalog are checked
// when Options set none (health.DefaultInterval).
const DefaultHealthInterval = health.DefaultInterval

// vaultHealthChecker is a KeyService that can say whether Vault can
// serve (*vault.Client: sys/health). Without one, Vault's state stays
// "unknown": requests are not refused on it, and dozod is never ready.
type vaultHealthChecker interface {
	Health(ctx context.Context) error
}

func (s *Server) initDeps(o Options) {
	cfg := health.DepsConfig{Interval: o.HealthInterval, Catalog: s.cat.Ping, Event: s.dozodEvent, Now: s.now, Log: s.log}
	if h, ok := s.keys.(vaultHealthChecker); ok {
		cfg.Vault = h.Health
	}
	s.deps = health.NewDeps(cfg)
}

// startDependencyProbe checks Vault and the catalog until ctx ends
// (health.Deps.Run).
func (s *Server) startDependencyProbe(ctx context.Context) { s.deps.Run(ctx) }

// vaultDown returns why Vault was found down at the last check, or nil
// when it was not.
func (s *Server) vaultDown() error { return s.deps.VaultDown() }

func apiDependency(d health.Dependency) *api.DependencyHealth {
	return &api.DependencyHealth{State: d.State, Since: d.Since.UTC(), CheckedAt: d.CheckedAt.UTC()}
}

// healthReport is GET /v1/health's answer: the last verdicts, and ready
// only when Vault and the catalog were both up at their last check (not
// before the first one).
func (s *Server) healthReport() api.Health {
	h := api.Health{Version: s.version}
	vault, catalog := s.deps.State()
	h.Vault, h.Catalog = apiDependency(vault), apiDependency(catalog)
	ts := &api.TargetsHealth{Total: len(s.targetIDs)}
	for _, st := range s.targetHealth.Status() {
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
	h.Ready = h.Vault.State == health.Up && h.Catalog.State == health.Up
	switch {
	case h.Vault.State == health.Down || h.Catalog.State == health.Down:
		h.Status = "unavailable"
	case ts.State != "up":
		h.Status = "degraded"
	default:
		h.Status = "ok"
	}
	return h
}
