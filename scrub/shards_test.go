package scrub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/jobs"
)

// dozods are n schedulers, each with its own job runner (as n dozods on
// one catalog), polling often.
func (fx *fixture) dozods(o Options, n int) ([]*Scheduler, []*jobs.Runner) {
	fx.t.Helper()
	var ss []*Scheduler
	var rs []*jobs.Runner
	for i := range n {
		jr := jobs.New(fx.cat, fmt.Sprintf("replica-%d", i))
		if err := jr.SetLease(time.Second); err != nil { // renewed, and cancels seen, every 333 ms
			fx.t.Fatal(err)
		}
		jr.Poll = 10 * time.Millisecond
		fx.t.Cleanup(jr.Close)
		ss = append(ss, NewScheduler(o, jr))
		rs = append(rs, jr)
	}
	for _, jr := range rs {
		jr.Start(context.Background())
	}
	return ss, rs
}

// endEvent returns the detail of the next scrub.run event.
func (fx *fixture) endEvent() Event {
	fx.t.Helper()
	for {
		select {
		case e := <-fx.events:
			if e.Action == "scrub.run" {
				return e
			}
		case <-time.After(30 * time.Second):
			fx.t.Fatal("no scrub.run event")
		}
	}
}

// TestShardedRunCombines: a run cut into shards on two dozods checks
// every file once and ends as the same run in one job does: the same
// tally, findings, job result and audit record, one run counted.
func TestShardedRunCombines(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.dataset("JGAD9", 4, 2)
	var ids []string
	for i := range 7 {
		ids = append(ids, fx.file("JGAD9", fmt.Sprintf("f%d", i), (1+i%3)<<20+i))
	}
	fx.removePiece(ids[1], 0, 0)
	fx.removePiece(ids[5], 1, 2)
	fx.removePiece(ids[6], 0, 4)

	run := func(id string, shards int) (Result, Event, []*Scheduler, *catalog.Job) {
		t.Helper()
		o := fx.options()
		o.Shards = shards
		ss, rs := fx.dozods(o, 2)
		rec := catalog.ScrubRun{ID: id, Trigger: catalog.ScrubManual, StartedBy: "admin", DatasetID: "JGAD9", Deep: true, StartedAt: fx.now}
		if err := ss[0].Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		j, err := rs[1].Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		r, res := fx.wait(id)
		if r.State != catalog.ScrubDone {
			t.Fatalf("run %s: %+v", id, r)
		}
		for _, jr := range rs { // these dozods take no part in the next run
			jr.Close()
		}
		return res, fx.endEvent(), ss, j
	}
	one, oneEvent, _, oneJob := run("scrub-one", 1)
	many, manyEvent, ss, manyJob := run("scrub-many", 3)

	if one.Summary != many.Summary || one.Summary.FilesDone != 7 || one.Summary.Found != 3 {
		t.Fatalf("summaries differ:\none   %+v\nshards %+v", one.Summary, many.Summary)
	}
	if fmt.Sprint(one.Findings) != fmt.Sprint(many.Findings) || fmt.Sprint(one.Errors) != fmt.Sprint(many.Errors) {
		t.Fatalf("findings differ:\none   %+v\nshards %+v", one.Findings, many.Findings)
	}
	manyEvent.Object = strings.Replace(manyEvent.Object, "scrub-many", "scrub-one", 1)
	if oneEvent != manyEvent {
		t.Fatalf("audit records differ:\none   %+v\nshards %+v", oneEvent, manyEvent)
	}
	if string(oneJob.Result) != strings.Replace(string(manyJob.Result), "scrub-many", "scrub-one", 1) {
		t.Fatalf("job results differ:\none   %s\nshards %s", oneJob.Result, manyJob.Result)
	}
	if manyJob.ProgressDone != 7 || manyJob.ProgressTotal != 7 || manyJob.Kind != Kind {
		t.Fatalf("run job %+v", manyJob)
	}

	// Every file once, in exactly one shard, and the shards' results add
	// up to the run's.
	shards, err := ss[0].Shards(ctx, "scrub-many")
	if err != nil || len(shards) != 3 {
		t.Fatalf("shards %+v %v", shards, err)
	}
	var files, pieces int64
	next := 0
	for i, sh := range shards {
		if sh.Job == nil || sh.Job.State != catalog.JobDone || sh.Shard != i+1 || sh.Of != 3 || sh.From != next || sh.To <= sh.From {
			t.Fatalf("shard %d: %+v %+v", i+1, sh, sh.Job)
		}
		next = sh.To
		var res ShardResult
		if err := json.Unmarshal(sh.Job.Result, &res); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.By, "replica-") || res.Summary.Files != sh.To-sh.From || res.Summary.FilesDone != res.Summary.Files {
			t.Fatalf("shard %d result %+v", i+1, res)
		}
		files += int64(res.Summary.FilesDone)
		pieces += res.Summary.Pieces
	}
	if next != 7 || files != 7 || pieces != many.Summary.Pieces {
		t.Fatalf("shards cover %d files, %d done, %d pieces; the run %+v", next, files, pieces, many.Summary)
	}
	fs, err := fx.cat.ScrubFiles(ctx, "scrub-many")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.DoneAt == nil {
			t.Fatalf("file %d not done", f.Seq)
		}
	}

	// Counters: the run counted once, its pieces once, across both.
	var runs, counted int64
	for _, s := range ss {
		snap := s.Snapshot()
		runs += snap.RunsCompleted
		counted += snap.PiecesCheckedTotal
	}
	if runs != 1 || counted != many.Summary.Pieces {
		t.Fatalf("counters: %d runs, %d pieces; want 1, %d", runs, counted, many.Summary.Pieces)
	}
	if oneShard, _ := ss[0].Shards(ctx, "scrub-one"); len(oneShard) != 0 {
		t.Fatalf("a run in one job has shards: %+v", oneShard)
	}
}

// TestShardedRunCancel: cancelling a sharded run stops every shard, on
// whichever dozod, and ends the run and every job cancelled; a shard
// cancelled on its own does the same.
func TestShardedRunCancel(t *testing.T) {
	for _, which := range []string{"run", "shard"} {
		t.Run(which, func(t *testing.T) {
			fx := newFixture(t)
			ctx := context.Background()
			fx.dataset("JGAD10", 4, 2)
			for i := range 4 {
				fx.file("JGAD10", fmt.Sprintf("f%d", i), 2<<20)
			}
			o := fx.options()
			o.Shards = 4
			ss, _ := fx.dozods(o, 2)
			// Paced: 64 KiB/s, so no file ends before the cancel.
			rec := catalog.ScrubRun{ID: "scrub-c", Trigger: catalog.ScrubManual, StartedBy: "admin", Deep: true, Rate: 64 << 10, StartedAt: fx.now}
			if err := ss[0].Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			// Wait for both dozods to run a shard.
			deadline := time.Now().Add(10 * time.Second)
			for {
				running := 0
				for _, id := range shardIDs(rec.ID, 4) {
					if j, err := fx.cat.Job(ctx, id); err == nil && j.State == catalog.JobRunning {
						running++
					}
				}
				if running == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d shards running, want 2 (one per dozod)", running)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if which == "run" {
				if err := ss[1].Cancel(ctx, rec.ID); err != nil {
					t.Fatal(err)
				}
			} else if _, err := fx.cat.CancelJob(ctx, ShardID(rec.ID, 2), time.Now()); err != nil {
				t.Fatal(err)
			}
			r, res := fx.wait(rec.ID)
			if r.State != catalog.ScrubCancelled || res.Summary.FilesDone != 0 {
				t.Fatalf("cancelled run %s %+v", r.State, res.Summary)
			}
			for _, id := range append(shardIDs(rec.ID, 4), rec.ID) {
				j, err := ss[0].jobs.Wait(ctx, id)
				if j == nil || j.State != catalog.JobCancelled {
					t.Fatalf("job %s after cancel: %+v %v", id, j, err)
				}
			}
			if e := fx.endEvent(); !strings.HasSuffix(e.Detail, ": cancelled: 0 files, 0 pieces, 0 bytes checked; 0 found, 0 repaired, 0 unrecoverable segments, 0 damaged files") {
				t.Fatalf("end event %+v", e)
			}
		})
	}
}

// TestShardFailureFailsRun: a shard that cannot go on (Vault down) fails
// the run with its error, as a run in one job fails; the other shards
// are stopped.
func TestShardFailureFailsRun(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.dataset("JGAD11", 4, 2)
	for i := range 3 {
		fx.file("JGAD11", fmt.Sprintf("f%d", i), 1<<20)
	}
	fx.keys.SetUnavailable(true)
	o := fx.options()
	o.Shards = 3
	ss, _ := fx.dozods(o, 2)
	rec := catalog.ScrubRun{ID: "scrub-f", Trigger: catalog.ScrubManual, StartedBy: "admin", StartedAt: fx.now}
	if err := ss[0].Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	r, res := fx.wait(rec.ID)
	if r.State != api.ScrubFailed || !strings.Contains(r.Error, "vault unavailable") || !strings.HasPrefix(r.Error, "shard ") || res.Summary.FilesDone != 0 {
		t.Fatalf("run without vault: %s %q %+v", r.State, r.Error, res.Summary)
	}
	j, err := ss[0].jobs.Wait(ctx, rec.ID)
	if j == nil || j.State != catalog.JobFailed || j.Error != r.Error {
		t.Fatalf("run job %+v %v", j, err)
	}
	for _, id := range shardIDs(rec.ID, 3) {
		if j, _ := ss[0].jobs.Wait(ctx, id); j == nil || (j.State != catalog.JobFailed && j.State != catalog.JobCancelled) {
			t.Fatalf("shard %s: %+v", id, j)
		}
	}
}

// TestShardTakenOver: a shard whose dozod died mid-shard (its lease
// expired, one of its files done) is taken over by another dozod, which
// checks only the file left; the run ends done with every file once.
func TestShardTakenOver(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.dataset("JGAD12", 4, 2)
	var ids []string
	for i := range 4 {
		ids = append(ids, fx.file("JGAD12", fmt.Sprintf("f%d", i), 1<<20))
	}
	fx.removePiece(ids[0], 0, 0) // found only if file 0 were checked again
	o := fx.options()
	o.Shards = 2
	dead := jobs.New(fx.cat, "dead")
	dead.Close() // records and claims, runs nothing
	s := NewScheduler(o, dead)
	rec := catalog.ScrubRun{ID: "scrub-t", Trigger: catalog.ScrubManual, StartedBy: "admin", StartedAt: fx.now}
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	if _, err := fx.cat.ClaimJob(ctx, "dead", []string{ShardKind}, ShardID(rec.ID, 1), past.Add(-time.Minute), past); err != nil {
		t.Fatal(err)
	}
	if err := fx.cat.FinishScrubFile(ctx, rec.ID, 0, []byte(`{"file_id":"`+ids[0]+`","dataset":"JGAD12","name":"f0","segments":1,"pieces":6,"bytes":1}`), fx.now); err != nil {
		t.Fatal(err)
	}
	_, rs := fx.dozods(o, 1)
	j, err := rs[0].Wait(ctx, ShardID(rec.ID, 1))
	if err != nil || j.Attempts != 2 || j.ProgressDone != 2 || j.ProgressTotal != 2 {
		t.Fatalf("taken-over shard %+v %v", j, err)
	}
	r, res := fx.wait(rec.ID)
	if r.State != catalog.ScrubDone || res.Summary.FilesDone != 4 || res.Summary.Found != 0 {
		t.Fatalf("run %s %+v", r.State, res.Summary)
	}
	for {
		e := <-fx.events
		if e.Action == "scrub.resume" {
			if !strings.Contains(e.Detail, "shard 1 of 2") || e.Object != "scrub/"+rec.ID {
				t.Fatalf("resume event %+v", e)
			}
			break
		}
	}
}

// TestShardsOfAnEndedJobCancelled: a sharded run whose own job ended
// without running (cancelled while queued) is ended by the scheduler's
// reconcile, and its shards with it; so is one cancelled through Cancel.
func TestShardsOfAnEndedJobCancelled(t *testing.T) {
	for _, how := range []string{"reconcile", "Cancel"} {
		t.Run(how, func(t *testing.T) {
			fx := newFixture(t)
			ctx := context.Background()
			fx.dataset("JGAD13", 4, 2)
			for i := range 3 {
				fx.file("JGAD13", fmt.Sprintf("f%d", i), 1<<20)
			}
			o := fx.options()
			o.Shards = 3
			idle := jobs.New(fx.cat, "idle")
			idle.Close() // records, runs nothing
			s := NewScheduler(o, idle)
			rec := catalog.ScrubRun{ID: "scrub-e", Trigger: catalog.ScrubManual, StartedBy: "admin", StartedAt: fx.now}
			if err := s.Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if how == "reconcile" {
				if _, err := fx.cat.CancelJob(ctx, rec.ID, time.Now()); err != nil {
					t.Fatal(err)
				}
				s.reconcile(ctx)
			} else if err := s.Cancel(ctx, rec.ID); err != nil {
				t.Fatal(err)
			}
			if r, _ := fx.cat.ScrubRun(ctx, rec.ID); r.State != catalog.ScrubCancelled {
				t.Fatalf("run %+v", r)
			}
			for _, id := range append(shardIDs(rec.ID, 3), rec.ID) {
				if j, err := fx.cat.Job(ctx, id); err != nil || j.State != catalog.JobCancelled {
					t.Fatalf("job %s: %+v %v", id, j, err)
				}
			}
		})
	}
}
