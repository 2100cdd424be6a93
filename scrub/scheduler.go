package scrub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/jobs"
)

// Kind is the job kind of a scrub run.
const Kind = "scrub"

// LockKey is the lock key every scrub job holds: the catalog keeps at
// most one unfinished scrub job, whatever any dozod believes.
const LockKey = "scrub"

// Params are a scrub job's params: the run it executes. The job has the
// run's id as its own, so `dozo jobs show` and `dozo scrub status` take
// the same id.
type Params struct {
	Run string `json:"run"`
	// Shards is how many shard jobs (ShardID) check the run's files; 0:
	// none, this job checks them.
	Shards int `json:"shards,omitempty"`
}

// JobResult is a finished scrub job's result: the run's summary (its
// findings stay in the run's record).
type JobResult struct {
	Run     string           `json:"run"`
	Summary api.ScrubSummary `json:"summary"`
}

// Scheduler starts scrubs as jobs of a job runner (kind Kind, lock key
// LockKey): runs asked for (Create) and scheduled ones. The job runner
// decides where and when a run executes, resumes it after a restart and
// hands it to another dozod when its runner dies; the Scheduler's handler
// executes it with its Runner and records how it ended.
type Scheduler struct {
	o      Options
	runner *Runner
	jobs   *jobs.Runner
}

// NewScheduler returns a Scheduler with its own Runner and registers its
// handler for Kind with jr; nothing runs before Create, Start or jr's own
// Start.
func NewScheduler(o Options, jr *jobs.Runner) *Scheduler {
	o.defaults()
	s := &Scheduler{o: o, runner: NewRunner(o), jobs: jr}
	jr.Register(Kind, s.execute)
	jr.RegisterLimit(ShardKind, s.executeShard, 1)
	return s
}

// Runner is the Runner executing the scheduler's runs.
func (s *Scheduler) Runner() *Runner { return s.runner }

// Start looks every Tick, until ctx ends, for due scheduled runs (if an
// interval is set) and for a running run no job executes (reconcile). It
// returns at once.
func (s *Scheduler) Start(ctx context.Context) {
	s.reconcile(ctx)
	go func() {
		t := time.NewTicker(s.o.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.reconcile(ctx)
			s.schedule(ctx)
		}
	}()
}

// reconcile settles a running run whose job is not unfinished: a run with
// no job at all (left by a dozod from before scrubs were jobs) gets one,
// and continues; a run whose job ended without ending it (cancelled while
// queued, or before it could resume) is ended as its job was.
func (s *Scheduler) reconcile(ctx context.Context) {
	rec, err := s.o.Catalog.RunningScrub(ctx)
	if errors.Is(err, catalog.ErrNotFound) {
		return
	}
	if err != nil {
		s.o.Logger.Error("scrub: looking for an unfinished run", "error", err.Error())
		return
	}
	j, err := s.o.Catalog.Job(ctx, rec.ID)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		s.o.Logger.Info("scrub: continuing an unfinished run", "run", rec.ID)
		if _, err := s.submit(ctx, *rec, nil); err != nil && !errors.Is(err, jobs.ErrBusy) {
			s.o.Logger.Error("scrub: cannot continue run", "run", rec.ID, "error", err.Error())
			return
		}
		s.o.record(ctx, "dozod", "scrub.resume", "scrub/"+rec.ID, "ok", "continuing after a restart")
	case err != nil:
		s.o.Logger.Error("scrub: reading the job of a run", "run", rec.ID, "error", err.Error())
	case j.Finished():
		state, msg := catalog.ScrubFailed, "its job ended as "+j.State+" before the run did"
		if j.State == catalog.JobCancelled {
			state, msg = catalog.ScrubCancelled, "cancelled"
		}
		if n, err := s.runShards(ctx, rec.ID); err == nil && n > 1 {
			s.cancelShards(ctx, rec.ID, n)
		}
		s.runner.End(ctx, *rec, state, msg)
	}
}

// SlotID is the id of the scheduled run due after last (the start of the
// previous scheduled run of the same kind, deep or any): every dozod that
// finds the run due computes the same id, so the catalog records it once.
func SlotID(deep bool, last time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "scheduled scrub deep=%t after %d", deep, last.UnixNano()))
	return "scrub-s" + hex.EncodeToString(h[:15])
}

// schedule starts a scheduled run when one is due. A deep run is due
// after DeepInterval since the last scheduled deep run; a light one after
// LightInterval since the last scheduled run of any kind (a deep run
// checks everything a light one does). The run's id is its slot's
// (SlotID): of several dozods deciding at once, one records it.
func (s *Scheduler) schedule(ctx context.Context) {
	if s.o.LightInterval == 0 && s.o.DeepInterval == 0 {
		return
	}
	now := s.o.Now()
	due := func(interval time.Duration, deepOnly bool) (bool, time.Time) {
		if interval <= 0 {
			return false, time.Time{}
		}
		last, err := s.o.Catalog.LastScrubStart(ctx, catalog.ScrubScheduled, deepOnly)
		if err != nil {
			s.o.Logger.Error("scrub scheduler: reading the catalog", "error", err.Error())
			return false, time.Time{}
		}
		return !now.Before(last.Add(interval)), last
	}
	deep := true
	ok, last := due(s.o.DeepInterval, true)
	if !ok {
		deep = false
		if ok, last = due(s.o.LightInterval, false); !ok {
			return
		}
	}
	rec := catalog.ScrubRun{ID: SlotID(deep, last), Trigger: catalog.ScrubScheduled, StartedBy: "dozod",
		Deep: deep, Repair: s.o.Repair, Rate: s.o.Rate, StartedAt: now}
	if err := s.Create(ctx, rec); err != nil {
		if !errors.Is(err, catalog.ErrState) {
			s.o.Logger.Error("scrub scheduler: starting a run", "error", err.Error())
		}
		return
	}
	s.o.record(ctx, "dozod", "scrub.start", "scrub/"+rec.ID, "ok", Describe(rec))
}

// Create records a new run with the files of its scope, and the job that
// executes it (with its shards' jobs, when Options.Shards cuts it), in
// one catalog transaction, and starts the job (here, if this dozod runs
// scrub jobs). While another scrub job is unfinished, or a run of the
// same id exists, it is catalog.ErrState, and nothing is recorded.
func (s *Scheduler) Create(ctx context.Context, rec catalog.ScrubRun) error {
	files, err := s.o.Catalog.ScrubCandidates(ctx, rec.DatasetID, rec.FileName)
	if err != nil {
		return err
	}
	shards, err := shardJobs(rec, files, s.o.Shards)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		_, err = s.submitShards(ctx, rec, len(shards), func(ctx context.Context, j jobs.Job) error {
			return s.o.Catalog.CreateScrubRunJob(ctx, rec, files, j, shards...)
		})
		if !errors.Is(err, jobs.ErrBusy) {
			return err
		}
		if try > 0 || !s.endingJob(ctx) {
			return fmt.Errorf("a scrub is running: %w: %w", catalog.ErrState, err)
		}
	}
}

// endingJob reports whether the unfinished scrub job has ended its run and
// is ending itself, after waiting (briefly) for it to have done so: a
// client that saw a run end may start the next at once.
func (s *Scheduler) endingJob(ctx context.Context) bool {
	j, err := s.o.Catalog.UnfinishedJob(ctx, LockKey)
	if err != nil {
		return errors.Is(err, catalog.ErrNotFound)
	}
	if rec, err := s.o.Catalog.ScrubRun(ctx, j.ID); err != nil || rec.State == catalog.ScrubRunning {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s.jobs.Wait(wctx, j.ID)
	return wctx.Err() == nil
}

// submit submits the job of run rec (insert: how it is recorded; nil for
// a job alone).
func (s *Scheduler) submit(ctx context.Context, rec catalog.ScrubRun, insert func(context.Context, jobs.Job) error) (*jobs.Job, error) {
	return s.submitShards(ctx, rec, 0, insert)
}

// submitShards is submit for a run cut into shards shards (0: none).
func (s *Scheduler) submitShards(ctx context.Context, rec catalog.ScrubRun, shards int, insert func(context.Context, jobs.Job) error) (*jobs.Job, error) {
	return s.jobs.Submit(ctx, jobs.Spec{ID: rec.ID, Kind: Kind, LockKey: LockKey, Params: Params{Run: rec.ID, Shards: shards},
		RequestedBy: rec.StartedBy, Insert: insert})
}

// execute is the job handler: it runs the job's run to its end, or until
// the job is cancelled (the run ends cancelled) or the runner lets go of
// it (dozod stopping, or the job taken over: the run stays running, to be
// resumed by the job's next runner).
func (s *Scheduler) execute(ctx context.Context, t *jobs.Task) (any, error) {
	var p Params
	if err := t.Decode(&p); err != nil {
		return nil, err
	}
	rec, err := s.o.Catalog.ScrubRun(ctx, p.Run)
	if err != nil {
		return nil, fmt.Errorf("scrub run %s: %w", p.Run, err)
	}
	if rec.State != catalog.ScrubRunning {
		// The run ended, but its runner died before its job did.
		files, err := s.o.Catalog.ScrubFiles(ctx, rec.ID)
		if err != nil {
			return nil, err
		}
		res, err := Tally(files, false)
		if err != nil {
			return nil, err
		}
		return JobResult{Run: rec.ID, Summary: res.Summary}, nil
	}
	if p.Shards > 1 {
		return s.coordinate(ctx, t, rec, p.Shards)
	}
	if t.Attempts > 1 {
		s.o.record(ctx, "dozod", "scrub.resume", "scrub/"+rec.ID, "ok",
			fmt.Sprintf("continuing after a restart or a take-over (attempt %d)", t.Attempts))
	}
	res, err := s.runner.Run(ctx, *rec, func(done, total int) {
		t.Progress(int64(done), int64(total), "files scrubbed")
	})
	bg := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		s.runner.End(bg, *rec, catalog.ScrubDone, "")
		return JobResult{Run: rec.ID, Summary: res.Summary}, nil
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), jobs.ErrCancelled):
		s.runner.End(bg, *rec, catalog.ScrubCancelled, "cancelled")
		return nil, err
	case ctx.Err() != nil:
		s.o.Logger.Info("scrub: paused; it continues when its job is resumed", "run", rec.ID, "cause", context.Cause(ctx).Error())
		return nil, err
	default:
		s.runner.End(bg, *rec, catalog.ScrubFailed, err.Error())
		return nil, err
	}
}

// Cancel ends run id as cancelled: its job is cancelled and Cancel waits
// for it to stop (or for ctx): at once when it runs here, at its runner's
// next lease renewal elsewhere. A run that is not running is left as it
// is, and that is no error.
func (s *Scheduler) Cancel(ctx context.Context, id string) error {
	j, err := s.jobs.Cancel(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, catalog.ErrState):
		// No job (a run from before scrubs were jobs), or it has ended.
	case err != nil:
		return err
	case !j.Finished():
		if _, err := s.jobs.Wait(ctx, id); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// The run's job ends its shards before itself; not when it ended
	// without running (cancelled while queued, or before it could resume).
	if n, err := s.runShards(ctx, id); err != nil {
		return err
	} else if n > 1 {
		s.cancelShards(ctx, id, n)
	}
	// A run whose job ended without it (cancelled while queued, or before
	// it could resume) is ended here.
	if err := s.o.Catalog.EndScrubRun(ctx, id, catalog.ScrubCancelled, "cancelled", s.o.Now()); err != nil && !errors.Is(err, catalog.ErrState) {
		return err
	}
	return nil
}

// Progress is the live progress of run id if it executes here (see
// Runner.Progress).
func (s *Scheduler) Progress(id string) (current string, pieces, bytes int64, ok bool) {
	return s.runner.Progress(id)
}

// Snapshot returns the current progress and the counters since the
// scheduler was made (see Runner.Snapshot).
func (s *Scheduler) Snapshot() Snapshot { return s.runner.Snapshot() }
