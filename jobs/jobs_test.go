package jobs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/catalog"
)

func openCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newRunner(t *testing.T, c *catalog.Catalog, owner string) *Runner {
	r := New(c, owner)
	t.Cleanup(r.Close)
	return r
}

// TestSubmitRunsAndRecords: a submitted job runs at once; its progress,
// result and end are recorded; Wait returns the record.
func TestSubmitRunsAndRecords(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	r := newRunner(t, c, "a")
	r.Register("count", func(ctx context.Context, task *Task) (any, error) {
		var p struct{ N int64 }
		if err := task.Decode(&p); err != nil {
			return nil, err
		}
		for i := range p.N {
			task.Progress(i+1, p.N, "counting")
		}
		return map[string]int64{"counted": p.N}, nil
	})
	j, err := r.Submit(ctx, Spec{Kind: "count", DatasetID: "DS1", Params: map[string]int{"N": 5}, RequestedBy: "sam"})
	if err != nil {
		t.Fatal(err)
	}
	j, err = r.Wait(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != catalog.JobDone || string(j.Result) != `{"counted":5}` || j.ProgressDone != 5 || j.ProgressTotal != 5 ||
		j.ProgressNote != "counting" || j.RequestedBy != "sam" || j.DatasetID != "DS1" || j.StartedAt == nil || j.EndedAt == nil || j.Owner != "" {
		t.Fatalf("job: %+v", j)
	}

	r.Register("fail", func(context.Context, *Task) (any, error) { return nil, errSentinel })
	j, _ = r.Submit(ctx, Spec{Kind: "fail", RequestedBy: "sam"})
	if j, err = r.Wait(ctx, j.ID); !errors.Is(err, errSentinel) || j.State != catalog.JobFailed || j.Error != errSentinel.Error() {
		t.Fatalf("failed job: %+v %v", j, err)
	}
}

var errSentinel = errors.New("the target is down")

// TestLockKeyBusy: a second job on the lock key of an unfinished one is
// refused; once the first ends, the key is free.
func TestLockKeyBusy(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	r := newRunner(t, c, "a")
	release := make(chan struct{})
	r.Register("hold", func(ctx context.Context, _ *Task) (any, error) { <-release; return nil, nil })
	j, err := r.Submit(ctx, Spec{Kind: "hold", LockKey: "dataset/DS1", RequestedBy: "sam"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Submit(ctx, Spec{Kind: "hold", LockKey: "dataset/DS1", RequestedBy: "sam"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second job on a held key: %v", err)
	}
	close(release)
	if _, err := r.Wait(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Submit(ctx, Spec{Kind: "hold", LockKey: "dataset/DS1", RequestedBy: "sam"}); err != nil {
		t.Fatalf("key not freed: %v", err)
	}
}

// TestClaimExclusive: two runners with different owners on one catalog,
// claiming the same jobs at once, never run one job twice.
func TestClaimExclusive(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	var mu sync.Mutex
	ranBy := map[string][]string{}
	var wg sync.WaitGroup
	const n = 40
	wg.Add(n)
	handler := func(owner string) Handler {
		return func(_ context.Context, task *Task) (any, error) {
			mu.Lock()
			ranBy[task.ID] = append(ranBy[task.ID], owner)
			mu.Unlock()
			wg.Done()
			return nil, nil
		}
	}
	ra, rb := newRunner(t, c, "a"), newRunner(t, c, "b")
	ra.Register("work", handler("a"))
	rb.Register("work", handler("b"))
	// Recorded by a third party, so neither runner starts them on Submit.
	for i := range n {
		if err := c.InsertJob(ctx, catalog.Job{ID: fmt.Sprintf("j%02d", i), Kind: "work", RequestedBy: "dozod", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var claimers sync.WaitGroup
	for _, r := range []*Runner{ra, rb} {
		claimers.Add(1)
		go func() {
			defer claimers.Done()
			if _, err := r.RunPending(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	claimers.Wait()
	wg.Wait()
	if len(ranBy) != n {
		t.Fatalf("%d jobs ran, want %d", len(ranBy), n)
	}
	for id, owners := range ranBy {
		if len(owners) != 1 {
			t.Errorf("job %s ran %d times: %v", id, len(owners), owners)
		}
	}
}

// TestExpiredLeaseTakenOver: a job whose runner stopped renewing (as if
// it died) is claimed by another runner only after its lease expired; it
// resumes from the recorded progress, and the first runner can no longer
// record anything on it.
func TestExpiredLeaseTakenOver(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	clock := time.Now()
	ra := newRunner(t, c, "a")
	ra.Lease = time.Hour // no renewal during the test: a runner that hangs
	aStarted, aRelease := make(chan struct{}), make(chan struct{})
	ra.Register("work", func(ctx context.Context, task *Task) (any, error) {
		task.Progress(3, 10, "part done")
		close(aStarted)
		<-aRelease
		return "a", nil
	})
	j, err := ra.Submit(ctx, Spec{Kind: "work", RequestedBy: "dozod"})
	if err != nil {
		t.Fatal(err)
	}
	<-aStarted

	rb := newRunner(t, c, "b")
	var resumedAt int64
	rb.Register("work", func(ctx context.Context, task *Task) (any, error) {
		resumedAt = task.ProgressDone
		return "b", nil
	})
	rb.Now = func() time.Time { return clock.Add(30 * time.Minute) }
	if n, err := rb.RunPending(ctx); err != nil || n != 0 {
		t.Fatalf("claimed under a live lease: %d %v", n, err)
	}
	rb.Now = func() time.Time { return clock.Add(2 * time.Hour) }
	if n, err := rb.RunPending(ctx); err != nil || n != 1 {
		t.Fatalf("expired lease not taken over: %d %v", n, err)
	}
	got, err := rb.Wait(ctx, j.ID)
	if err != nil || got.State != catalog.JobDone || string(got.Result) != `"b"` || got.Attempts != 2 || resumedAt != 3 {
		t.Fatalf("take-over: %+v %v (resumed at %d)", got, err, resumedAt)
	}
	close(aRelease) // a wakes up: its end is not recorded
	if _, err := ra.Wait(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Job(ctx, j.ID); string(got.Result) != `"b"` {
		t.Fatalf("the old owner overwrote the result: %s", got.Result)
	}
}

// TestCancel: a running job's context is cancelled with ErrCancelled,
// whether the cancel is asked of its runner or of another one (through
// the catalog, read at lease renewal); the job ends cancelled.
func TestCancel(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	for _, via := range []string{"own runner", "other runner"} {
		t.Run(via, func(t *testing.T) {
			ra := newRunner(t, c, "a")
			ra.Lease = 300 * time.Millisecond // renewals, which carry the cancel, every 100ms
			started := make(chan struct{})
			ra.Register("wait", func(ctx context.Context, _ *Task) (any, error) {
				close(started)
				<-ctx.Done()
				if !errors.Is(context.Cause(ctx), ErrCancelled) {
					return nil, fmt.Errorf("cause %v", context.Cause(ctx))
				}
				return nil, ctx.Err()
			})
			j, err := ra.Submit(ctx, Spec{Kind: "wait", RequestedBy: "sam"})
			if err != nil {
				t.Fatal(err)
			}
			<-started
			canceller := ra
			if via == "other runner" {
				canceller = newRunner(t, c, "b")
			}
			if _, err := canceller.Cancel(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			got, err := ra.Wait(ctx, j.ID)
			if !errors.Is(err, ErrCancelled) || got.State != catalog.JobCancelled || !got.CancelRequested {
				t.Fatalf("%+v %v", got, err)
			}
			if _, err := canceller.Cancel(ctx, j.ID); !errors.Is(err, catalog.ErrState) {
				t.Fatalf("cancel of an ended job: %v", err)
			}
		})
	}
}

// TestResumeAfterClose: a runner closed mid-job puts the job back in the
// queue; the next runner (a restarted dozod) resumes it at once, with the
// progress recorded before.
func TestResumeAfterClose(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	ra := New(c, "a")
	started := make(chan struct{})
	ra.Register("rotate", func(ctx context.Context, task *Task) (any, error) {
		task.Progress(4, 9, "rewrapped 4 of 9")
		close(started)
		<-ctx.Done()
		return nil, context.Cause(ctx)
	})
	j, err := ra.Submit(ctx, Spec{Kind: "rotate", RequestedBy: "sam"})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	ra.Close()
	if got, _ := c.Job(ctx, j.ID); got.State != catalog.JobQueued || got.Owner != "" || got.ProgressDone != 4 {
		t.Fatalf("after close: %+v", got)
	}

	rb := newRunner(t, c, "b")
	var from int64 = -1
	rb.Register("rotate", func(ctx context.Context, task *Task) (any, error) {
		from = task.ProgressDone
		task.Progress(9, 9, "rewrapped 9 of 9")
		return nil, nil
	})
	if n, err := rb.RunPending(ctx); err != nil || n != 1 {
		t.Fatalf("resume: %d %v", n, err)
	}
	got, err := rb.Wait(ctx, j.ID)
	if err != nil || got.State != catalog.JobDone || from != 4 || got.ProgressDone != 9 || got.Attempts != 2 {
		t.Fatalf("resumed: %+v %v (from %d)", got, err, from)
	}
}

// TestCancelledThenOrphaned: a running job whose cancel was asked for and
// whose runner then died is ended cancelled by the runner that takes it
// over, without running it again.
func TestCancelledThenOrphaned(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	if err := c.InsertJob(ctx, catalog.Job{ID: "j", Kind: "work", RequestedBy: "sam", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := c.ClaimJob(ctx, "dead", []string{"work"}, "j", now, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelJob(ctx, "j", now); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, c, "b")
	ran := false
	r.Register("work", func(context.Context, *Task) (any, error) { ran = true; return nil, nil })
	r.Now = func() time.Time { return now.Add(time.Minute) }
	if n, err := r.RunPending(ctx); err != nil || n != 1 {
		t.Fatalf("orphan not taken: %d %v", n, err)
	}
	if got, _ := c.Job(ctx, "j"); got.State != catalog.JobCancelled || ran {
		t.Fatalf("orphan: %+v (ran %v)", got, ran)
	}
}

// TestSubmitOnceByID: two runners (two dozods) submitting the same work
// under one id record and run it once, even when the second submits after
// the first job has ended; the second is ErrBusy and records nothing. An
// Insert hook records the job with what belongs to it, or nothing.
func TestSubmitOnceByID(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	ran := 0
	var mu sync.Mutex
	h := func(context.Context, *Task) (any, error) { mu.Lock(); ran++; mu.Unlock(); return nil, nil }
	a, b := newRunner(t, c, "a"), newRunner(t, c, "b")
	a.Register("tick", h)
	b.Register("tick", h)
	j, err := a.Submit(ctx, Spec{ID: "job-tick-1", Kind: "tick", RequestedBy: "dozod"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, Spec{ID: "job-tick-1", Kind: "tick", RequestedBy: "dozod"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second submit of one id: %v", err)
	}
	if js, err := c.Jobs(ctx, catalog.JobFilter{Kind: "tick"}); err != nil || len(js) != 1 || ran != 1 {
		t.Fatalf("%d jobs, ran %d times (%v)", len(js), ran, err)
	}
	var inserted []string
	insert := func(ctx context.Context, j Job) error {
		inserted = append(inserted, j.ID)
		if j.ID == "job-refused" {
			return fmt.Errorf("the run exists: %w", catalog.ErrExists)
		}
		return c.InsertJob(ctx, j)
	}
	if _, err := a.Submit(ctx, Spec{ID: "job-refused", Kind: "tick", RequestedBy: "dozod", Insert: insert}); !errors.Is(err, ErrBusy) {
		t.Fatalf("insert refused: %v", err)
	}
	if _, err := c.Job(ctx, "job-refused"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("refused job recorded: %v", err)
	}
	if _, err := a.Submit(ctx, Spec{ID: "job-hooked", Kind: "tick", RequestedBy: "dozod", Insert: insert}); err != nil || len(inserted) != 2 {
		t.Fatalf("hooked insert: %v %v", inserted, err)
	}
}

// TestSetLease: a lease is bounded; the poll follows a short one.
func TestSetLease(t *testing.T) {
	r := newRunner(t, openCatalog(t), "a")
	if err := r.SetLease(3 * time.Second); err != nil || r.Lease != 3*time.Second || r.Poll != time.Second {
		t.Fatalf("3s lease: %v %v %v", r.Lease, r.Poll, err)
	}
	if err := r.SetLease(0); err != nil || r.Lease != DefaultLease || r.Poll != DefaultPoll {
		t.Fatalf("default lease: %v %v %v", r.Lease, r.Poll, err)
	}
	for _, bad := range []time.Duration{time.Millisecond, -time.Second, time.Hour} {
		if err := r.SetLease(bad); err == nil || r.Lease != DefaultLease {
			t.Errorf("lease %v: %v (lease now %v)", bad, err, r.Lease)
		}
	}
}

// TestRegisterLimit: a runner runs at most its limit of a kind at a time
// and leaves the rest queued for other runners; when one ends it takes
// the next at once (not at its next poll).
func TestRegisterLimit(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	a, b := newRunner(t, c, "a"), newRunner(t, c, "b")
	a.Poll, b.Poll = time.Hour, time.Hour // only wake-ups claim after the first round
	release := make(chan struct{})
	var mu sync.Mutex
	running := map[string]int{}
	most := map[string]int{}
	hold := func(owner string) Handler {
		return func(ctx context.Context, _ *Task) (any, error) {
			mu.Lock()
			running[owner]++
			most[owner] = max(most[owner], running[owner])
			mu.Unlock()
			defer func() { mu.Lock(); running[owner]--; mu.Unlock() }()
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return nil, nil
		}
	}
	a.RegisterLimit("part", hold("a"), 1)
	b.RegisterLimit("part", hold("b"), 1)
	var ids []string
	for i := range 4 {
		id := fmt.Sprintf("part-%d", i)
		if err := c.InsertJob(ctx, catalog.Job{ID: id, Kind: "part", RequestedBy: "sam", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, r := range []*Runner{a, b} {
		if n, err := r.RunPending(ctx); err != nil || n != 1 {
			t.Fatalf("runner %s started %d jobs: %v", r.Owner(), n, err)
		}
		r.Start(ctx)
	}
	close(release)
	owners := map[string]bool{}
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		j, err := a.Wait(wctx, id)
		cancel()
		if err != nil || j.State != catalog.JobDone {
			t.Fatalf("job %s: %+v %v", id, j, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for owner, n := range most {
		owners[owner] = true
		if n > 1 {
			t.Fatalf("runner %s ran %d jobs at once", owner, n)
		}
	}
	if !owners["a"] || !owners["b"] {
		t.Fatalf("jobs ran on %v, want both runners", owners)
	}
}
