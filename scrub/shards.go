package scrub

// Shards: a run of several files may be cut into shards (Options.Shards),
// ranges of its files (Split), each a job of its own (kind ShardKind)
// that any dozod's job runner takes, one at a time per dozod
// (RegisterLimit): two dozods check two shards at once, and a shard
// whose dozod died is taken over after its lease and resumed where it
// stopped, like a whole run. The run's own job (kind Kind, id the run's)
// then only coordinates: it waits for every shard to end and ends the
// run as one run would end (its tally, audit record and counters are the
// run's, of all its files); a failed shard fails the run, a cancelled one
// cancels it, and a cancel of the run cancels every shard.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/jobs"
)

// ShardKind is the job kind of a shard of a run.
const ShardKind = "scrub-shard"

// MaxShards bounds Options.Shards.
const MaxShards = 256

// ShardParams are a shard job's params: its run, which shard of how many
// (from 1), and its files.
type ShardParams struct {
	Run   string `json:"run"`
	Shard int    `json:"shard"`
	Of    int    `json:"of"`
	Range
}

// ShardResult is a finished shard job's result: the summary of its files
// and the dozod that finished it (a job's owner is cleared when it ends).
type ShardResult struct {
	Run     string           `json:"run"`
	Shard   int              `json:"shard"`
	By      string           `json:"by"`
	Summary api.ScrubSummary `json:"summary"`
}

// ShardID is the job id of shard i (from 1) of run.
func ShardID(run string, i int) string { return fmt.Sprintf("%s.shard%d", run, i) }

// shardJobs are the jobs of run rec's shards, for files (in run order)
// cut into at most n shards; none when that is one shard.
func shardJobs(rec catalog.ScrubRun, files []catalog.ScrubCandidate, n int) ([]catalog.Job, error) {
	costs := make([]int64, len(files))
	for i, f := range files {
		costs[i] = f.Pieces
		if rec.Deep {
			costs[i] = f.Bytes
		}
	}
	ranges := Split(costs, min(n, MaxShards))
	if len(ranges) < 2 {
		return nil, nil
	}
	out := make([]catalog.Job, len(ranges))
	for i, rg := range ranges {
		p, err := json.Marshal(ShardParams{Run: rec.ID, Shard: i + 1, Of: len(ranges), Range: rg})
		if err != nil {
			return nil, err
		}
		out[i] = catalog.Job{ID: ShardID(rec.ID, i+1), Kind: ShardKind, Params: p, RequestedBy: rec.StartedBy, CreatedAt: rec.StartedAt}
	}
	return out, nil
}

// executeShard is the shard jobs' handler: it checks the shard's files
// not checked yet. It does not end the run: the run's job does, once
// every shard has ended.
func (s *Scheduler) executeShard(ctx context.Context, t *jobs.Task) (any, error) {
	var p ShardParams
	if err := t.Decode(&p); err != nil {
		return nil, err
	}
	rec, err := s.o.Catalog.ScrubRun(ctx, p.Run)
	if err != nil {
		return nil, fmt.Errorf("scrub run %s: %w", p.Run, err)
	}
	if rec.State != catalog.ScrubRunning {
		return nil, fmt.Errorf("scrub run %s is %s", rec.ID, rec.State)
	}
	if t.Attempts > 1 {
		s.o.record(ctx, "dozod", "scrub.resume", "scrub/"+rec.ID, "ok",
			fmt.Sprintf("shard %d of %d continuing after a restart or a take-over (attempt %d)", p.Shard, p.Of, t.Attempts))
	}
	res, err := s.runner.RunShard(ctx, *rec, p.Range, func(done, total int) {
		t.Progress(int64(done), int64(total), "files scrubbed")
	})
	if err != nil {
		return nil, err
	}
	return ShardResult{Run: rec.ID, Shard: p.Shard, By: t.Owner, Summary: res.Summary}, nil
}

// shardIDs are the job ids of run's n shards.
func shardIDs(run string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = ShardID(run, i+1)
	}
	return out
}

// shardPoll is how often a run's job looks at its shards.
func (s *Scheduler) shardPoll() time.Duration { return min(s.jobs.Poll, time.Second) }

// coordinate is the handler of a sharded run's job: it waits for every
// shard to end, reporting their files done as its progress, and ends the
// run as execute would: done when every shard is done; failed, with the
// first failed shard's error, when one failed; cancelled when the run's
// job or a shard was cancelled. Shards still running are cancelled first
// and waited for, so the run ends after all its work has. When the runner
// lets go of the job (dozod stopping, or the job taken over), the shards
// go on, and the job's next runner coordinates them.
func (s *Scheduler) coordinate(ctx context.Context, t *jobs.Task, rec *catalog.ScrubRun, n int) (any, error) {
	ids := shardIDs(rec.ID, n)
	tick := time.NewTicker(s.shardPoll())
	defer tick.Stop()
	bg := context.WithoutCancel(ctx)
	cancelling := false
	stop := ctx.Done() // nil once a cancel is being carried out
	for {
		st, err := s.shardStates(bg, ids)
		if err != nil {
			s.o.Logger.Warn("scrub: reading the shards of a run", "run", rec.ID, "error", err.Error())
		} else {
			t.Progress(st.done, st.total, "files scrubbed")
			switch {
			case st.ended == n && st.failed != "":
				s.runner.End(bg, *rec, catalog.ScrubFailed, st.failed)
				return nil, errors.New(st.failed)
			case st.ended == n && (st.cancelled || cancelling):
				s.runner.End(bg, *rec, catalog.ScrubCancelled, "cancelled")
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, errors.New("a shard was cancelled")
			case st.ended == n:
				s.runner.End(bg, *rec, catalog.ScrubDone, "")
				files, err := s.o.Catalog.ScrubFiles(bg, rec.ID)
				if err != nil {
					return nil, err
				}
				res, err := Tally(files, false)
				if err != nil {
					return nil, err
				}
				return JobResult{Run: rec.ID, Summary: res.Summary}, nil
			case !cancelling && st.failed != "":
				// The run cannot end done: stop the other shards.
				cancelling = true
				s.cancelShards(bg, rec.ID, n)
			case !cancelling && st.cancelled:
				// A shard cancelled on its own cancels the run, as a
				// cancel of the run would (the job ends cancelled).
				if _, err := s.jobs.Cancel(bg, t.ID); err != nil {
					cancelling = true
					s.cancelShards(bg, rec.ID, n)
				}
			}
		}
		select {
		case <-stop:
			stop = nil // from now on, wait for the shards at each tick
			if !errors.Is(context.Cause(ctx), jobs.ErrCancelled) {
				s.o.Logger.Info("scrub: paused; its shards go on, and its job's next runner follows them", "run", rec.ID,
					"cause", context.Cause(ctx).Error())
				return nil, ctx.Err()
			}
			if !cancelling {
				cancelling = true
				s.cancelShards(bg, rec.ID, n)
			}
		case <-tick.C:
		}
	}
}

// shardStates sums up a run's shard jobs.
type shardState struct {
	ended       int
	done, total int64  // files
	failed      string // the first failed shard's error
	cancelled   bool
}

func (s *Scheduler) shardStates(ctx context.Context, ids []string) (shardState, error) {
	var st shardState
	for i, id := range ids {
		j, err := s.o.Catalog.Job(ctx, id)
		if err != nil {
			return st, err
		}
		var p ShardParams
		if err := json.Unmarshal(j.Params, &p); err != nil {
			return st, fmt.Errorf("job %s: params: %w", id, err)
		}
		st.done += j.ProgressDone
		st.total += int64(p.To - p.From) // known before the shard starts
		if !j.Finished() {
			continue
		}
		st.ended++
		switch j.State {
		case catalog.JobFailed:
			if st.failed == "" {
				st.failed = fmt.Sprintf("shard %d of %d: %s", i+1, len(ids), j.Error)
			}
		case catalog.JobCancelled:
			st.cancelled = true
		}
	}
	return st, nil
}

// cancelShards asks every unfinished shard of run (of n) to end.
func (s *Scheduler) cancelShards(ctx context.Context, run string, n int) {
	for _, id := range shardIDs(run, n) {
		if _, err := s.jobs.Cancel(ctx, id); err != nil && !errors.Is(err, catalog.ErrState) && !errors.Is(err, catalog.ErrNotFound) {
			s.o.Logger.Error("scrub: cancelling a shard", "job", id, "error", err.Error())
		}
	}
}

// runShards is how many shards run id has (0: its job is not known).
func (s *Scheduler) runShards(ctx context.Context, id string) (int, error) {
	j, err := s.o.Catalog.Job(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var p Params
	if err := json.Unmarshal(j.Params, &p); err != nil {
		return 0, fmt.Errorf("job %s: params: %w", id, err)
	}
	return p.Shards, nil
}

// Shard is a shard of a run as its job has it.
type Shard struct {
	ShardParams
	Job *catalog.Job // nil: its record is gone (pruned)
}

// Shards returns the shards of run id, in order; none for a run not cut
// into shards, or whose job's record is gone.
func (s *Scheduler) Shards(ctx context.Context, id string) ([]Shard, error) {
	n, err := s.runShards(ctx, id)
	if err != nil || n < 2 {
		return nil, err
	}
	out := make([]Shard, n)
	for i, sid := range shardIDs(id, n) {
		out[i].Run, out[i].Shard, out[i].Of = id, i+1, n
		j, err := s.o.Catalog.Job(ctx, sid)
		if errors.Is(err, catalog.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i].Job = j
		var p ShardParams
		if err := json.Unmarshal(j.Params, &p); err != nil {
			return nil, fmt.Errorf("job %s: params: %w", sid, err)
		}
		out[i].Range = p.Range
	}
	return out, nil
}
