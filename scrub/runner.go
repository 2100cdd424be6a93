package scrub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// Runner executes scrub runs recorded in the catalog. It keeps counters
// of the work done since it was made (Snapshot); it does not decide how a
// run ends: that is its caller's (the Scheduler's job handler), which
// records it with End.
type Runner struct {
	o       Options
	targets map[string]storage.Target
	totals  counters

	mu  sync.Mutex
	cur *current // the run executing in this process, if any
}

// current is a run executing in this process.
type current struct {
	rec  catalog.ScrubRun
	live *live
}

// NewRunner returns a Runner over o's catalog, keys and targets.
func NewRunner(o Options) *Runner {
	o.defaults()
	r := &Runner{o: o, targets: make(map[string]storage.Target, len(o.Targets))}
	for _, t := range o.Targets {
		r.targets[t.ID()] = t
	}
	r.totals.found = map[string]int64{}
	return r
}

// FileResult is what one file's scrub found and did; stored as JSON in
// the catalog (catalog.ScrubFile.Result).
type FileResult struct {
	FileID        string                   `json:"file_id"`
	Dataset       string                   `json:"dataset"`
	Name          string                   `json:"name"`
	Segments      int64                    `json:"segments"`
	Pieces        int64                    `json:"pieces"`
	Bytes         int64                    `json:"bytes"`
	Findings      []api.ScrubFinding       `json:"findings,omitempty"`
	Unrecoverable []api.ScrubUnrecoverable `json:"unrecoverable,omitempty"`
	Damaged       bool                     `json:"damaged,omitempty"`
	Error         string                   `json:"error,omitempty"`
}

// live is the progress of the run executing, read by other goroutines.
type live struct {
	mu      sync.Mutex
	current string // dataset/name of the file being checked
	files   int
	done    int // files finished
	pieces  atomic.Int64
	bytes   atomic.Int64
	report  func(done, total int) // nil: none
}

func (l *live) setCurrent(s string) {
	l.mu.Lock()
	l.current = s
	l.mu.Unlock()
}

// Run executes run (new, or resumed after a restart) until every file it
// lists is checked, calling progress (if not nil) with the files done and
// the total at the start and after each file. Each finished file is
// recorded in the catalog at once, so a run stopped at any point resumes
// with the files not yet done.
//
// Run does not end the run in the catalog. When ctx ends it returns
// ctx.Err() and the run stays as it is, to be resumed or ended by the
// caller. Any other error means the run cannot go on: Vault or the
// catalog unreachable (a scrub fails closed rather than judge files by an
// unverified manifest). The Result tallies every finished file of the run,
// findings left out.
//
// Run does not check that no other run executes: the catalog allows one
// running run, and the job runner one unfinished scrub job.
func (r *Runner) Run(ctx context.Context, run catalog.ScrubRun, progress func(done, total int)) (Result, error) {
	return r.runFiles(ctx, run, func(ctx context.Context) ([]catalog.ScrubFile, error) {
		return r.o.Catalog.ScrubFiles(ctx, run.ID)
	}, progress)
}

// RunShard is Run for one shard of run: the files in rg only. Its Result
// tallies the shard's files; progress counts them.
func (r *Runner) RunShard(ctx context.Context, run catalog.ScrubRun, rg Range, progress func(done, total int)) (Result, error) {
	return r.runFiles(ctx, run, func(ctx context.Context) ([]catalog.ScrubFile, error) {
		return r.o.Catalog.ScrubFileRange(ctx, run.ID, rg.From, rg.To)
	}, progress)
}

// runFiles is Run over the files load returns.
func (r *Runner) runFiles(ctx context.Context, run catalog.ScrubRun, load func(context.Context) ([]catalog.ScrubFile, error), progress func(done, total int)) (Result, error) {
	c := &current{rec: run, live: &live{report: progress}}
	r.mu.Lock()
	r.cur = c
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.cur == c {
			r.cur = nil
		}
		r.mu.Unlock()
	}()
	stopped, err := r.run(ctx, run, load, c.live)
	if err != nil {
		return Result{}, err
	}
	if stopped {
		return Result{}, ctx.Err()
	}
	files, err := load(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("reading the run's files: %w", err)
	}
	return Tally(files, false)
}

// End records how run ended (catalog.ScrubDone, ScrubFailed or
// ScrubCancelled, with msg) in the catalog, the counters and the audit
// log. Ending a run that is no longer running changes nothing.
func (r *Runner) End(ctx context.Context, run catalog.ScrubRun, state, msg string) {
	now := r.o.Now()
	if err := r.o.Catalog.EndScrubRun(ctx, run.ID, state, msg, now); errors.Is(err, catalog.ErrState) {
		return
	} else if err != nil {
		r.o.Logger.Error("scrub: recording the end of a run", "run", run.ID, "error", err.Error())
	}
	r.totals.countEnd(state, now)
	result, detail := "ok", Describe(run)+": "+state
	if files, err := r.o.Catalog.ScrubFiles(ctx, run.ID); err == nil {
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
	r.o.record(ctx, run.StartedBy, "scrub.run", "scrub/"+run.ID, result, detail)
	r.o.Logger.Info("scrub finished", "run", run.ID, "state", state, "detail", detail)
}

// Progress is the live progress of run id if it executes here: the file
// being checked, and the pieces and bytes of it checked so far (not yet
// in the catalog).
func (r *Runner) Progress(id string) (current string, pieces, bytes int64, ok bool) {
	r.mu.Lock()
	c := r.cur
	r.mu.Unlock()
	if c == nil || c.rec.ID != id {
		return "", 0, 0, false
	}
	c.live.mu.Lock()
	current = c.live.current
	c.live.mu.Unlock()
	return current, c.live.pieces.Load(), c.live.bytes.Load(), true
}

// Snapshot returns the progress of the run executing here and the
// counters since the Runner was made; safe to call from any goroutine.
func (r *Runner) Snapshot() Snapshot {
	var snap Snapshot
	t := &r.totals
	t.mu.Lock()
	snap.RunsCompleted, snap.PiecesCheckedTotal, snap.BytesCheckedTotal = t.runs, t.pieces, t.bytes
	snap.FindingsTotal = map[string]int64{}
	for k, v := range t.found {
		snap.FindingsTotal[k] = v
	}
	snap.RepairedTotal, snap.UnrecoverableTotal = t.repaired, t.unrecoverable
	snap.LastRunEnd, snap.LastRunState = t.lastEnd, t.lastState
	t.mu.Unlock()
	r.mu.Lock()
	c := r.cur
	r.mu.Unlock()
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

// run is Run reporting to l; stopped says ctx ended it before every file
// was checked (err is nil then).
func (r *Runner) run(ctx context.Context, run catalog.ScrubRun, load func(context.Context) ([]catalog.ScrubFile, error), l *live) (stopped bool, err error) {
	files, err := load(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the run's files: %w", err)
	}
	l.mu.Lock()
	l.files = len(files)
	for _, f := range files {
		if f.DoneAt != nil {
			l.done++
		}
	}
	done, total := l.done, l.files
	l.mu.Unlock()
	if l.report != nil {
		l.report(done, total)
	}
	down := &storage.DownTargets{}
	limiter := storage.NewRateLimiter(run.Rate)
	for _, f := range files {
		if f.DoneAt != nil {
			continue
		}
		res, fatal := r.scrubFile(ctx, run, l, f.FileID, down, limiter)
		if ctx.Err() != nil {
			return true, nil
		}
		if fatal != nil {
			return false, fatal
		}
		b, _ := json.Marshal(res)
		if err := r.o.Catalog.FinishScrubFile(ctx, run.ID, f.Seq, b, r.o.Now()); err != nil {
			return false, fmt.Errorf("recording progress: %w", err)
		}
		r.totals.countFile(res)
		l.mu.Lock()
		l.done++
		l.current = ""
		done, total := l.done, l.files
		l.mu.Unlock()
		l.pieces.Store(0)
		l.bytes.Store(0)
		if l.report != nil {
			l.report(done, total)
		}
	}
	return ctx.Err() != nil, nil
}

// scrubFile checks (and with Repair, repairs) one file. fatal is an error
// that must stop the whole run: Vault or the catalog unreachable (the
// scrub fails closed rather than check against an unverified manifest).
func (r *Runner) scrubFile(ctx context.Context, run catalog.ScrubRun, l *live, fileID string, down *storage.DownTargets, limiter *storage.RateLimiter) (res *FileResult, fatal error) {
	cat := r.o.Catalog
	res = &FileResult{FileID: fileID}
	f, err := cat.File(ctx, fileID)
	if errors.Is(err, catalog.ErrNotFound) {
		res.Error = "file no longer exists"
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading file %s: %w", fileID, err)
	}
	res.Dataset, res.Name = f.DatasetID, f.Name
	l.setCurrent(f.DatasetID + "/" + f.Name)
	if f.State != catalog.FileAvailable {
		res.Error = "skipped: file is " + f.State
		return res, nil
	}
	ds, err := cat.Dataset(ctx, f.DatasetID)
	if errors.Is(err, catalog.ErrNotFound) { // hidden by a deletion since the run began
		res.Error = "skipped: its dataset is being deleted"
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading dataset %s: %w", f.DatasetID, err)
	}
	// No memo: a scrub proves integrity afresh, Transit included, and
	// stops when Vault cannot answer.
	auth := vault.TransitHMAC{Keys: r.o.Keys, Key: ds.TransitKey}
	m, err := storage.ParseManifest(f.Manifest)
	if err == nil {
		err = m.Verify(ctx, auth)
	}
	if errors.Is(err, vault.ErrUnavailable) {
		return nil, fmt.Errorf("verifying the manifest of %s: %w", fileID, err)
	}
	if err == nil && (m.DatasetID != f.DatasetID || m.FileID != f.ID) {
		err = errors.New("the manifest names another file")
	}
	if err != nil {
		// The catalog's manifest is not trusted blindly; a bad one is an
		// operator problem, not something a scrub may "repair".
		res.Error = "manifest does not verify: " + err.Error()
		return res, nil
	}
	rep, err := storage.Scrub(ctx, m, r.targets, storage.ScrubOptions{
		Deep: run.Deep, Limiter: limiter, Down: down,
		OnPiece: func(n int64) { l.pieces.Add(1); l.bytes.Add(n) },
	})
	if err != nil {
		if ctx.Err() != nil {
			return res, nil
		}
		res.Error = err.Error()
		return res, nil
	}
	res.Segments, res.Pieces, res.Bytes = int64(rep.Segments), int64(rep.Pieces), rep.Bytes
	finding := func(fd storage.Finding, action string) api.ScrubFinding {
		return api.ScrubFinding{Dataset: f.DatasetID, FileID: f.ID, File: f.Name, Segment: fd.Segment, Piece: fd.Piece,
			Target: fd.Target, Kind: string(fd.Kind), Action: action, Detail: fd.Detail}
	}
	unrec := func(seg int, pieces []int) api.ScrubUnrecoverable {
		return api.ScrubUnrecoverable{Dataset: f.DatasetID, FileID: f.ID, File: f.Name, Segment: seg, Pieces: pieces}
	}
	if len(rep.Findings) == 0 {
		return res, nil
	}
	if !run.Repair {
		lost := map[int][]int{}
		for _, fd := range rep.Findings {
			if fd.Kind.Lost() {
				lost[fd.Segment] = append(lost[fd.Segment], fd.Piece)
			}
		}
		for _, fd := range rep.Findings {
			action := api.ActionFound
			if len(lost[fd.Segment]) > m.M {
				action = api.ActionUnrecoverable
			}
			res.Findings = append(res.Findings, finding(fd, action))
		}
		for seg := 0; seg < len(m.Segments); seg++ {
			if p := lost[seg]; len(p) > m.M {
				res.Unrecoverable = append(res.Unrecoverable, unrec(seg, p))
			}
		}
	} else {
		rr, err := storage.Repair(ctx, m, r.targets, rep.Findings, storage.RepairOptions{Down: down, Limiter: limiter})
		if err != nil {
			if ctx.Err() != nil {
				return res, nil
			}
			res.Error = "repair: " + err.Error()
			for _, fd := range rep.Findings {
				res.Findings = append(res.Findings, finding(fd, api.ActionFound))
			}
			return res, nil
		}
		type key struct{ seg, piece int }
		repaired := map[key]storage.RepairedPiece{}
		for _, p := range rr.Repaired {
			repaired[key{p.Segment, p.Piece}] = p
		}
		deferred := map[key]string{}
		for _, p := range rr.Deferred {
			deferred[key{p.Segment, p.Piece}] = p.Reason
		}
		unrecSeg := map[int]bool{}
		for _, u := range rr.Unrecoverable {
			unrecSeg[u.Segment] = true
			res.Unrecoverable = append(res.Unrecoverable, unrec(u.Segment, u.Pieces))
		}
		all := append(append([]storage.Finding{}, rep.Findings...), rr.Found...)
		for _, fd := range all {
			k := key{fd.Segment, fd.Piece}
			af := finding(fd, api.ActionFound)
			switch {
			case unrecSeg[fd.Segment]:
				af.Action = api.ActionUnrecoverable
			case repaired[k].To != "":
				af.Action = api.ActionRepaired
				if to := repaired[k].To; to != fd.Target {
					af.MovedTo = to
				}
			case deferred[k] != "":
				af.Action, af.Detail = api.ActionDeferred, deferred[k]
			}
			res.Findings = append(res.Findings, af)
		}
		if rr.Manifest != nil {
			if err := r.replaceManifest(ctx, f, rr.Manifest, auth, down); err != nil {
				if errors.Is(err, vault.ErrUnavailable) {
					return nil, err
				}
				res.Error = err.Error()
				// The pieces stored on new targets are not in the manifest:
				// say so rather than count them repaired.
				for i := range res.Findings {
					if res.Findings[i].MovedTo != "" {
						res.Findings[i].Action, res.Findings[i].MovedTo = api.ActionDeferred, ""
						res.Findings[i].Detail = "rebuilt, but the manifest could not be updated"
					}
				}
			}
		}
		if n := len(rr.Repaired); n > 0 && res.Error == "" {
			r.o.record(ctx, run.StartedBy, "file.repair", "file/"+f.ID, "ok",
				fmt.Sprintf("scrub %s rebuilt %d pieces of %s/%s", run.ID, n, f.DatasetID, f.Name))
		}
	}
	if len(res.Unrecoverable) > 0 {
		if err := cat.MarkFileDamaged(ctx, f.ID); err != nil {
			return nil, fmt.Errorf("marking %s damaged: %w", f.ID, err)
		}
		res.Damaged = true
		segs := make([]int, len(res.Unrecoverable))
		for i, u := range res.Unrecoverable {
			segs[i] = u.Segment
		}
		r.o.record(ctx, run.StartedBy, "file.damaged", "file/"+f.ID, "error",
			fmt.Sprintf("scrub %s: %s/%s segments %v lost more than %d pieces", run.ID, f.DatasetID, f.Name, segs, m.M))
		r.o.Logger.Error("scrub: file damaged", "run", run.ID, "file", f.ID, "segments", fmt.Sprint(segs))
	}
	return res, nil
}

// replaceManifest signs a repaired manifest with the dataset's Transit key,
// swaps it into the catalog (compare-and-swap on the old one), then
// rewrites the metadata copies on storage. The catalog is the truth and
// goes first; a stale copy on storage still verifies and names only pieces
// that were there, so it is safe, merely degraded.
func (r *Runner) replaceManifest(ctx context.Context, f *catalog.File, nm *storage.Manifest, auth storage.Authenticator, down *storage.DownTargets) error {
	if err := nm.Sign(ctx, auth); err != nil {
		return fmt.Errorf("signing the repaired manifest: %w", err)
	}
	nb, err := nm.Marshal()
	if err != nil {
		return err
	}
	old, err := storage.ParseManifest(f.Manifest)
	if err != nil {
		return err
	}
	var changed []storage.SegmentMeta
	for i := range nm.Segments {
		for j := range nm.Segments[i].Pieces {
			if nm.Segments[i].Pieces[j].Target != old.Segments[i].Pieces[j].Target {
				changed = append(changed, nm.Segments[i])
				break
			}
		}
	}
	if err := r.o.Catalog.ReplaceManifest(ctx, f.ID, f.Manifest, nb, changed); err != nil {
		return fmt.Errorf("updating the catalog: %w", err)
	}
	var live []storage.Target
	for _, t := range r.o.Targets {
		if !down.IsDown(t.ID()) {
			live = append(live, t)
		}
	}
	if err := filestore.PutMetadata(ctx, live, nm, f.HeaderObject); err != nil {
		return fmt.Errorf("manifest updated in the catalog, but rewriting its copies on storage failed: %w", err)
	}
	return nil
}
