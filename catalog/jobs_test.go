package catalog

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestJobClaimLeaseFinish: a queued job is claimed by one owner only; its
// owner renews, records progress and finishes it; another owner can take
// it only once the lease has expired, after which the first owner can
// change nothing.
func TestJobClaimLeaseFinish(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	kinds := []string{"rotate-key"}
	if _, err := c.ClaimJob(ctx, "a", kinds, "", t0, t0.Add(time.Minute)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim with nothing queued: %v", err)
	}
	j := Job{ID: "j1", Kind: "rotate-key", DatasetID: "DS1", LockKey: "dataset/DS1", Params: []byte(`{"x":1}`), RequestedBy: "sam", CreatedAt: t0}
	if err := c.InsertJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	j2 := j
	j2.ID = "j2"
	if err := c.InsertJob(ctx, j2); !errors.Is(err, ErrExists) {
		t.Fatalf("second unfinished job on one lock key: %v", err)
	}
	if _, err := c.ClaimJob(ctx, "a", []string{"scrub"}, "", t0, t0.Add(time.Minute)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claimed a job of another kind: %v", err)
	}
	got, err := c.ClaimJob(ctx, "a", kinds, "", t0, t0.Add(time.Minute))
	if err != nil || got.ID != "j1" || got.State != JobRunning || got.Owner != "a" || got.Attempts != 1 ||
		!got.StartedAt.Equal(t0) || string(got.Params) != `{"x":1}` || got.RequestedBy != "sam" {
		t.Fatalf("claim: %+v %v", got, err)
	}
	if _, err := c.ClaimJob(ctx, "b", kinds, "", t0.Add(time.Second), t0.Add(time.Minute)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claimed a job under a live lease: %v", err)
	}
	if cancel, err := c.RenewJob(ctx, "j1", "a", t0.Add(2*time.Minute)); err != nil || cancel {
		t.Fatalf("renew: %v %v", cancel, err)
	}
	if err := c.JobProgress(ctx, "j1", "a", 3, 10, "rewrapping"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClaimJob(ctx, "b", kinds, "j1", t0.Add(time.Minute+time.Second), t0.Add(3*time.Minute)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claimed a renewed lease: %v", err)
	}
	// The lease expires: b takes the job over, a can no longer touch it.
	got, err = c.ClaimJob(ctx, "b", kinds, "j1", t0.Add(2*time.Minute+time.Second), t0.Add(5*time.Minute))
	if err != nil || got.Owner != "b" || got.Attempts != 2 || !got.StartedAt.Equal(t0) || got.ProgressDone != 3 || got.ProgressTotal != 10 {
		t.Fatalf("take-over: %+v %v", got, err)
	}
	if _, err := c.RenewJob(ctx, "j1", "a", t0.Add(time.Hour)); !errors.Is(err, ErrState) {
		t.Fatalf("renew by the old owner: %v", err)
	}
	if err := c.JobProgress(ctx, "j1", "a", 9, 10, ""); !errors.Is(err, ErrState) {
		t.Fatalf("progress by the old owner: %v", err)
	}
	if err := c.FinishJob(ctx, "j1", "a", JobDone, "", nil, t0); !errors.Is(err, ErrState) {
		t.Fatalf("finish by the old owner: %v", err)
	}
	if err := c.FinishJob(ctx, "j1", "b", JobDone, "", []byte(`{"ok":true}`), t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = c.Job(ctx, "j1")
	if got.State != JobDone || got.Owner != "" || got.LeaseUntil != nil || string(got.Result) != `{"ok":true}` || !got.EndedAt.Equal(t0.Add(4*time.Minute)) || !got.Finished() {
		t.Fatalf("finished: %+v", got)
	}
	if _, err := c.UnfinishedJob(ctx, "dataset/DS1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unfinished after finish: %v", err)
	}
	// The lock key is free again.
	if err := c.InsertJob(ctx, j2); err != nil {
		t.Fatal(err)
	}
	if u, err := c.UnfinishedJob(ctx, "dataset/DS1"); err != nil || u.ID != "j2" {
		t.Fatalf("unfinished: %+v %v", u, err)
	}
}

// TestJobCancelReleaseList: a queued job is cancelled at once and never
// claimed; a running one is marked, and its owner learns it on renewal; a
// released job is claimable again at once; lists filter by dataset, kind
// and state.
func TestJobCancelReleaseList(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	kinds := []string{"delete-dataset", "expire-uploads"}
	for i, j := range []Job{
		{ID: "q", Kind: "delete-dataset", DatasetID: "DS1", RequestedBy: "sam"},
		{ID: "r", Kind: "delete-dataset", DatasetID: "DS2", RequestedBy: "sam"},
		{ID: "e", Kind: "expire-uploads", RequestedBy: "dozod"},
	} {
		j.CreatedAt = t0.Add(time.Duration(i) * time.Second)
		if err := c.InsertJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if j, err := c.CancelJob(ctx, "q", t0); err != nil || j.State != JobCancelled || !j.CancelRequested || j.EndedAt == nil {
		t.Fatalf("cancel queued: %+v %v", j, err)
	}
	if _, err := c.CancelJob(ctx, "q", t0); !errors.Is(err, ErrState) {
		t.Fatalf("cancel twice: %v", err)
	}
	if _, err := c.CancelJob(ctx, "nope", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
	r, err := c.ClaimJob(ctx, "a", kinds, "", t0, t0.Add(time.Minute))
	if err != nil || r.ID != "r" {
		t.Fatalf("claim skips the cancelled job: %+v %v", r, err)
	}
	if j, err := c.CancelJob(ctx, "r", t0); err != nil || j.State != JobRunning || !j.CancelRequested {
		t.Fatalf("cancel running: %+v %v", j, err)
	}
	if cancel, err := c.RenewJob(ctx, "r", "a", t0.Add(time.Minute)); err != nil || !cancel {
		t.Fatalf("renewal does not tell the cancel: %v %v", cancel, err)
	}
	if err := c.FinishJob(ctx, "r", "a", JobCancelled, "cancelled", nil, t0); err != nil {
		t.Fatal(err)
	}
	e, err := c.ClaimJob(ctx, "a", kinds, "", t0, t0.Add(time.Minute))
	if err != nil || e.ID != "e" {
		t.Fatalf("claim: %+v %v", e, err)
	}
	if err := c.ReleaseJob(ctx, "e", "a"); err != nil {
		t.Fatal(err)
	}
	if e, err := c.ClaimJob(ctx, "b", kinds, "", t0, t0.Add(time.Minute)); err != nil || e.ID != "e" || e.Attempts != 2 {
		t.Fatalf("released job not claimable at once: %+v %v", e, err)
	}
	// sam made both datasets; ana is DS1's custodian by name, cleo
	// DS2's by entity; rita only submits to DS2.
	mkDataset(t, c, "DS1")
	mkDataset(t, c, "DS2")
	for _, m := range [][4]string{{"DS1", "ana", "", RoleCustodian}, {"DS2", "cleo", "ent-cleo", RoleCustodian}, {"DS2", "rita", "", RoleSubmitter}} {
		if err := c.AddMember(ctx, m[0], m[1], m[2], m[3], "admin", t0); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(f JobFilter) string {
		js, err := c.Jobs(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, j := range js {
			s += j.ID
		}
		return s
	}
	for _, tc := range []struct {
		f    JobFilter
		want string
	}{
		{JobFilter{}, "erq"},
		{JobFilter{DatasetIDs: []string{"DS1", "DS2"}}, "rq"},
		{JobFilter{DatasetIDs: []string{}}, ""},
		{JobFilter{Kind: "expire-uploads"}, "e"},
		{JobFilter{State: JobCancelled}, "rq"},
		{JobFilter{Limit: 1}, "e"},
		{JobFilter{CustodianOf: &Principal{Name: "sam"}, Limit: 1}, "r"},
		{JobFilter{CustodianOf: &Principal{Name: "ana"}}, "q"},
		{JobFilter{CustodianOf: &Principal{Name: "ana"}, Limit: 1}, "q"},
		{JobFilter{CustodianOf: &Principal{Name: "cleo", EntityID: "ent-cleo"}, Limit: 1}, "r"},
		{JobFilter{CustodianOf: &Principal{Name: "cleo", EntityID: "ent-other"}}, ""},
		{JobFilter{CustodianOf: &Principal{Name: "rita"}}, ""},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}

// TestScrubRunJobAtomicAndPrune: a scrub run is recorded with its job or
// not at all (a taken job id or lock key, or another running run, leaves
// nothing); PruneJobs deletes finished jobs ended before the cut only.
func TestScrubRunJobAtomicAndPrune(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	job := func(id string) Job {
		return Job{ID: id, Kind: "scrub", LockKey: "scrub", Params: []byte(`{"run":"` + id + `"}`), RequestedBy: "admin", CreatedAt: t0}
	}
	run := func(id string) ScrubRun {
		return ScrubRun{ID: id, Trigger: ScrubManual, StartedBy: "admin", StartedAt: t0}
	}
	if err := c.CreateScrubRunJob(ctx, run("scrub-1"), nil, job("scrub-1")); err != nil {
		t.Fatal(err)
	}
	// The lock key is held: neither run nor job is recorded.
	if err := c.CreateScrubRunJob(ctx, run("scrub-2"), nil, job("scrub-2")); !errors.Is(err, ErrExists) {
		t.Fatalf("second scrub job: %v", err)
	}
	if _, err := c.ScrubRun(ctx, "scrub-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run of a refused job recorded: %v", err)
	}
	// A running run (of no job) refuses a new one: its job is not kept.
	j := job("scrub-3")
	j.LockKey = ""
	if err := c.CreateScrubRunJob(ctx, run("scrub-3"), nil, j); !errors.Is(err, ErrState) {
		t.Fatalf("scrub while one runs: %v", err)
	}
	if _, err := c.Job(ctx, "scrub-3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("job of a refused run recorded: %v", err)
	}
	// The same id again (a schedule slot another dozod took): refused.
	if err := c.EndScrubRun(ctx, "scrub-1", ScrubDone, "", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClaimJob(ctx, "a", []string{"scrub"}, "scrub-1", t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishJob(ctx, "scrub-1", "a", JobDone, "", nil, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateScrubRunJob(ctx, run("scrub-1"), nil, job("scrub-1")); !errors.Is(err, ErrExists) {
		t.Fatalf("a run id taken: %v", err)
	}

	if err := c.InsertJob(ctx, Job{ID: "queued", Kind: "rotate-key", RequestedBy: "sam", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.PruneJobs(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("pruned %d ending at the cut: %v", n, err)
	}
	if n, err := c.PruneJobs(ctx, t0.Add(time.Hour+time.Second)); err != nil || n != 1 {
		t.Fatalf("pruned %d: %v", n, err)
	}
	if js, err := c.Jobs(ctx, JobFilter{}); err != nil || len(js) != 1 || js[0].ID != "queued" {
		t.Fatalf("jobs left %+v %v", js, err)
	}
	if r, err := c.ScrubRun(ctx, "scrub-1"); err != nil || r.State != ScrubDone {
		t.Fatalf("the run outlives its job: %+v %v", r, err)
	}
}

// TestScrubRunShardJobs: a run's shard jobs are recorded with it or not
// at all, and ScrubFileRange reads one shard's part of the run.
func TestScrubRunShardJobs(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	run := ScrubRun{ID: "scrub-1", Trigger: ScrubManual, StartedBy: "admin", StartedAt: t0}
	var files []ScrubCandidate
	for i := range 5 {
		files = append(files, ScrubCandidate{FileID: fmt.Sprintf("f%d", i), Pieces: 6, Bytes: 42})
	}
	job := Job{ID: "scrub-1", Kind: "scrub", LockKey: "scrub", RequestedBy: "admin", CreatedAt: t0}
	shard := func(id string) Job { return Job{ID: id, Kind: "scrub-shard", RequestedBy: "admin", CreatedAt: t0} }
	// A shard id taken: nothing is recorded, not the run, not its job.
	if err := c.InsertJob(ctx, shard("scrub-1.2")); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateScrubRunJob(ctx, run, files, job, shard("scrub-1.1"), shard("scrub-1.2")); !errors.Is(err, ErrExists) {
		t.Fatalf("shard id taken: %v", err)
	}
	for _, id := range []string{"scrub-1", "scrub-1.1"} {
		if _, err := c.Job(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("job %s of a refused run recorded: %v", id, err)
		}
	}
	if _, err := c.ScrubRun(ctx, "scrub-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused run recorded: %v", err)
	}
	if err := c.CreateScrubRunJob(ctx, run, files, job, shard("scrub-1.1"), shard("scrub-1.3")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"scrub-1", "scrub-1.1", "scrub-1.3"} {
		if j, err := c.Job(ctx, id); err != nil || j.State != JobQueued {
			t.Fatalf("job %s: %+v %v", id, j, err)
		}
	}
	if err := c.FinishScrubFile(ctx, "scrub-1", 3, []byte(`{}`), t0); err != nil {
		t.Fatal(err)
	}
	got, err := c.ScrubFileRange(ctx, "scrub-1", 2, 4)
	if err != nil || len(got) != 2 || got[0].Seq != 2 || got[0].FileID != "f2" || got[1].Seq != 3 || got[1].DoneAt == nil {
		t.Fatalf("files 2..3: %+v %v", got, err)
	}
	if got, err := c.ScrubFileRange(ctx, "scrub-1", 5, 9); err != nil || len(got) != 0 {
		t.Fatalf("files past the end: %+v %v", got, err)
	}
}
