package scrub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/jobs"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// TestRunnerRun: Run checks every file of a run, records each, reports
// progress, and tallies what it found and repaired; it does not end the
// run, which is its caller's.
func TestRunnerRun(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.dataset("JGAD1", 4, 2)
	a := fx.file("JGAD1", "a", 3<<20+100)
	b := fx.file("JGAD1", "b", 2<<20)
	fx.removePiece(a, 1, 2)
	fx.removePiece(b, 0, 0)
	fx.removePiece(b, 0, 5)

	r := NewRunner(fx.options())
	rec := catalog.ScrubRun{ID: "scrub-1", Trigger: catalog.ScrubManual, StartedBy: "admin", DatasetID: "JGAD1", Repair: true}
	fx.create(rec)
	var calls [][2]int
	res, err := r.Run(ctx, rec, func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{0, 2}, {1, 2}, {2, 2}}; !slices.Equal(calls, want) {
		t.Fatalf("progress %v, want %v", calls, want)
	}
	sm := res.Summary
	if sm.Files != 2 || sm.FilesDone != 2 || sm.Found != 3 || sm.Missing != 3 || sm.Repaired != 3 || sm.FileErrors != 0 || len(res.Findings) != 0 {
		t.Fatalf("result %+v", res)
	}
	if got, err := fx.cat.ScrubRun(ctx, rec.ID); err != nil || got.State != catalog.ScrubRunning {
		t.Fatalf("run after Run: %+v %v", got, err)
	}
	// Repaired: a second run finds nothing.
	rec2 := catalog.ScrubRun{ID: "scrub-2", Trigger: catalog.ScrubManual, StartedBy: "admin", Deep: true}
	if err := fx.cat.EndScrubRun(ctx, rec.ID, catalog.ScrubDone, "", fx.now); err != nil {
		t.Fatal(err)
	}
	fx.create(rec2)
	res, err = r.Run(ctx, rec2, nil)
	if err != nil || res.Summary.Found != 0 || res.Summary.FilesDone != 2 || res.Summary.Pieces != res.Summary.PiecesTotal {
		t.Fatalf("after repair: %+v %v", res.Summary, err)
	}
	if n := <-fx.events; n.Action != "file.repair" || n.Actor != "admin" {
		t.Fatalf("event %+v", n)
	}
}

// TestRunnerRunStopsWithContext: a Run whose context ends returns its
// error, leaves the run running with no file judged, and a later Run of
// the same run checks every file.
func TestRunnerRunStopsWithContext(t *testing.T) {
	fx := newFixture(t)
	fx.dataset("JGAD1", 4, 2)
	a := fx.file("JGAD1", "a", 2<<20)
	fx.removePiece(a, 0, 1)
	r := NewRunner(fx.options())
	rec := catalog.ScrubRun{ID: "scrub-1", Trigger: catalog.ScrubManual, StartedBy: "admin", Deep: true}
	fx.create(rec)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, rec, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Run: %v", err)
	}
	if got := fx.tally(rec.ID); got.Summary.FilesDone != 0 {
		t.Fatalf("cancelled Run judged files: %+v", got.Summary)
	}
	res, err := r.Run(context.Background(), rec, nil)
	if err != nil || res.Summary.FilesDone != 1 || res.Summary.Found != 1 {
		t.Fatalf("resumed Run: %+v %v", res.Summary, err)
	}
}

// TestScrubResumesAfterRestart: a run left "running" by a previous dozod
// (one of its two files finished) continues at Start with the other file
// only.
func TestScrubResumesAfterRestart(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.dataset("JGAD4", 4, 2)
	a := fx.file("JGAD4", "a", 2<<20)
	b := fx.file("JGAD4", "b", 2<<20)
	fx.removePiece(a, 0, 0) // would be found if a were re-scrubbed
	fx.removePiece(b, 1, 2)
	cands, err := fx.cat.ScrubCandidates(ctx, "JGAD4", "")
	if err != nil || len(cands) != 2 || cands[0].FileID != a {
		t.Fatalf("candidates %+v %v", cands, err)
	}
	rec := catalog.ScrubRun{ID: "scrub-old", Trigger: catalog.ScrubManual, StartedBy: "admin", DatasetID: "JGAD4", StartedAt: fx.now}
	if err := fx.cat.CreateScrubRun(ctx, rec, cands); err != nil {
		t.Fatal(err)
	}
	if err := fx.cat.FinishScrubFile(ctx, rec.ID, 0, []byte(`{"file_id":"`+a+`","dataset":"JGAD4","name":"a","segments":3,"pieces":18,"bytes":1}`), fx.now); err != nil {
		t.Fatal(err)
	}
	// The catalog allows only one running run.
	if err := fx.cat.CreateScrubRun(ctx, catalog.ScrubRun{ID: "scrub-2", Trigger: catalog.ScrubManual, StartedBy: "x", StartedAt: fx.now}, nil); !errors.Is(err, catalog.ErrState) {
		t.Fatalf("second running run: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jr := jobs.New(fx.cat, "restarted")
	defer jr.Close()
	s := NewScheduler(fx.options(), jr)
	s.Start(sctx)
	r, res := fx.wait(rec.ID)
	if r.State != api.ScrubDone || res.Summary.FilesDone != 2 || res.Summary.Found != 1 || res.Findings[0].FileID != b {
		t.Fatalf("resumed run %+v findings %+v", res.Summary, res.Findings)
	}
	if e := <-fx.events; e.Action != "scrub.resume" || e.Object != "scrub/"+rec.ID {
		t.Fatalf("first event %+v", e)
	}
}

func TestScrubScheduled(t *testing.T) {
	fx := newFixture(t)
	o := fx.options()
	o.LightInterval, o.Repair, o.Tick = time.Hour, true, 5*time.Millisecond
	fx.dataset("JGAD5", 4, 2)
	f := fx.file("JGAD5", "a", 2<<20)
	fx.removePiece(f, 1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jr := jobs.New(fx.cat, "one")
	defer jr.Close()
	s := NewScheduler(o, jr)
	s.Start(ctx)
	deadline := time.Now().Add(30 * time.Second)
	var runs []catalog.ScrubRun
	for {
		var err error
		if runs, err = fx.cat.ScrubRuns(ctx, 20); err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].State == catalog.ScrubDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled run finished: %+v", runs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := runs[0]
	if res := fx.tally(r.ID); r.Trigger != "scheduled" || r.StartedBy != "dozod" || r.Deep || !r.Repair || res.Summary.Repaired != 1 {
		t.Fatalf("scheduled run %+v %+v", r, res.Summary)
	}
	// Not due again within the hour (the clock is frozen here).
	time.Sleep(50 * time.Millisecond)
	if runs, err := fx.cat.ScrubRuns(ctx, 20); err != nil || len(runs) != 1 {
		t.Fatalf("%d runs within one interval (%v)", len(runs), err)
	}
}

// TestScrubFailsClosedWithoutVault: manifests cannot be verified, so the
// run stops as failed; no file is judged, damaged or repaired.
func TestScrubFailsClosedWithoutVault(t *testing.T) {
	fx := newFixture(t)
	fx.dataset("JGAD6", 4, 2)
	f := fx.file("JGAD6", "a", 2<<20)
	for _, j := range []int{0, 1, 2} { // more than m: would be damaged
		fx.removePiece(f, 0, j)
	}
	fx.keys.SetUnavailable(true)
	jr := jobs.New(fx.cat, "one")
	defer jr.Close()
	s := NewScheduler(fx.options(), jr)
	rec := catalog.ScrubRun{ID: "scrub-1", Trigger: catalog.ScrubManual, StartedBy: "admin", Deep: true, Repair: true, StartedAt: fx.now}
	if err := s.Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	r, res := fx.wait(rec.ID)
	if r.State != api.ScrubFailed || !strings.Contains(r.Error, "vault unavailable") || res.Summary.FilesDone != 0 {
		t.Fatalf("run without vault: %s %q %+v", r.State, r.Error, res.Summary)
	}
	if got, _ := fx.cat.File(context.Background(), f); got.State != catalog.FileAvailable {
		t.Fatalf("file %s without vault", got.State)
	}
}

// TestScrubRepairMovesOffADownTarget: pieces on an unreachable target are
// rebuilt on other targets of other domains, the manifest re-signed and
// swapped in the catalog (segment rows too), and its copies on storage
// rewritten.
func TestScrubRepairMovesOffADownTarget(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	// 2+1 on six targets leaves three targets free in every segment.
	fx.dataset("JGAD2", 2, 1)
	f := fx.file("JGAD2", "x.cram", 4<<20+99)
	before := fx.manifest(f)
	down := before.Segments[0].Pieces[1].Target
	fx.off[down].Store(true)

	rec := catalog.ScrubRun{ID: "scrub-1", Trigger: catalog.ScrubManual, StartedBy: "admin", Deep: true, Repair: true}
	fx.create(rec)
	if _, err := NewRunner(fx.options()).Run(ctx, rec, nil); err != nil {
		t.Fatal(err)
	}
	r := fx.tally(rec.ID)
	moved := 0
	for _, fd := range r.Findings {
		if fd.Kind != api.FindingUnreachable || fd.Target != down || fd.Action != api.ActionRepaired || fd.MovedTo == "" || fd.MovedTo == down {
			t.Fatalf("finding %+v", fd)
		}
		moved++
	}
	if moved == 0 || r.Summary.Repaired != moved {
		t.Fatalf("summary %+v", r.Summary)
	}
	after := fx.manifest(f)
	if err := after.Verify(ctx, vault.TransitHMAC{Keys: fx.keys, Key: "dozo-JGAD2"}); err != nil {
		t.Fatalf("repaired manifest does not verify: %v", err)
	}
	if after.MAC == before.MAC {
		t.Fatal("manifest not re-signed")
	}
	domains := map[string]string{}
	for _, tg := range fx.dirs {
		domains[tg.ID()] = tg.Domain()
	}
	for i, s := range after.Segments {
		segs, err := fx.cat.Segment(ctx, f, i)
		if err != nil || fmt.Sprint(segs.Pieces) != fmt.Sprint(s.Pieces) {
			t.Fatalf("segment row %d disagrees with the manifest: %v", i, err)
		}
		perDomain := map[string]int{}
		for _, p := range s.Pieces {
			if p.Target == down {
				t.Fatalf("segment %d still uses %s", i, down)
			}
			perDomain[domains[p.Target]]++
		}
		for d, n := range perDomain {
			if n > 1 {
				t.Fatalf("segment %d: domain %s holds %d pieces with m=1", i, d, n)
			}
		}
	}
	// The stored manifest copies were rewritten too, and verify.
	copies := 0
	for _, tg := range fx.dirs {
		if tg.ID() == down {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tg.Dir(), storage.ManifestKey("JGAD2", f)))
		if err != nil {
			continue
		}
		m, err := storage.ParseManifest(b)
		if err != nil || m.MAC != after.MAC {
			t.Fatalf("manifest copy on %s is stale: %v", tg.ID(), err)
		}
		copies++
	}
	if copies < 2 {
		t.Fatalf("only %d manifest copies rewritten", copies)
	}
	if err := fx.cat.EndScrubRun(ctx, rec.ID, catalog.ScrubDone, "", fx.now); err != nil {
		t.Fatal(err)
	}
	// With the target still off, a deep scrub is clean: nothing needs it.
	again := catalog.ScrubRun{ID: "scrub-2", Trigger: catalog.ScrubManual, StartedBy: "admin", Deep: true}
	fx.create(again)
	if res, err := NewRunner(fx.options()).Run(ctx, again, nil); err != nil || res.Summary.Found != 0 {
		t.Fatalf("after moving: %+v %v", res.Summary, err)
	}
}

// staleLast is a catalog whose LastScrubStart answers as it did before
// another dozod recorded its scheduled run: the race of two dozods that
// both found the same run due.
type staleLast struct {
	*catalog.Catalog
	last time.Time
}

func (c staleLast) LastScrubStart(context.Context, string, bool) (time.Time, error) {
	return c.last, nil
}

// TestScheduledOnceAcrossDozods: two schedulers (each with its own job
// runner, as two dozods) on one catalog find the same scheduled run due;
// it is recorded and run once, even when the second decides after the
// first run has ended (so the one-scrub lock is free again).
func TestScheduledOnceAcrossDozods(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.dataset("JGAD7", 4, 2)
	fx.file("JGAD7", "a", 2<<20)
	o := fx.options()
	o.LightInterval = time.Hour
	last, err := fx.cat.LastScrubStart(ctx, catalog.ScrubScheduled, false)
	if err != nil {
		t.Fatal(err)
	}
	ja, jb := jobs.New(fx.cat, "replica-a"), jobs.New(fx.cat, "replica-b")
	defer ja.Close()
	defer jb.Close()
	a := NewScheduler(o, ja)
	ob := o
	ob.Catalog = staleLast{fx.cat, last}
	b := NewScheduler(ob, jb)

	a.schedule(ctx)
	runs, err := fx.cat.ScrubRuns(ctx, 20)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs after the first dozod: %+v %v", runs, err)
	}
	if r, _ := fx.wait(runs[0].ID); r.State != catalog.ScrubDone {
		t.Fatalf("scheduled run %+v", r)
	}
	b.schedule(ctx)
	runs, err = fx.cat.ScrubRuns(ctx, 20)
	if err != nil || len(runs) != 1 {
		t.Fatalf("%d scheduled runs for one slot (%v)", len(runs), err)
	}
	js, err := fx.cat.Jobs(ctx, catalog.JobFilter{Kind: Kind})
	if err != nil || len(js) != 1 || js[0].ID != runs[0].ID || js[0].Owner != "" || js[0].State != catalog.JobDone {
		t.Fatalf("scrub jobs %+v %v", js, err)
	}
}

// TestScrubJobTakenOver: a scrub job whose dozod died mid-run (its lease
// expired, one of two files done) is taken over by another runner, which
// checks only the file left and ends the run; the job records two
// attempts and the take-over is in the audit log.
func TestScrubJobTakenOver(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.dataset("JGAD8", 4, 2)
	a := fx.file("JGAD8", "a", 2<<20)
	b := fx.file("JGAD8", "b", 2<<20)
	fx.removePiece(a, 0, 0) // found only if a were checked again
	fx.removePiece(b, 0, 1)
	dead := jobs.New(fx.cat, "dead")
	dead.Close() // records and claims, runs nothing
	s := NewScheduler(fx.options(), dead)
	rec := catalog.ScrubRun{ID: "scrub-taken", Trigger: catalog.ScrubManual, StartedBy: "admin", DatasetID: "JGAD8", StartedAt: fx.now}
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	if _, err := fx.cat.ClaimJob(ctx, "dead", []string{Kind}, rec.ID, past.Add(-time.Minute), past); err != nil {
		t.Fatal(err)
	}
	if err := fx.cat.FinishScrubFile(ctx, rec.ID, 0, []byte(`{"file_id":"`+a+`","dataset":"JGAD8","name":"a","segments":3,"pieces":18,"bytes":1}`), fx.now); err != nil {
		t.Fatal(err)
	}
	// Asking again while the dead dozod's job is unfinished is refused.
	if err := s.Create(ctx, catalog.ScrubRun{ID: "scrub-other", Trigger: catalog.ScrubManual, StartedBy: "admin", StartedAt: fx.now}); !errors.Is(err, catalog.ErrState) {
		t.Fatalf("second scrub while one is unfinished: %v", err)
	}
	live := jobs.New(fx.cat, "live")
	defer live.Close()
	NewScheduler(fx.options(), live)
	if n, err := live.RunPending(ctx); err != nil || n != 1 {
		t.Fatalf("taken over %d jobs: %v", n, err)
	}
	j, err := live.Wait(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	r, res := fx.wait(rec.ID)
	if r.State != catalog.ScrubDone || res.Summary.FilesDone != 2 || res.Summary.Found != 1 || res.Findings[0].FileID != b {
		t.Fatalf("taken-over run %s %+v %+v", r.State, res.Summary, res.Findings)
	}
	if j.Attempts != 2 || j.ProgressDone != 2 || j.ProgressTotal != 2 {
		t.Fatalf("job %+v", j)
	}
	if e := <-fx.events; e.Action != "scrub.resume" || e.Object != "scrub/"+rec.ID {
		t.Fatalf("first event %+v", e)
	}
}
