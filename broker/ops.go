package broker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/internal/loopback"
	"github.com/dozo-vault/dozo/storage"
)

// opsState is the Server's target-health and metrics state (issue 5).
// Field names carry an ops prefix: the struct is embedded in Server next to
// scrubState, and promoted names must not collide.
type opsState struct {
	opsCfg     MetricsConfig
	opsHealth  *healthTracker
	opsMetrics *metricsRegistry
}

// MetricsConfig is the [metrics] section of dozod's config: who may read
// /metrics, and how often storage targets are probed.
type MetricsConfig struct {
	// TokenFile holds a bearer token that may read /metrics and nothing
	// else (for a Prometheus server, which should not hold an admin's
	// Vault token).
	TokenFile string `toml:"token_file"`
	// AllowLoopback lets requests that arrive on a loopback listener read
	// /metrics without a token. It has no effect on any other listener.
	AllowLoopback bool `toml:"allow_unauthenticated_loopback"`
	// ProbeInterval is how often every target is probed (default 5s).
	ProbeInterval time.Duration `toml:"probe_interval"`
	// ProbeTimeout bounds one probe (default 2s).
	ProbeTimeout time.Duration `toml:"probe_timeout"`

	token string // read from TokenFile by validate; never logged
}

const metricsConfigHelp = `  [metrics]           (GET /metrics and /v1/metrics; storage target health)
  token_file          DOZOD_METRICS_TOKEN_FILE   bearer token for scrapers, mode 0600; an
                                                 admin's token works too
  allow_unauthenticated_loopback                 false; true serves /metrics without a
                                                 token, but only on a loopback listener
  probe_interval      DOZOD_PROBE_INTERVAL       5s (target health probe, 1s..5m)
  probe_timeout       DOZOD_PROBE_TIMEOUT        2s (one probe; less than the interval)
`

// Defaults for target health probes.
const (
	DefaultProbeInterval = 5 * time.Second
	DefaultProbeTimeout  = 2 * time.Second
)

func (c *MetricsConfig) applyEnv(getenv func(string) string) error {
	if v := getenv("DOZOD_METRICS_TOKEN_FILE"); v != "" {
		c.TokenFile = v
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"DOZOD_PROBE_INTERVAL", &c.ProbeInterval}, {"DOZOD_PROBE_TIMEOUT", &c.ProbeTimeout}} {
		if v := getenv(d.name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			*d.dst = x
		}
	}
	return nil
}

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
	s.opsCfg = cfg
	s.opsHealth = newHealthTracker(s.targetIDs, s.now())
	s.opsMetrics = newMetricsRegistry(s.now())
	return nil
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
	go func() {
		t := time.NewTicker(s.opsCfg.ProbeInterval)
		defer t.Stop()
		for {
			s.probeTargets(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// ---- target health ----

// probeKey is a key no object is ever stored under: a Stat of it costs one
// HEAD request and answers "not found" from a healthy target.
const probeKey = "dozo/health-probe"

// healthTracker is what dozod knows about each target: up or down, since
// when, and the last error. A target is up until a probe or a request
// shows otherwise.
type healthTracker struct {
	mu sync.Mutex
	st map[string]*targetHealth
}

type targetHealth struct {
	up        bool
	since     time.Time // last change, or dozod's start
	lastProbe time.Time
	lastErr   string
	failures  uint64 // failed probes and request-path failures, in total
}

func newHealthTracker(ids []string, now time.Time) *healthTracker {
	h := &healthTracker{st: map[string]*targetHealth{}}
	for _, id := range ids {
		h.st[id] = &targetHealth{up: true, since: now}
	}
	return h
}

// targetUp reports whether a target was up at the last probe.
func (s *Server) targetUp(id string) bool {
	s.opsHealth.mu.Lock()
	defer s.opsHealth.mu.Unlock()
	th, ok := s.opsHealth.st[id]
	return ok && th.up
}

// probeTargets probes every target at once, each with its own timeout, and
// records the results.
func (s *Server) probeTargets(ctx context.Context) { s.probe(ctx, s.targetIDs) }

// probe probes the targets ids at once and records the results.
func (s *Server) probe(ctx context.Context, ids []string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		t := s.targets[id]
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, s.opsCfg.ProbeTimeout)
			defer cancel()
			_, err := t.Stat(pctx, probeKey)
			if ctx.Err() != nil {
				return // shutting down: no verdict
			}
			if errors.Is(err, storage.ErrNotFound) {
				err = nil
			}
			s.setTargetHealth(ctx, id, err, true)
		})
	}
	wg.Wait()
}

// noteTargetError records a failure seen on a request path (not "not
// found", not the caller going away), so uploads stop choosing the target
// before the next probe. Only a probe marks a target up again.
func (s *Server) noteTargetError(ctx context.Context, id string, err error) {
	if err == nil || errors.Is(err, storage.ErrNotFound) || ctx.Err() != nil {
		return
	}
	s.setTargetHealth(context.WithoutCancel(ctx), id, err, false)
}

func (s *Server) setTargetHealth(ctx context.Context, id string, err error, probe bool) {
	now := s.now()
	s.opsHealth.mu.Lock()
	th, ok := s.opsHealth.st[id]
	if !ok {
		s.opsHealth.mu.Unlock()
		return
	}
	was := th.up
	if probe {
		th.lastProbe = now
	}
	if err != nil {
		th.failures++
		th.lastErr = oneLine(err.Error())
		th.up = false
	} else {
		th.up = true
	}
	changed := was != th.up
	if changed {
		th.since = now
	}
	lastErr := th.lastErr
	s.opsHealth.mu.Unlock()
	if !changed {
		return
	}
	if err != nil {
		s.log.Warn("storage target down", "target", id, "error", lastErr)
		s.recordEvent(ctx, "dozod", "target.down", "target/"+id, "error", lastErr)
	} else {
		s.log.Info("storage target up", "target", id)
		s.recordEvent(ctx, "dozod", "target.up", "target/"+id, "ok", "")
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// TargetStatus is one row of GET /v1/targets.
type TargetStatus struct {
	ID        string    `json:"id"`
	Domain    string    `json:"domain"`
	Up        bool      `json:"up"`
	Since     time.Time `json:"since"`
	LastProbe time.Time `json:"last_probe,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Failures  uint64    `json:"failures"`
}

func (s *Server) targetStatus() []TargetStatus {
	s.opsHealth.mu.Lock()
	defer s.opsHealth.mu.Unlock()
	out := make([]TargetStatus, 0, len(s.targetIDs))
	for _, id := range s.targetIDs {
		th := s.opsHealth.st[id]
		out = append(out, TargetStatus{ID: id, Domain: s.targets[id].Domain(), Up: th.up, Since: th.since,
			LastProbe: th.lastProbe, LastError: th.lastErr, Failures: th.failures})
	}
	return out
}

// listTargets shows operators every target's health. Endpoints and errors
// describe the storage layout, so only admins see them.
func (s *Server) listTargets(q *request) error {
	q.object = "targets"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	return q.reply(http.StatusOK, s.targetStatus())
}

// uploadPlacement returns the targets a new upload places its pieces on:
// all of them when all are up; the healthy ones when some are down and
// those still hold K+M pieces with at most M per failure domain; otherwise
// a 503 that says which targets are down and what the layout needs, so the
// client neither hangs on a dead target nor weakens the failure-domain
// rule.
func (s *Server) uploadPlacement(ctx context.Context, l storage.Layout) ([]storage.Target, error) {
	all := s.allTargets()
	var healthy []storage.Target
	var down []string
	for attempt := 0; ; attempt++ {
		healthy = storage.FilterTargets(all, s.targetUp)
		if len(healthy) == len(all) {
			if _, err := storage.Place(all, l, 0); err != nil {
				return nil, internal("placing pieces", err)
			}
			return all, nil
		}
		if len(healthy) > 0 {
			if _, err := storage.Place(healthy, l, 0); err == nil {
				return healthy, nil
			}
		}
		down = down[:0]
		for _, t := range all {
			if !s.targetUp(t.ID()) {
				down = append(down, t.ID())
			}
		}
		if attempt > 0 {
			break
		}
		// Before refusing, ask the down targets again: one may have come
		// back since the last probe, and a refusal should be current.
		s.probe(ctx, down)
	}
	limit := l.M
	if limit == 0 {
		limit = l.Shards()
	}
	perDomain := map[string]int{}
	for _, t := range healthy {
		perDomain[t.Domain()]++
	}
	capacity := 0
	for _, n := range perDomain {
		capacity += min(n, limit)
	}
	return nil, &httpError{
		status: http.StatusServiceUnavailable,
		msg: fmt.Sprintf("only %d of %d storage targets are up (down: %s); a %d+%d upload needs %d targets with at most %d pieces per failure domain, "+
			"and the healthy targets in %d domain(s) allow only %d — try again later",
			len(healthy), len(all), strings.Join(down, ", "), l.K, l.M, l.Shards(), limit, len(perDomain), capacity),
		hint: "retry when the storage targets are back (operators: GET /v1/targets shows their health)",
	}
}

// ---- metrics ----

// durationBuckets are the request-duration histogram's upper bounds, in
// seconds: dozod's calls take milliseconds unless Vault or storage is slow.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// maxSeries bounds the label sets of each request metric. Actions are
// route constants and statuses dozod's own, so the bound is never reached
// in practice; it is there so that no future route can let callers grow
// dozod's memory with made-up label values.
const maxSeries = 2000

type reqKey struct {
	action string
	status int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

// metricsRegistry holds the counters dozod exposes. Label values come only
// from fixed sets (route actions, HTTP statuses dozod sets, target ids from
// the config, PUT/GET): never from request input.
type metricsRegistry struct {
	started time.Time

	mu        sync.Mutex
	requests  map[reqKey]uint64
	durations map[string]*histogram
	presigns  map[string]uint64 // by method
	presigned map[string]uint64 // bytes, by method
	uploads   uint64            // begun (new sessions)
	completed uint64
	fetches   uint64
}

func newMetricsRegistry(now time.Time) *metricsRegistry {
	return &metricsRegistry{
		started: now, requests: map[reqKey]uint64{}, durations: map[string]*histogram{},
		presigns: map[string]uint64{}, presigned: map[string]uint64{},
	}
}

// observe records one finished request for the metrics.
func (s *Server) observe(q *request, took time.Duration) {
	m := s.opsMetrics
	if m == nil {
		return
	}
	action := q.action
	if action == "" {
		action = "health"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := reqKey{action, q.status}
	if _, ok := m.requests[k]; !ok && len(m.requests) >= maxSeries {
		k = reqKey{"other", q.status}
	}
	m.requests[k]++
	h := m.durations[k.action]
	if h == nil {
		if len(m.durations) >= maxSeries {
			return
		}
		h = &histogram{counts: make([]uint64, len(durationBuckets)+1)}
		m.durations[k.action] = h
	}
	sec := took.Seconds()
	i, _ := slices.BinarySearch(durationBuckets, sec)
	h.counts[i]++
	h.sum += sec
	h.n++
	switch {
	case action == "upload.begin" && q.status == http.StatusCreated:
		m.uploads++
	case action == "upload.complete" && q.status == http.StatusOK:
		m.completed++
	case action == "file.fetch" && q.status == http.StatusOK:
		m.fetches++
	}
}

// countPresign records one presigned URL for size bytes (a piece).
func (s *Server) countPresign(method string, size int64) {
	if method != http.MethodPut && method != http.MethodGet {
		method = "other"
	}
	m := s.opsMetrics
	m.mu.Lock()
	m.presigns[method]++
	if size > 0 {
		m.presigned[method] += uint64(size)
	}
	m.mu.Unlock()
}

// metricsAuth admits the [metrics] scrape token, an admin's token, or, when
// the config allows it, a request that reached a loopback listener.
// The scrape token is compared in constant time and never sent to Vault.
func (s *Server) metricsAuth(q *request) error {
	tok, ok := bearer(q.r)
	if ok && s.opsCfg.token != "" {
		a, b := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(s.opsCfg.token))
		if subtle.ConstantTimeCompare(a[:], b[:]) == 1 {
			q.object = "metrics"
			return nil
		}
	}
	if !ok && s.opsCfg.AllowLoopback && onLoopback(q.r) {
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

func (s *Server) metrics(q *request) error {
	q.object = "metrics"
	if err := s.metricsAuth(q); err != nil {
		return err
	}
	var w promWriter
	s.writeMetrics(q.ctx, &w)
	var b bytes.Buffer
	w.write(&b)
	q.status = http.StatusOK
	q.w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	q.w.Header().Set("Cache-Control", "no-store")
	q.w.WriteHeader(http.StatusOK)
	_, err := q.w.Write(b.Bytes())
	return err
}

// writeMetrics renders every metric in the Prometheus text format.
func (s *Server) writeMetrics(ctx context.Context, w *promWriter) {
	m := s.opsMetrics
	w.family("dozo_build_info", "gauge", "dozod's version.")
	w.sample("dozo_build_info", 1, "version", s.version)
	w.family("dozo_start_time_seconds", "gauge", "When dozod started, Unix time.")
	w.sample("dozo_start_time_seconds", unix(m.started))
	w.family("dozo_goroutines", "gauge", "Goroutines in dozod.")
	w.sample("dozo_goroutines", float64(runtime.NumGoroutine()))

	m.mu.Lock()
	reqs := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		reqs = append(reqs, k)
	}
	slices.SortFunc(reqs, func(a, b reqKey) int {
		return cmp.Or(cmp.Compare(a.action, b.action), cmp.Compare(a.status, b.status))
	})
	w.family("dozo_http_requests_total", "counter", "HTTP requests by route action and status.")
	for _, k := range reqs {
		w.sample("dozo_http_requests_total", float64(m.requests[k]), "action", k.action, "status", strconv.Itoa(k.status))
	}
	actions := make([]string, 0, len(m.durations))
	for a := range m.durations {
		actions = append(actions, a)
	}
	slices.Sort(actions)
	w.family("dozo_http_request_duration_seconds", "histogram", "HTTP request durations by route action.")
	for _, a := range actions {
		h := m.durations[a]
		var cum uint64
		for i, ub := range durationBuckets {
			cum += h.counts[i]
			w.add("dozo_http_request_duration_seconds", "dozo_http_request_duration_seconds_bucket", float64(cum), "action", a, "le", strconv.FormatFloat(ub, 'g', -1, 64))
		}
		cum += h.counts[len(durationBuckets)]
		w.add("dozo_http_request_duration_seconds", "dozo_http_request_duration_seconds_bucket", float64(cum), "action", a, "le", "+Inf")
		w.add("dozo_http_request_duration_seconds", "dozo_http_request_duration_seconds_sum", h.sum, "action", a)
		w.add("dozo_http_request_duration_seconds", "dozo_http_request_duration_seconds_count", float64(h.n), "action", a)
	}
	w.family("dozo_presigned_urls_total", "counter", "Presigned storage URLs issued, by HTTP method.")
	w.family("dozo_presigned_bytes_total", "counter", "Bytes of the pieces presigned URLs were issued for, by HTTP method.")
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		w.sample("dozo_presigned_urls_total", float64(m.presigns[method]), "method", method)
		w.sample("dozo_presigned_bytes_total", float64(m.presigned[method]), "method", method)
	}
	w.family("dozo_uploads_started_total", "counter", "Upload sessions begun (resumes not counted).")
	w.sample("dozo_uploads_started_total", float64(m.uploads))
	w.family("dozo_uploads_completed_total", "counter", "Uploads completed (files made available).")
	w.sample("dozo_uploads_completed_total", float64(m.completed))
	w.family("dozo_fetches_total", "counter", "Fetches granted (manifest and header sent).")
	w.sample("dozo_fetches_total", float64(m.fetches))
	m.mu.Unlock()

	w.family("dozo_target_up", "gauge", "1 if the storage target answered its last probe.")
	w.family("dozo_target_last_change_seconds", "gauge", "When the target last went up or down (or dozod started), Unix time.")
	w.family("dozo_target_failures_total", "counter", "Failed probes and request-path failures of the target.")
	for _, ts := range s.targetStatus() {
		up := 0.0
		if ts.Up {
			up = 1
		}
		w.sample("dozo_target_up", up, "target", ts.ID, "domain", ts.Domain)
		w.sample("dozo_target_last_change_seconds", unix(ts.Since), "target", ts.ID, "domain", ts.Domain)
		w.sample("dozo_target_failures_total", float64(ts.Failures), "target", ts.ID, "domain", ts.Domain)
	}

	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stats, err := s.cat.FileStats(cctx)
	w.family("dozo_catalog_up", "gauge", "1 if the catalog answered this scrape.")
	if err != nil {
		s.log.Warn("metrics: reading catalog statistics failed", "error", err)
		w.sample("dozo_catalog_up", 0)
	} else {
		w.sample("dozo_catalog_up", 1)
		w.family("dozo_catalog_datasets", "gauge", "Datasets in the catalog.")
		w.sample("dozo_catalog_datasets", float64(stats.Datasets))
		w.family("dozo_catalog_files", "gauge", "Files in the catalog by state.")
		w.family("dozo_catalog_file_bytes", "gauge", "Plaintext bytes of the catalog's files by state.")
		for _, st := range stats.States {
			w.sample("dozo_catalog_files", float64(st.Files), "state", st.State)
			w.sample("dozo_catalog_file_bytes", float64(st.Bytes), "state", st.State)
		}
	}

	// Scrub progress and findings. Labels come from fixed sets only (finding
	// kinds), never from dataset or file ids.
	sc := s.scrubSnapshot()
	running := 0.0
	if sc.Running {
		running = 1
	}
	w.family("dozo_scrub_running", "gauge", "1 while a scrub runs.")
	w.sample("dozo_scrub_running", running)
	w.family("dozo_scrub_files_total", "gauge", "Files the running scrub covers.")
	w.sample("dozo_scrub_files_total", float64(sc.FilesTotal))
	w.family("dozo_scrub_files_done", "gauge", "Files the running scrub has finished.")
	w.sample("dozo_scrub_files_done", float64(sc.FilesDone))
	w.family("dozo_scrub_runs_completed_total", "counter", "Scrub runs ended since dozod started.")
	w.sample("dozo_scrub_runs_completed_total", float64(sc.RunsCompleted))
	w.family("dozo_scrub_pieces_checked_total", "counter", "Pieces checked by scrubs since dozod started.")
	w.sample("dozo_scrub_pieces_checked_total", float64(sc.PiecesCheckedTotal))
	w.family("dozo_scrub_bytes_checked_total", "counter", "Piece bytes read by deep scrubs since dozod started.")
	w.sample("dozo_scrub_bytes_checked_total", float64(sc.BytesCheckedTotal))
	w.family("dozo_scrub_findings_total", "counter", "Bad pieces found by scrubs, by kind.")
	for _, kind := range []storage.FindingKind{storage.FindingMissing, storage.FindingSize, storage.FindingHash, storage.FindingUnreachable} {
		w.sample("dozo_scrub_findings_total", float64(sc.FindingsTotal[string(kind)]), "kind", string(kind))
	}
	w.family("dozo_scrub_repaired_total", "counter", "Pieces rebuilt and rewritten by repair scrubs.")
	w.sample("dozo_scrub_repaired_total", float64(sc.RepairedTotal))
	w.family("dozo_scrub_unrecoverable_total", "counter", "Segments found with more than m bad pieces.")
	w.sample("dozo_scrub_unrecoverable_total", float64(sc.UnrecoverableTotal))
	w.family("dozo_scrub_last_end_seconds", "gauge", "When the last scrub run ended, Unix time (0: none yet).")
	w.sample("dozo_scrub_last_end_seconds", unix(sc.LastRunEnd))
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// promWriter writes the Prometheus text exposition format (version 0.0.4)
// by hand. Families are declared first and their samples may be added in
// any order; write emits each family's HELP and TYPE lines followed by all
// of its samples, as the format requires.
type promWriter struct {
	order []string
	fams  map[string]*promFamily
}

type promFamily struct {
	header  string
	samples []string
}

func (w *promWriter) family(name, typ, help string) {
	if w.fams == nil {
		w.fams = map[string]*promFamily{}
	}
	if _, ok := w.fams[name]; ok {
		return
	}
	w.order = append(w.order, name)
	w.fams[name] = &promFamily{header: fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)}
}

// sample adds a sample of the family of the same name.
func (w *promWriter) sample(name string, v float64, labels ...string) {
	w.add(name, name, v, labels...)
}

// add adds a sample named name (e.g. a histogram's _bucket) to family.
func (w *promWriter) add(family, name string, v float64, labels ...string) {
	f, ok := w.fams[family]
	if !ok {
		panic("metrics: sample of undeclared family " + family)
	}
	f.samples = append(f.samples, formatSample(name, v, labels))
}

func (w *promWriter) write(b *bytes.Buffer) {
	for _, name := range w.order {
		f := w.fams[name]
		b.WriteString(f.header)
		for _, s := range f.samples {
			b.WriteString(s)
		}
	}
}

func formatSample(name string, v float64, labels []string) string {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		b.WriteString(strconv.FormatInt(int64(v), 10)) // counters read as integers
	} else {
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	b.WriteByte('\n')
	return b.String()
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
