// Package metrics is dozod's Prometheus metrics: counters of requests,
// presigned URLs and transfers kept as requests happen, and values read at
// scrape time from the catalog, target health and the scrubber.
//
// Label values come only from fixed sets (route actions, HTTP statuses
// dozod sets, target ids from the config, PUT/GET, file states, finding
// kinds): never from request input.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/health"
)

// Sources are where the values read at scrape time come from. Any func may
// be nil: its metrics are then left out.
type Sources struct {
	Version string
	Started time.Time
	Targets func() []health.TargetStatus
	Catalog func(ctx context.Context) (*catalog.Stats, error)
	Scrub   func() Scrub
	Log     *slog.Logger // nil: slog.Default()
}

// Scrub is the scrubber's progress and counters at a scrape.
type Scrub struct {
	Running            bool
	FilesTotal         int
	FilesDone          int
	RunsCompleted      int64
	PiecesCheckedTotal int64
	BytesCheckedTotal  int64
	FindingsTotal      map[string]int64 // by finding kind
	RepairedTotal      int64
	UnrecoverableTotal int64
	LastRunEnd         time.Time
}

// FindingKinds are the label values of dozo_scrub_findings_total, each
// always present.
var FindingKinds = []string{"missing", "size", "hash", "unreachable"}

// DurationBuckets are the request-duration histogram's upper bounds, in
// seconds: dozod's calls take milliseconds unless Vault or storage is slow.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// maxSeries bounds the label sets of each request metric. Actions are
// route constants and statuses dozod's own, so the bound is never reached
// in practice; it is there so that no future route can let callers grow
// dozod's memory with made-up label values.
const maxSeries = 2000

// Registry holds dozod's metrics. Safe for concurrent use.
type Registry struct {
	src Sources
	reg *prometheus.Registry

	requests  *prometheus.CounterVec   // action, status
	durations *prometheus.HistogramVec // action
	presigns  *prometheus.CounterVec   // method
	presigned *prometheus.CounterVec   // method
	uploads   prometheus.Counter       // begun (new sessions)
	completed prometheus.Counter
	fetches   prometheus.Counter

	mu       sync.Mutex // guards the two series sets
	reqSeen  map[reqKey]bool
	actsSeen map[string]bool
}

type reqKey struct {
	action string
	status int
}

// New returns a Registry with every counter at zero.
func New(src Sources) *Registry {
	if src.Log == nil {
		src.Log = slog.Default()
	}
	r := &Registry{
		src: src, reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dozo_http_requests_total",
			Help: "HTTP requests by route action and status."}, []string{"action", "status"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dozo_http_request_duration_seconds",
			Help: "HTTP request durations by route action.", Buckets: DurationBuckets}, []string{"action"}),
		presigns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dozo_presigned_urls_total",
			Help: "Presigned storage URLs issued, by HTTP method."}, []string{"method"}),
		presigned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dozo_presigned_bytes_total",
			Help: "Bytes of the pieces presigned URLs were issued for, by HTTP method."}, []string{"method"}),
		uploads: prometheus.NewCounter(prometheus.CounterOpts{Name: "dozo_uploads_started_total",
			Help: "Upload sessions begun (resumes not counted)."}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{Name: "dozo_uploads_completed_total",
			Help: "Uploads completed (files made available)."}),
		fetches: prometheus.NewCounter(prometheus.CounterOpts{Name: "dozo_fetches_total",
			Help: "Fetches granted (manifest and header sent)."}),
		reqSeen: map[reqKey]bool{}, actsSeen: map[string]bool{},
	}
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		r.presigns.WithLabelValues(m)
		r.presigned.WithLabelValues(m)
	}
	r.reg.MustRegister(r.requests, r.durations, r.presigns, r.presigned, r.uploads, r.completed, r.fetches)
	return r
}

// ObserveRequest records one finished request: its route action ("" is
// the health check), the status sent and how long it took. Past maxSeries
// label sets, new actions count as "other" and get no histogram.
func (r *Registry) ObserveRequest(action string, status int, took time.Duration) {
	if action == "" {
		action = "health"
	}
	k := reqKey{action, status}
	r.mu.Lock()
	if !r.reqSeen[k] && len(r.reqSeen) >= maxSeries {
		k.action = "other"
	}
	r.reqSeen[k] = true
	timed := r.actsSeen[k.action] || len(r.actsSeen) < maxSeries
	if timed {
		r.actsSeen[k.action] = true
	}
	r.mu.Unlock()
	r.requests.WithLabelValues(k.action, strconv.Itoa(status)).Inc()
	if !timed {
		return
	}
	r.durations.WithLabelValues(k.action).Observe(took.Seconds())
	switch {
	case action == "upload.begin" && status == http.StatusCreated:
		r.uploads.Inc()
	case action == "upload.complete" && status == http.StatusOK:
		r.completed.Inc()
	case action == "file.fetch" && status == http.StatusOK:
		r.fetches.Inc()
	}
}

// CountPresign records one presigned URL of method (PUT or GET; others
// are not counted) for a piece of size bytes.
func (r *Registry) CountPresign(method string, size int64) {
	if method != http.MethodPut && method != http.MethodGet {
		return
	}
	r.presigns.WithLabelValues(method).Inc()
	if size > 0 {
		r.presigned.WithLabelValues(method).Add(float64(size))
	}
}

// ServeHTTP writes every metric in a format the scraper accepts (the
// Prometheus text format unless it asks for another). It does no
// authorisation: the caller does. Values read at scrape time are read
// within the request's context.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	scrape := prometheus.NewRegistry()
	scrape.MustRegister(&scrapeCollector{ctx: req.Context(), src: &r.src})
	promhttp.HandlerFor(prometheus.Gatherers{r.reg, scrape}, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, req)
}
