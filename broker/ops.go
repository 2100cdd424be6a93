package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/dozo-vault/dozo/health"
	"github.com/dozo-vault/dozo/internal/loopback"
	"github.com/dozo-vault/dozo/metrics"
	"github.com/dozo-vault/dozo/storage"
)

// MetricsConfig and the probe defaults are dozod's [metrics] config; the
// health and metrics packages do the work.

// MetricsConfig is the [metrics] section of dozod's config: who may read
// /metrics, and how often storage targets are probed.
type MetricsConfig struct {
	// TokenFile holds a bearer token that may read /metrics and nothing
	// else (for a Prometheus server, which should not hold an admin's
	// Vault token).
	TokenFile string `toml:"token_file" env:"DOZOD_METRICS_TOKEN_FILE" help:"bearer token for scrapers, mode 0600; an admin's token works too"`
	// AllowLoopback lets requests that arrive on a loopback listener read
	// /metrics without a token. It has no effect on any other listener.
	AllowLoopback bool `toml:"allow_unauthenticated_loopback" help:"false; true serves /metrics without a token, but only on a loopback listener"`
	// ProbeInterval is how often every target is probed (default 5s).
	ProbeInterval time.Duration `toml:"probe_interval" env:"DOZOD_PROBE_INTERVAL" help:"5s (target health probe, 1s..5m)"`
	// ProbeTimeout bounds one probe (default 2s).
	ProbeTimeout time.Duration `toml:"probe_timeout" env:"DOZOD_PROBE_TIMEOUT" help:"2s (one probe; less than the interval)"`

	token string // read from TokenFile by validate; never logged
}

// Defaults for target health probes.
const (
	DefaultProbeInterval = 5 * time.Second
	DefaultProbeTimeout  = 2 * time.Second
)

// validate fills defaults, checks ranges and reads the scrape token. The
// token file must be mode 0600 or stricter (ReadSecretFile).
func (c *MetricsConfig) validate() error {
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = min(DefaultProbeTimeout, c.ProbeInterval/2)
	}
	if c.ProbeInterval < time.Second || c.ProbeInterval > 5*time.Minute {
		return fmt.Errorf("metrics.probe_interval %v: must be 1s..5m", c.ProbeInterval)
	}
	if c.ProbeTimeout <= 0 || c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("metrics.probe_timeout %v: must be positive and less than probe_interval (%v)", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.TokenFile != "" {
		tok, err := ReadSecretFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("metrics token file: %w", err)
		}
		if len(tok) < 16 {
			return fmt.Errorf("metrics token file %s: the token is shorter than 16 characters", c.TokenFile)
		}
		if _, ok := bearer(&http.Request{Header: http.Header{"Authorization": {"Bearer " + tok}}}); !ok {
			return fmt.Errorf("metrics token file %s: the token must be printable ASCII without spaces, at most 1024 bytes", c.TokenFile)
		}
		c.token = tok
	}
	return nil
}

func (s *Server) initOps(o Options) error {
	cfg := o.Metrics
	if cfg.ProbeInterval == 0 || cfg.ProbeTimeout == 0 || (cfg.TokenFile != "" && cfg.token == "") {
		// Options built in code (tests, embedders) may skip LoadConfig.
		if err := cfg.validate(); err != nil {
			return err
		}
	}
	s.metricsCfg = cfg
	s.targetHealth = health.NewTargets(health.TargetsConfig{
		Targets: s.allTargets(), Timeout: cfg.ProbeTimeout, Event: s.dozodEvent, Now: s.now, Log: s.log,
	})
	s.metricsReg = metrics.New(metrics.Sources{
		Version: s.version, Started: s.now(), Targets: s.targetHealth.Status,
		Catalog: s.cat.FileStats, Scrub: s.scrubMetrics, Log: s.log,
	})
	return nil
}

// dozodEvent records an audit event of dozod's own (health.EventFunc).
func (s *Server) dozodEvent(ctx context.Context, action, object, result, detail string) {
	s.recordEvent(ctx, "dozod", action, object, result, detail)
}

// health is GET /v1/health, which needs no token: liveness, and the state
// of Vault, the catalog and the storage targets at their last check
// (deps.go). With ?ready=1 it is a readiness check for a load balancer:
// 503 unless Vault and the catalog are up.
func (s *Server) health(q *request) error {
	ready, err := boolQuery(q, "ready")
	if err != nil {
		return err
	}
	h := s.healthReport()
	if ready && !h.Ready {
		return q.reply(http.StatusServiceUnavailable, h)
	}
	return q.reply(http.StatusOK, h)
}

// startOps starts target health probes; they stop when ctx ends.
func (s *Server) startOps(ctx context.Context) {
	s.targetHealth.Run(ctx, s.metricsCfg.ProbeInterval)
}

// noteTargetError tells target health of a failure seen on a request path
// (health.Targets.NoteError).
func (s *Server) noteTargetError(ctx context.Context, id string, err error) {
	s.targetHealth.NoteError(ctx, id, err)
}

// TargetStatus is one row of GET /v1/targets.
type TargetStatus = health.TargetStatus

// listTargets shows operators every target's health. Endpoints and errors
// describe the storage layout, so only admins see them.
func (s *Server) listTargets(q *request) error {
	q.object = "targets"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	return q.reply(http.StatusOK, s.targetHealth.Status())
}

// uploadPlacement returns the targets a new upload places its pieces on
// (health.Targets.Placement), or a 503 that says which targets are down
// and what the layout needs.
func (s *Server) uploadPlacement(ctx context.Context, l storage.Layout) ([]storage.Target, error) {
	targets, err := s.targetHealth.Placement(ctx, l)
	var pe *health.PlacementError
	switch {
	case errors.As(err, &pe):
		return nil, &httpError{status: http.StatusServiceUnavailable, msg: pe.Error(),
			hint: "retry when the storage targets are back (operators: GET /v1/targets shows their health)"}
	case err != nil:
		return nil, internal("placing pieces", err)
	}
	return targets, nil
}

// ---- metrics ----

// observe records one finished request for the metrics.
func (s *Server) observe(q *request, took time.Duration) {
	if s.metricsReg != nil {
		s.metricsReg.ObserveRequest(q.action, q.status, took)
	}
}

// countPresign records one presigned URL for size bytes (a piece).
func (s *Server) countPresign(method string, size int64) { s.metricsReg.CountPresign(method, size) }

// scrubMetrics is the scrubber's state as the metrics show it.
func (s *Server) scrubMetrics() metrics.Scrub {
	sc := s.scrubSnapshot()
	return metrics.Scrub{
		Running: sc.Running, FilesTotal: sc.FilesTotal, FilesDone: sc.FilesDone,
		RunsCompleted: sc.RunsCompleted, PiecesCheckedTotal: sc.PiecesCheckedTotal, BytesCheckedTotal: sc.BytesCheckedTotal,
		FindingsTotal: sc.FindingsTotal, RepairedTotal: sc.RepairedTotal, UnrecoverableTotal: sc.UnrecoverableTotal,
		LastRunEnd: sc.LastRunEnd,
	}
}

// metricsAuth admits the [metrics] scrape token, an admin's token, or, when
// the config allows it, a request that reached a loopback listener.
// The scrape token is compared in constant time and never sent to Vault.
func (s *Server) metricsAuth(q *request) error {
	tok, ok := bearer(q.r)
	if ok && s.metricsCfg.token != "" {
		a, b := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(s.metricsCfg.token))
		if subtle.ConstantTimeCompare(a[:], b[:]) == 1 {
			q.object = "metrics"
			return nil
		}
	}
	if !ok && s.metricsCfg.AllowLoopback && onLoopback(q.r) {
		return nil
	}
	if !ok {
		return &httpError{status: http.StatusUnauthorized, msg: "metrics need a bearer token: the [metrics] scrape token or an admin's",
			hint: "configure your scraper with metrics.token_file's token (authorization: bearer)"}
	}
	u, err := s.authenticate(q.r)
	if err != nil {
		return err
	}
	q.user = u
	return s.requireAdmin(q)
}

// onLoopback reports whether the request arrived on a loopback address of
// this host (the listener's, not the client's claim).
func onLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	return err == nil && loopback.Host(host)
}

// metrics is GET /metrics and /v1/metrics: every metric, for a scraper the
// [metrics] config admits.
func (s *Server) metrics(q *request) error {
	q.object = "metrics"
	if err := s.metricsAuth(q); err != nil {
		return err
	}
	q.status = http.StatusOK
	q.w.Header().Set("Cache-Control", "no-store")
	s.metricsReg.ServeHTTP(q.w, q.r)
	return nil
}
