// Package health keeps what dozod knows about the things it depends on:
// whether each storage target is up (probed, and told of failures seen on
// request paths), where a new upload may place its pieces given that, and
// whether Vault and the catalog answer.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

// EventFunc records an audit event of dozod's own (action such as
// "target.down", the object, the result "ok" or "error", and a detail).
type EventFunc func(ctx context.Context, action, object, result, detail string)

// ProbeFunc asks one target whether it serves; nil means it does.
type ProbeFunc func(ctx context.Context, t storage.Target) error

// probeKey is a key no object is ever stored under: a Stat of it costs one
// HEAD request and answers "not found" from a healthy target.
const probeKey = "dozo/health-probe"

// StatProbe probes a target with a Stat of a key that is never stored: a
// healthy target answers "not found", which counts as up.
func StatProbe(ctx context.Context, t storage.Target) error {
	_, err := t.Stat(ctx, probeKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// TargetsConfig is what Targets needs; only Targets is required.
type TargetsConfig struct {
	Targets []storage.Target // every configured target, ids unique
	Probe   ProbeFunc        // nil: StatProbe
	Timeout time.Duration    // bounds one probe; 0 means 2s
	Event   EventFunc        // nil: events are only logged
	Now     func() time.Time // nil: time.Now
	Log     *slog.Logger     // nil: slog.Default()
}

// Targets is what dozod knows about each storage target: up or down, since
// when, and the last error. A target is up until a probe or a request
// shows otherwise; only a probe marks it up again. Safe for concurrent
// use.
type Targets struct {
	cfg  TargetsConfig
	ids  []string // sorted
	byID map[string]storage.Target
	down storage.DownTargets // the up/down verdicts (SetDown)

	mu sync.Mutex // guards st and makes a verdict and its record one step
	st map[string]*targetState
}

type targetState struct {
	since     time.Time // last change, or the start
	lastProbe time.Time
	lastErr   string
	failures  uint64 // failed probes and request-path failures, in total
}

// NewTargets returns every target of cfg up since now.
func NewTargets(cfg TargetsConfig) *Targets {
	if cfg.Probe == nil {
		cfg.Probe = StatProbe
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
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
	h := &Targets{cfg: cfg, byID: map[string]storage.Target{}, st: map[string]*targetState{}}
	now := cfg.Now()
	for _, t := range cfg.Targets {
		h.ids = append(h.ids, t.ID())
		h.byID[t.ID()] = t
		h.st[t.ID()] = &targetState{since: now}
	}
	slices.Sort(h.ids)
	return h
}

// Up reports whether a configured target is up at the last verdict.
func (h *Targets) Up(id string) bool {
	_, ok := h.byID[id]
	return ok && !h.down.IsDown(id)
}

// Run probes every target now and then every interval, until ctx ends. It
// returns at once.
func (h *Targets) Run(ctx context.Context, interval time.Duration) {
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			h.ProbeAll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// ProbeAll probes every target at once, each within the probe timeout, and
// records the verdicts.
func (h *Targets) ProbeAll(ctx context.Context) { h.Probe(ctx, h.ids) }

// Probe probes the targets ids at once and records the verdicts. A probe
// cut short by ctx gives no verdict.
func (h *Targets) Probe(ctx context.Context, ids []string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		t, ok := h.byID[id]
		if !ok {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
			defer cancel()
			err := h.cfg.Probe(pctx, t)
			if ctx.Err() != nil {
				return // shutting down: no verdict
			}
			h.set(ctx, id, err, true)
		})
	}
	wg.Wait()
}

// NoteError records a failure seen on a request path (not "not found", not
// the caller going away), so uploads stop choosing the target before the
// next probe. Only a probe marks a target up again.
func (h *Targets) NoteError(ctx context.Context, id string, err error) {
	if err == nil || errors.Is(err, storage.ErrNotFound) || ctx.Err() != nil {
		return
	}
	h.set(context.WithoutCancel(ctx), id, err, false)
}

// set records a verdict on target id (err nil: up), and logs and records
// an event when it changes the target's state.
func (h *Targets) set(ctx context.Context, id string, err error, probe bool) {
	now := h.cfg.Now()
	h.mu.Lock()
	th, ok := h.st[id]
	if !ok {
		h.mu.Unlock()
		return
	}
	if probe {
		th.lastProbe = now
	}
	if err != nil {
		th.failures++
		th.lastErr = OneLine(err.Error())
	}
	changed := h.down.SetDown(id, err != nil)
	if changed {
		th.since = now
	}
	lastErr := th.lastErr
	h.mu.Unlock()
	if !changed {
		return
	}
	if err != nil {
		h.cfg.Log.Warn("storage target down", "target", id, "error", lastErr)
		h.cfg.Event(ctx, "target.down", "target/"+id, "error", lastErr)
	} else {
		h.cfg.Log.Info("storage target up", "target", id)
		h.cfg.Event(ctx, "target.up", "target/"+id, "ok", "")
	}
}

// OneLine keeps an error message on one line and at most about 300 bytes,
// for a status field or a log line.
func OneLine(s string) string {
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

// Status returns every target's state, by id.
func (h *Targets) Status() []TargetStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]TargetStatus, 0, len(h.ids))
	for _, id := range h.ids {
		th := h.st[id]
		out = append(out, TargetStatus{ID: id, Domain: h.byID[id].Domain(), Up: !h.down.IsDown(id), Since: th.since,
			LastProbe: th.lastProbe, LastError: th.lastErr, Failures: th.failures})
	}
	return out
}

// PlacementError is the refusal of an upload whose layout the targets
// that are up cannot hold: which are down and what the layout needs.
type PlacementError struct {
	Up, Total int
	Down      []string // ids of the targets down
	Layout    storage.Layout
	Limit     int // pieces per failure domain the layout allows
	Domains   int // failure domains with a target up
	Capacity  int // pieces the targets up can hold under Limit
}

func (e *PlacementError) Error() string {
	return fmt.Sprintf("only %d of %d storage targets are up (down: %s); a %d+%d upload needs %d targets with at most %d pieces per failure domain, "+
		"and the healthy targets in %d domain(s) allow only %d — try again later",
		e.Up, e.Total, strings.Join(e.Down, ", "), e.Layout.K, e.Layout.M, e.Layout.Shards(), e.Limit, e.Domains, e.Capacity)
}

// Placement returns the targets a new upload places its pieces on: all of
// them when all are up; the healthy ones when some are down and those
// still hold K+M pieces with at most M per failure domain; otherwise a
// *PlacementError, so the client neither hangs on a dead target nor
// weakens the failure-domain rule. Before refusing it probes the targets
// down once more: one may have come back since the last probe, and a
// refusal should be current.
func (h *Targets) Placement(ctx context.Context, l storage.Layout) ([]storage.Target, error) {
	all := make([]storage.Target, 0, len(h.ids))
	for _, id := range h.ids {
		all = append(all, h.byID[id])
	}
	var healthy []storage.Target
	var down []string
	for attempt := 0; ; attempt++ {
		healthy = storage.FilterTargets(all, h.Up)
		if len(healthy) == len(all) {
			if _, err := storage.Place(all, l, 0); err != nil {
				return nil, err
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
			if !h.Up(t.ID()) {
				down = append(down, t.ID())
			}
		}
		if attempt > 0 {
			break
		}
		h.Probe(ctx, down)
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
	return nil, &PlacementError{Up: len(healthy), Total: len(all), Down: down, Layout: l,
		Limit: limit, Domains: len(perDomain), Capacity: capacity}
}
