package broker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/dozo-vault/dozo/audit"
)

// LimitsConfig is the [limits] section of dozod's config: how many refused
// requests without a valid identity (bad or missing token, unknown path,
// refused scrape) one client address may make, and how repeated refusals
// are recorded. Requests from a caller dozod has identified are never
// limited by it.
type LimitsConfig struct {
	// RefusalsPerMinute is the steady rate of such refusals one source may
	// cause; RefusalBurst how many it may cause at once. Past them it is
	// answered 429 with Retry-After, before its token is looked up.
	RefusalsPerMinute int `toml:"refusals_per_minute" env:"DOZOD_LIMITS_REFUSALS_PER_MINUTE" help:"60 (then 429 with Retry-After)"`
	RefusalBurst      int `toml:"refusal_burst" env:"DOZOD_LIMITS_REFUSAL_BURST" help:"60 (refusals allowed at once)"`
	// MaxSources bounds the sources tracked at once; past it, new sources
	// share one budget, so many addresses cannot grow dozod's memory.
	MaxSources int `toml:"max_sources" env:"DOZOD_LIMITS_MAX_SOURCES" help:"10000 (addresses tracked; IPv6 by /64)"`
	// AggregateWindow: within it, the first refusal of a kind (action and
	// status) from a source is recorded as usual, the rest are counted and
	// recorded as one aggregate record when it closes.
	AggregateWindow time.Duration `toml:"aggregate_window" env:"DOZOD_LIMITS_AGGREGATE_WINDOW" help:"1m (repeats recorded as one aggregate)"`
}

// Defaults of the [limits] section.
const (
	DefaultRefusalsPerMinute = 60
	DefaultRefusalBurst      = 60
	DefaultMaxSources        = 10000
	DefaultAggregateWindow   = time.Minute
)

// validate fills defaults and checks ranges.
func (c *LimitsConfig) validate() error {
	if c.RefusalsPerMinute == 0 {
		c.RefusalsPerMinute = DefaultRefusalsPerMinute
	}
	if c.RefusalBurst == 0 {
		c.RefusalBurst = DefaultRefusalBurst
	}
	if c.MaxSources == 0 {
		c.MaxSources = DefaultMaxSources
	}
	if c.AggregateWindow == 0 {
		c.AggregateWindow = DefaultAggregateWindow
	}
	switch {
	case c.RefusalsPerMinute < 1 || c.RefusalsPerMinute > 1e6:
		return fmt.Errorf("limits.refusals_per_minute %d: must be 1..1000000", c.RefusalsPerMinute)
	case c.RefusalBurst < 1 || c.RefusalBurst > 1e6:
		return fmt.Errorf("limits.refusal_burst %d: must be 1..1000000", c.RefusalBurst)
	case c.MaxSources < 16 || c.MaxSources > 1e7:
		return fmt.Errorf("limits.max_sources %d: must be 16..10000000", c.MaxSources)
	case c.AggregateWindow < time.Second || c.AggregateWindow > time.Hour:
		return fmt.Errorf("limits.aggregate_window %v: must be 1s..1h", c.AggregateWindow)
	}
	return nil
}

// clientSource is the address refusals are counted against: the peer's IP
// (dozod terminates TLS itself and trusts no forwarding header), an IPv6
// peer by its /64, which one host usually holds whole.
func clientSource(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// overflowSource names the shared budget of sources that arrive while
// max_sources busy ones are tracked.
const overflowSource = "(other sources: too many tracked)"

// goodTokenTTL is how long a token that authenticated stays exempt from a
// limited source's 429 (it is still checked with Vault as usual).
const goodTokenTTL = time.Hour

// refusalGuard limits and aggregates refusals of unidentified requests,
// per source. Its memory is bounded by max_sources entries (plus the
// shared overflow entry) and maxCacheEntries remembered tokens.
//
// A source's entry may be dropped only when it holds nothing: a full
// bucket (as a new one would be) and no refusal counted but unrecorded.
// So forgetting a source never resets a throttled budget, and never loses
// a refusal.
type refusalGuard struct {
	cfg  LimitsConfig
	mu   sync.Mutex
	srcs map[string]*sourceState
	// good holds the SHA-256 of tokens that recently authenticated: a
	// legitimate user behind the address of a flood is not locked out.
	good      map[[32]byte]time.Time
	lastSweep time.Time
}

type sourceState struct {
	lim  *rate.Limiter
	aggs map[aggKey]*aggregate
}

// aggKey is the kind of a refusal: requests of one kind from one source
// within a window are recorded once and counted after that.
type aggKey struct {
	action string
	status int
}

type aggregate struct {
	start       time.Time // the window's start: the recorded refusal
	object      string
	count       uint64 // refusals since, not yet recorded
	first, last time.Time
}

func newRefusalGuard(cfg LimitsConfig) *refusalGuard {
	return &refusalGuard{cfg: cfg, srcs: map[string]*sourceState{}, good: map[[32]byte]time.Time{}}
}

func (g *refusalGuard) newSource() *sourceState {
	return &sourceState{
		lim:  rate.NewLimiter(rate.Limit(float64(g.cfg.RefusalsPerMinute)/60), g.cfg.RefusalBurst),
		aggs: map[aggKey]*aggregate{},
	}
}

// source returns src's entry, creating it (or handing out the overflow
// entry) as needed. It returns the name the entry is recorded under.
// g.mu is held.
func (g *refusalGuard) source(src string, now time.Time) (string, *sourceState) {
	if st, ok := g.srcs[src]; ok {
		return src, st
	}
	if len(g.srcs) >= g.cfg.MaxSources && now.Sub(g.lastSweep) >= time.Second {
		g.dropIdle(now)
	}
	if len(g.srcs) >= g.cfg.MaxSources {
		src = overflowSource
		if st, ok := g.srcs[src]; ok {
			return src, st
		}
	}
	st := g.newSource()
	g.srcs[src] = st
	return src, st
}

// limited reports whether a request from src must be answered 429 before
// anything else is done for it, and when to retry. A bearer token that
// authenticated within goodTokenTTL passes.
func (g *refusalGuard) limited(src string, r *http.Request, now time.Time) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.srcs[src]
	if !ok && len(g.srcs) >= g.cfg.MaxSources {
		st, ok = g.srcs[overflowSource]
	}
	if !ok {
		return 0, false
	}
	tokens := st.lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	if tok, ok := bearer(r); ok {
		if until, ok := g.good[sha256.Sum256([]byte(tok))]; ok && now.Before(until) {
			return 0, false
		}
	}
	wait := time.Duration((1 - tokens) / float64(st.lim.Limit()) * float64(time.Second))
	return wait, true
}

// authenticated remembers that r's bearer token was accepted.
func (g *refusalGuard) authenticated(r *http.Request, now time.Time) {
	tok, ok := bearer(r)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.good) >= maxCacheEntries {
		clear(g.good)
	}
	g.good[sha256.Sum256([]byte(tok))] = now.Add(goodTokenTTL)
}

// pendingAggregate is a count of refusals to record as one aggregate.
type pendingAggregate struct {
	source string
	key    aggKey
	agg    aggregate
}

func (p *pendingAggregate) record(now time.Time) audit.Record {
	return audit.Record{
		Time: now, Action: p.key.action, Object: p.agg.object, Result: audit.ResultRefused,
		Status: p.key.status, Source: p.source, Detail: audit.AggregateDetail(p.agg.count, p.agg.first, p.agg.last),
	}
}

// refused takes note of a refusal of an unidentified request from src. It
// charges the source's budget (a 429 costs nothing more: the budget is
// already spent) and says whether this refusal is to be recorded one by
// one, the first of its kind in the window. due holds the counts of
// windows that closed, to record now.
func (g *refusalGuard) refused(src, action, object string, status int, now time.Time) (name string, record bool, due []pendingAggregate) {
	g.mu.Lock()
	defer g.mu.Unlock()
	name, st := g.source(src, now)
	if status != http.StatusTooManyRequests {
		st.lim.AllowN(now, 1)
	}
	k := aggKey{action, status}
	a := st.aggs[k]
	switch {
	case a == nil:
		st.aggs[k] = &aggregate{start: now, object: object}
		return name, true, nil
	case now.Sub(a.start) >= g.cfg.AggregateWindow:
		if a.count > 0 {
			due = append(due, pendingAggregate{name, k, *a})
		}
		*a = aggregate{start: now, object: object}
		return name, true, due
	}
	if a.count == 0 {
		a.first = now
	}
	a.count++
	a.last = now
	return name, false, nil
}

// dropIdle forgets the sources that hold nothing: a full budget and no
// refusal counted but unrecorded. g.mu is held.
func (g *refusalGuard) dropIdle(now time.Time) {
	g.lastSweep = now
	for name, st := range g.srcs {
		idle := st.lim.TokensAt(now) >= float64(st.lim.Burst())
		for _, a := range st.aggs {
			if a.count > 0 || now.Sub(a.start) < g.cfg.AggregateWindow {
				idle = false
				break
			}
		}
		if idle {
			delete(g.srcs, name)
		}
	}
	for k, until := range g.good {
		if !now.Before(until) {
			delete(g.good, k)
		}
	}
}

// collect removes and returns the counts of windows closed by now (every
// count, when force), then forgets idle sources. g.mu is held.
func (g *refusalGuard) collect(now time.Time, force bool) []pendingAggregate {
	var due []pendingAggregate
	for name, st := range g.srcs {
		for k, a := range st.aggs {
			if !force && now.Sub(a.start) < g.cfg.AggregateWindow {
				continue
			}
			if a.count > 0 {
				due = append(due, pendingAggregate{name, k, *a})
			}
			delete(st.aggs, k)
		}
	}
	g.dropIdle(now)
	return due
}

// due returns the counts of windows closed by now (every count, when
// force), removing them from the guard.
func (g *refusalGuard) due(now time.Time, force bool) []pendingAggregate {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.collect(now, force)
}

// retryAfter is the Retry-After value for a wait: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// initAuditGuards sets up the refusal guard and audit anchoring from the
// [limits] and [audit] sections; Options built in code (tests, embedders)
// get the defaults.
func (s *Server) initAuditGuards(o Options) error {
	lc, ac := o.Limits, o.Audit
	if err := lc.validate(); err != nil {
		return err
	}
	if err := ac.validate(); err != nil {
		return err
	}
	s.guard = newRefusalGuard(lc)
	s.anchorCfg = ac
	return nil
}

// startAuditGuards records the counts of closed aggregate windows as they
// close, and anchors the audit head every anchor interval, until ctx ends.
func (s *Server) startAuditGuards(ctx context.Context) {
	s.startAnchoring(ctx)
	go func() {
		t := time.NewTicker(max(time.Second, s.guard.cfg.AggregateWindow/4))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.recordAggregates(ctx, s.guard.due(s.now(), false))
		}
	}()
}

// Stop records every refusal still only counted and anchors the audit
// head. Call it once the HTTP server has stopped taking requests.
func (s *Server) Stop(ctx context.Context) {
	s.recordAggregates(ctx, s.guard.due(s.now(), true))
	s.anchorAndLog(ctx, "shutdown")
}

// recordAggregates appends one record per aggregate. A failed append is
// logged at error level with the whole count, so it is not lost.
func (s *Server) recordAggregates(ctx context.Context, due []pendingAggregate) {
	for i := range due {
		rec := due[i].record(s.now())
		if _, err := s.appendAudit(ctx, rec); err != nil {
			s.log.Error("audit aggregate not recorded", "source", rec.Source, "action", rec.Action, "status", rec.Status,
				"detail", rec.Detail, "error", err.Error())
		}
	}
}
