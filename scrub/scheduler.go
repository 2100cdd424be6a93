package scrub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dozo-vault/dozo/catalog"
)

// Scheduler runs at most one scrub at a time in this process (the catalog
// also allows only one running run), in the background: runs started by
// Create, scheduled ones, and one a previous process left unfinished. It
// records in the catalog and the audit log how each run ends.
type Scheduler struct {
	o      Options
	runner *Runner

	mu   sync.Mutex
	base context.Context // Start's context; runs stop with it
	cur  *current        // the run executing in this process
	wg   sync.WaitGroup
}

// current is a run executing in this process.
type current struct {
	rec       catalog.ScrubRun
	cancel    context.CancelFunc
	cancelled atomic.Bool // by Cancel: end as cancelled, not resume
	done      chan struct{}
	live      live
}

// NewScheduler returns a Scheduler with its own Runner; nothing runs
// before Create or Start.
func NewScheduler(o Options) *Scheduler {
	o.defaults()
	return &Scheduler{o: o, runner: NewRunner(o)}
}

// Runner is the Runner executing the scheduler's runs.
func (s *Scheduler) Runner() *Runner { return s.runner }

// Start continues a run a previous process left unfinished, then looks
// for due scheduled runs every Tick (if an interval is set) until ctx
// ends. Runs stop with ctx, and a run stopped so stays running in the
// catalog, to continue at the next Start. It returns at once.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	s.base = ctx
	s.mu.Unlock()
	if r, err := s.o.Catalog.RunningScrub(ctx); err == nil {
		s.o.Logger.Info("scrub: continuing an unfinished run", "run", r.ID)
		s.o.record(ctx, "dozod", "scrub.resume", "scrub/"+r.ID, "ok", "continuing after a restart")
		if err := s.start(*r); err != nil {
			s.o.Logger.Error("scrub: cannot continue run", "run", r.ID, "error", err.Error())
		}
	} else if !errors.Is(err, catalog.ErrNotFound) {
		s.o.Logger.Error("scrub: looking for an unfinished run", "error", err.Error())
	}
	if s.o.LightInterval == 0 && s.o.DeepInterval == 0 {
		return
	}
	go func() {
		t := time.NewTicker(s.o.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.schedule(ctx)
		}
	}()
}

// schedule starts a scheduled run when one is due and none runs. A deep
// run is due after DeepInterval since the last scheduled deep run; a light
// one after LightInterval since the last scheduled run of any kind (a
// deep run checks everything a light one does).
func (s *Scheduler) schedule(ctx context.Context) {
	if s.running() {
		return
	}
	now := s.o.Now()
	due := func(interval time.Duration, deepOnly bool) bool {
		if interval <= 0 {
			return false
		}
		last, err := s.o.Catalog.LastScrubStart(ctx, catalog.ScrubScheduled, deepOnly)
		if err != nil {
			s.o.Logger.Error("scrub scheduler: reading the catalog", "error", err.Error())
			return false
		}
		return !now.Before(last.Add(interval))
	}
	var deep bool
	switch {
	case due(s.o.DeepInterval, true):
		deep = true
	case due(s.o.LightInterval, false):
	default:
		return
	}
	rec := catalog.ScrubRun{ID: s.o.NewID(), Trigger: catalog.ScrubScheduled, StartedBy: "dozod",
		Deep: deep, Repair: s.o.Repair, Rate: s.o.Rate, StartedAt: now}
	if err := s.Create(ctx, rec); err != nil {
		if !errors.Is(err, catalog.ErrState) {
			s.o.Logger.Error("scrub scheduler: starting a run", "error", err.Error())
		}
		return
	}
	s.o.record(ctx, "dozod", "scrub.start", "scrub/"+rec.ID, "ok", Describe(rec))
}

func (s *Scheduler) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil
}

// Create records a new run with the files of its scope and starts it in
// the background. While another run executes it is catalog.ErrState, and
// nothing is recorded.
func (s *Scheduler) Create(ctx context.Context, rec catalog.ScrubRun) error {
	if s.running() {
		return fmt.Errorf("a scrub is running: %w", catalog.ErrState)
	}
	files, err := s.o.Catalog.ScrubCandidates(ctx, rec.DatasetID, rec.FileName)
	if err != nil {
		return err
	}
	if err := s.o.Catalog.CreateScrubRun(ctx, rec, files); err != nil {
		return err
	}
	return s.start(rec)
}

// start executes rec (new or resumed) in the background.
func (s *Scheduler) start(rec catalog.ScrubRun) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return fmt.Errorf("a scrub is running: %w", catalog.ErrState)
	}
	base := s.base
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithCancel(base)
	c := &current{rec: rec, cancel: cancel, done: make(chan struct{})}
	s.cur = c
	s.wg.Go(func() {
		defer close(c.done)
		defer cancel()
		s.execute(ctx, c)
		s.mu.Lock()
		if s.cur == c {
			s.cur = nil
		}
		s.mu.Unlock()
	})
	return nil
}

// execute runs c and records how it ended: failed, cancelled, done, or
// (when the process is stopping) not at all, so it resumes at next Start.
func (s *Scheduler) execute(ctx context.Context, c *current) {
	bg := context.WithoutCancel(ctx)
	stopped, err := s.runner.run(ctx, c.rec, &c.live)
	switch {
	case err != nil:
		s.end(bg, c, catalog.ScrubFailed, err.Error())
	case c.cancelled.Load():
		s.end(bg, c, catalog.ScrubCancelled, "cancelled")
	case stopped:
		s.o.Logger.Info("scrub: paused by shutdown; it continues at the next start", "run", c.rec.ID)
	default:
		s.end(bg, c, catalog.ScrubDone, "")
	}
}

// end records c's end in the catalog, the counters and the audit log.
func (s *Scheduler) end(ctx context.Context, c *current, state, msg string) {
	now := s.o.Now()
	// The run stops counting as ours and as running in the catalog at the
	// same moment, so a client that sees it ended can start the next one.
	s.mu.Lock()
	if err := s.o.Catalog.EndScrubRun(ctx, c.rec.ID, state, msg, now); err != nil {
		s.o.Logger.Error("scrub: recording the end of a run", "run", c.rec.ID, "error", err.Error())
	}
	if s.cur == c {
		s.cur = nil
	}
	s.mu.Unlock()
	s.runner.totals.countEnd(state, now)
	result, detail := "ok", Describe(c.rec)+": "+state
	if files, err := s.o.Catalog.ScrubFiles(ctx, c.rec.ID); err == nil {
		if t, err := Tally(files, false); err == nil {
			sm := t.Summary
			detail += fmt.Sprintf(": %d files, %d pieces, %d bytes checked; %d found, %d repaired, %d unrecoverable segments, %d damaged files",
				sm.FilesDone, sm.Pieces, sm.Bytes, sm.Found, sm.Repaired, sm.Unrecoverable, sm.DamagedFiles)
			if sm.Unrecoverable > 0 || sm.FileErrors > 0 {
				result = "error"
			}
		}
	}
	if state == catalog.ScrubFailed {
		result, detail = "error", detail+": "+msg
	}
	s.o.record(ctx, c.rec.StartedBy, "scrub.run", "scrub/"+c.rec.ID, result, detail)
	s.o.Logger.Info("scrub finished", "run", c.rec.ID, "state", state, "detail", detail)
}

// Cancel ends run id as cancelled. A run executing here is stopped after
// its current file and Cancel waits for it (or for ctx); any other is
// ended in the catalog, where ending a run no longer running changes
// nothing and is no error.
func (s *Scheduler) Cancel(ctx context.Context, id string) error {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c != nil && c.rec.ID == id {
		c.cancelled.Store(true)
		c.cancel()
		select {
		case <-c.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := s.o.Catalog.EndScrubRun(ctx, id, catalog.ScrubCancelled, "cancelled", s.o.Now()); err != nil && !errors.Is(err, catalog.ErrState) {
		return err
	}
	return nil
}

// Progress is the live progress of run id if it executes here: the file
// being checked, and the pieces and bytes of it checked so far (not yet
// in the catalog).
func (s *Scheduler) Progress(id string) (current string, pieces, bytes int64, ok bool) {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil || c.rec.ID != id {
		return "", 0, 0, false
	}
	c.live.mu.Lock()
	current = c.live.current
	c.live.mu.Unlock()
	return current, c.live.pieces.Load(), c.live.bytes.Load(), true
}

// Snapshot returns the current progress and the counters since the
// scheduler was made; safe to call from any goroutine.
func (s *Scheduler) Snapshot() Snapshot {
	var snap Snapshot
	t := &s.runner.totals
	t.mu.Lock()
	snap.RunsCompleted, snap.PiecesCheckedTotal, snap.BytesCheckedTotal = t.runs, t.pieces, t.bytes
	snap.FindingsTotal = map[string]int64{}
	for k, v := range t.found {
		snap.FindingsTotal[k] = v
	}
	snap.RepairedTotal, snap.UnrecoverableTotal = t.repaired, t.unrecoverable
	snap.LastRunEnd, snap.LastRunState = t.lastEnd, t.lastState
	t.mu.Unlock()
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c != nil {
		snap.Running, snap.RunID, snap.Deep, snap.Repair = true, c.rec.ID, c.rec.Deep, c.rec.Repair
		c.live.mu.Lock()
		snap.FilesTotal, snap.FilesDone = c.live.files, c.live.done
		c.live.mu.Unlock()
		snap.PiecesChecked, snap.BytesChecked = c.live.pieces.Load(), c.live.bytes.Load()
		snap.PiecesCheckedTotal += snap.PiecesChecked
		snap.BytesCheckedTotal += snap.BytesChecked
	}
	return snap
}

// Wait waits for the run executing here, if any, to stop (after the
// context given to Start ends, or a Cancel).
func (s *Scheduler) Wait() { s.wg.Wait() }
