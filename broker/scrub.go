package broker

// Scrubs (issue 5): dozod checks that every piece of every file is present
// (light) and intact (deep), and with repair rebuilds bad pieces from
// parity. Runs execute inside dozod, which alone holds storage credentials;
// one runs at a time (enforced by the catalog too), file by file, and each
// finished file is recorded so a run interrupted by a restart continues
// where it stopped.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// ScrubConfig is the [scrub] section of dozod's config: scheduled scrubs.
// Both intervals default to 0 (off).
type ScrubConfig struct {
	LightInterval time.Duration `toml:"light_interval"`
	DeepInterval  time.Duration `toml:"deep_interval"`
	Rate          string        `toml:"rate"`
	Repair        bool          `toml:"repair"`

	rate int64 // Rate parsed by validate
}

const scrubConfigHelp = `  [scrub]             scheduled scrubs, one at a time; off by default
  light_interval      DOZOD_SCRUB_LIGHT_INTERVAL 0 (off); e.g. 24h: every piece exists, right size
  deep_interval       DOZOD_SCRUB_DEEP_INTERVAL  0 (off); e.g. 720h: every piece read and hashed
  rate                DOZOD_SCRUB_RATE           0 (no limit); deep read rate, e.g. 200MiB/s
  repair              DOZOD_SCRUB_REPAIR         false; rebuild bad pieces from parity
`

// minScrubInterval keeps a mistaken "24" (hours meant) from scrubbing
// continuously.
const minScrubInterval = time.Minute

func (c *ScrubConfig) applyEnv(getenv func(string) string) error {
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"DOZOD_SCRUB_LIGHT_INTERVAL", &c.LightInterval}, {"DOZOD_SCRUB_DEEP_INTERVAL", &c.DeepInterval}} {
		if v := getenv(d.name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			*d.dst = x
		}
	}
	if v := getenv("DOZOD_SCRUB_RATE"); v != "" {
		c.Rate = v
	}
	if v := getenv("DOZOD_SCRUB_REPAIR"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("DOZOD_SCRUB_REPAIR: %w", err)
		}
		c.Repair = b
	}
	return nil
}

func (c *ScrubConfig) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"scrub.light_interval", c.LightInterval}, {"scrub.deep_interval", c.DeepInterval}} {
		if d.v != 0 && d.v < minScrubInterval {
			return fmt.Errorf("%s %v: must be 0 (off) or at least %v", d.name, d.v, minScrubInterval)
		}
	}
	c.rate = 0
	if c.Rate != "" {
		r, err := api.ParseRate(c.Rate)
		if err != nil {
			return fmt.Errorf("scrub.rate: %w", err)
		}
		c.rate = r
	}
	return nil
}

// scrubState is the Server's scrub state.
type scrubState struct {
	scrubCfg     ScrubConfig
	scrubTargets map[string]storage.Target
	// scrubTick is how often the scheduler looks for due scrubs.
	scrubTick time.Duration

	scrubMu   sync.Mutex
	scrubBase context.Context // Start's context; runs stop with it
	scrubCur  *scrubRun       // the run executing in this process
	scrubWG   sync.WaitGroup

	scrubTotals scrubTotals
}

// scrubRun is a run executing in this process.
type scrubRun struct {
	rec       catalog.ScrubRun
	cancel    context.CancelFunc
	cancelled atomic.Bool // by DELETE: end as cancelled, not resume
	done      chan struct{}

	mu      sync.Mutex
	current string // dataset/name of the file being checked
	files   int
	done0   int // files finished
	pieces  atomic.Int64
	bytes   atomic.Int64
}

// scrubTotals are counters since dozod started, for /metrics.
type scrubTotals struct {
	mu            sync.Mutex
	runs          int64
	pieces, bytes int64
	found         map[string]int64 // by kind
	repaired      int64
	unrecoverable int64
	lastEnd       time.Time
	lastState     string
}

// ScrubSnapshot is a read-only view of scrub progress and findings for
// the metrics endpoint. It holds counts only, no file names or keys.
type ScrubSnapshot struct {
	Running      bool
	RunID        string
	Deep, Repair bool
	FilesTotal   int
	FilesDone    int
	// Pieces and bytes checked by the running run's current file so far
	// are included in the totals below.
	PiecesChecked int64 // running run
	BytesChecked  int64 // running run

	// Since dozod started:
	RunsCompleted      int64
	PiecesCheckedTotal int64
	BytesCheckedTotal  int64
	FindingsTotal      map[string]int64 // by kind: missing, size, hash, unreachable
	RepairedTotal      int64
	UnrecoverableTotal int64 // segments
	LastRunEnd         time.Time
	LastRunState       string
}

// scrubSnapshot returns the current scrub progress and counters; safe to
// call from any goroutine.
func (s *Server) scrubSnapshot() ScrubSnapshot {
	var snap ScrubSnapshot
	t := &s.scrubTotals
	t.mu.Lock()
	snap.RunsCompleted, snap.PiecesCheckedTotal, snap.BytesCheckedTotal = t.runs, t.pieces, t.bytes
	snap.FindingsTotal = map[string]int64{}
	for k, v := range t.found {
		snap.FindingsTotal[k] = v
	}
	snap.RepairedTotal, snap.UnrecoverableTotal = t.repaired, t.unrecoverable
	snap.LastRunEnd, snap.LastRunState = t.lastEnd, t.lastState
	t.mu.Unlock()
	s.scrubMu.Lock()
	r := s.scrubCur
	s.scrubMu.Unlock()
	if r != nil {
		snap.Running, snap.RunID, snap.Deep, snap.Repair = true, r.rec.ID, r.rec.Deep, r.rec.Repair
		r.mu.Lock()
		snap.FilesTotal, snap.FilesDone = r.files, r.done0
		r.mu.Unlock()
		snap.PiecesChecked, snap.BytesChecked = r.pieces.Load(), r.bytes.Load()
		snap.PiecesCheckedTotal += snap.PiecesChecked
		snap.BytesCheckedTotal += snap.BytesChecked
	}
	return snap
}

func (s *Server) initScrub(o Options) error {
	if err := o.Scrub.validate(); err != nil {
		return err
	}
	s.scrubCfg = o.Scrub
	s.scrubTargets = make(map[string]storage.Target, len(s.targets))
	for id, t := range s.targets {
		s.scrubTargets[id] = t
	}
	s.scrubTick = time.Minute
	s.scrubTotals.found = map[string]int64{}
	return nil
}

// startScrub continues a run a previous dozod left unfinished, then runs
// the scheduler (if configured) until ctx ends.
func (s *Server) startScrub(ctx context.Context) {
	s.scrubMu.Lock()
	s.scrubBase = ctx
	s.scrubMu.Unlock()
	if r, err := s.cat.RunningScrub(ctx); err == nil {
		s.log.Info("scrub: continuing an unfinished run", "run", r.ID)
		s.recordEvent(ctx, "dozod", "scrub.resume", "scrub/"+r.ID, "ok", "continuing after a restart")
		if err := s.runScrub(*r); err != nil {
			s.log.Error("scrub: cannot continue run", "run", r.ID, "error", err.Error())
		}
	} else if !errors.Is(err, catalog.ErrNotFound) {
		s.log.Error("scrub: looking for an unfinished run", "error", err.Error())
	}
	if s.scrubCfg.LightInterval == 0 && s.scrubCfg.DeepInterval == 0 {
		return
	}
	go func() {
		t := time.NewTicker(s.scrubTick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.scheduleScrub(ctx)
		}
	}()
}

// scheduleScrub starts a scheduled run when one is due and none runs. A
// deep run is due after DeepInterval since the last scheduled deep run; a
// light one after LightInterval since the last scheduled run of any kind
// (a deep run checks everything a light one does).
func (s *Server) scheduleScrub(ctx context.Context) {
	if s.scrubRunning() {
		return
	}
	now := s.now()
	due := func(interval time.Duration, deepOnly bool) bool {
		if interval <= 0 {
			return false
		}
		last, err := s.cat.LastScrubStart(ctx, catalog.ScrubScheduled, deepOnly)
		if err != nil {
			s.log.Error("scrub scheduler: reading the catalog", "error", err.Error())
			return false
		}
		return !now.Before(last.Add(interval))
	}
	var deep bool
	switch {
	case due(s.scrubCfg.DeepInterval, true):
		deep = true
	case due(s.scrubCfg.LightInterval, false):
	default:
		return
	}
	rec := catalog.ScrubRun{ID: newID("scrub-"), Trigger: catalog.ScrubScheduled, StartedBy: "dozod",
		Deep: deep, Repair: s.scrubCfg.Repair, Rate: s.scrubCfg.rate, StartedAt: now}
	if err := s.createScrub(ctx, rec); err != nil {
		if !errors.Is(err, catalog.ErrState) {
			s.log.Error("scrub scheduler: starting a run", "error", err.Error())
		}
		return
	}
	s.recordEvent(ctx, "dozod", "scrub.start", "scrub/"+rec.ID, "ok", scrubOptions(rec))
}

func (s *Server) scrubRunning() bool {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	return s.scrubCur != nil
}

func scrubOptions(r catalog.ScrubRun) string {
	mode := "light"
	if r.Deep {
		mode = "deep"
	}
	if r.Repair {
		mode += " repair"
	}
	scope := "all datasets"
	if r.DatasetID != "" {
		scope = "dataset " + r.DatasetID
		if r.FileName != "" {
			scope += " file " + r.FileName
		}
	}
	if r.Rate > 0 {
		scope += fmt.Sprintf(", rate %d B/s", r.Rate)
	}
	return r.Trigger + " " + mode + " scrub of " + scope
}

// createScrub records a new run with its files and starts it. Another
// running run is catalog.ErrState.
func (s *Server) createScrub(ctx context.Context, rec catalog.ScrubRun) error {
	s.scrubMu.Lock()
	busy := s.scrubCur != nil
	s.scrubMu.Unlock()
	if busy {
		return fmt.Errorf("a scrub is running: %w", catalog.ErrState)
	}
	files, err := s.cat.ScrubCandidates(ctx, rec.DatasetID, rec.FileName)
	if err != nil {
		return err
	}
	if err := s.cat.CreateScrubRun(ctx, rec, files); err != nil {
		return err
	}
	return s.runScrub(rec)
}

// runScrub executes rec (new or resumed) in the background.
func (s *Server) runScrub(rec catalog.ScrubRun) error {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	if s.scrubCur != nil {
		return fmt.Errorf("a scrub is running: %w", catalog.ErrState)
	}
	base := s.scrubBase
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithCancel(base)
	r := &scrubRun{rec: rec, cancel: cancel, done: make(chan struct{})}
	s.scrubCur = r
	s.scrubWG.Go(func() {
		defer close(r.done)
		defer cancel()
		s.execScrub(ctx, r)
		s.scrubMu.Lock()
		if s.scrubCur == r {
			s.scrubCur = nil
		}
		s.scrubMu.Unlock()
	})
	return nil
}

// scrubFileResult is what one file's scrub found and did; stored as JSON
// in the catalog (scrub_files.result).
type scrubFileResult struct {
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

func (s *Server) execScrub(ctx context.Context, r *scrubRun) {
	bg := context.WithoutCancel(ctx)
	files, err := s.cat.ScrubFiles(ctx, r.rec.ID)
	if err != nil {
		s.endScrub(bg, r, catalog.ScrubFailed, "reading the run's files: "+err.Error())
		return
	}
	r.mu.Lock()
	r.files = len(files)
	for _, f := range files {
		if f.DoneAt != nil {
			r.done0++
		}
	}
	r.mu.Unlock()
	down := &storage.DownTargets{}
	limiter := storage.NewRateLimiter(r.rec.Rate)
	for _, f := range files {
		if f.DoneAt != nil {
			continue
		}
		res, fatal := s.scrubFile(ctx, r, f.FileID, down, limiter)
		if ctx.Err() != nil {
			break
		}
		if fatal != nil {
			s.endScrub(bg, r, catalog.ScrubFailed, fatal.Error())
			return
		}
		b, _ := json.Marshal(res)
		if err := s.cat.FinishScrubFile(ctx, r.rec.ID, f.Seq, b, s.now()); err != nil {
			s.endScrub(bg, r, catalog.ScrubFailed, "recording progress: "+err.Error())
			return
		}
		s.countFile(res)
		r.mu.Lock()
		r.done0++
		r.current = ""
		r.mu.Unlock()
		r.pieces.Store(0)
		r.bytes.Store(0)
	}
	switch {
	case r.cancelled.Load():
		s.endScrub(bg, r, catalog.ScrubCancelled, "cancelled")
	case ctx.Err() != nil:
		// dozod is stopping: the run stays "running" and continues at the
		// next start.
		s.log.Info("scrub: paused by shutdown; it continues at the next start", "run", r.rec.ID)
	default:
		s.endScrub(bg, r, catalog.ScrubDone, "")
	}
}

func (s *Server) countFile(res *scrubFileResult) {
	t := &s.scrubTotals
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pieces += res.Pieces
	t.bytes += res.Bytes
	for _, f := range res.Findings {
		t.found[f.Kind]++
		if f.Action == api.ActionRepaired {
			t.repaired++
		}
	}
	t.unrecoverable += int64(len(res.Unrecoverable))
}

func (s *Server) endScrub(ctx context.Context, r *scrubRun, state, msg string) {
	now := s.now()
	// The run stops counting as ours and as running in the catalog at the
	// same moment, so a client that sees it ended can start the next one.
	s.scrubMu.Lock()
	if err := s.cat.EndScrubRun(ctx, r.rec.ID, state, msg, now); err != nil {
		s.log.Error("scrub: recording the end of a run", "run", r.rec.ID, "error", err.Error())
	}
	if s.scrubCur == r {
		s.scrubCur = nil
	}
	s.scrubMu.Unlock()
	t := &s.scrubTotals
	t.mu.Lock()
	t.runs++
	t.lastEnd, t.lastState = now, state
	t.mu.Unlock()
	result, detail := "ok", scrubOptions(r.rec)+": "+state
	if out, err := s.scrubRunAPI(ctx, r.rec.ID, false); err == nil {
		sm := out.Summary
		detail += fmt.Sprintf(": %d files, %d pieces, %d bytes checked; %d found, %d repaired, %d unrecoverable segments, %d damaged files",
			sm.FilesDone, sm.Pieces, sm.Bytes, sm.Found, sm.Repaired, sm.Unrecoverable, sm.DamagedFiles)
		if sm.Unrecoverable > 0 || sm.FileErrors > 0 {
			result = "error"
		}
	}
	if state == catalog.ScrubFailed {
		result, detail = "error", detail+": "+msg
	}
	s.recordEvent(ctx, r.rec.StartedBy, "scrub.run", "scrub/"+r.rec.ID, result, detail)
	s.log.Info("scrub finished", "run", r.rec.ID, "state", state, "detail", detail)
}

// scrubFile checks (and with Repair, repairs) one file. fatal is an error
// that must stop the whole run: Vault or the catalog unreachable (dozod
// fails closed rather than scrub against an unverified manifest).
func (s *Server) scrubFile(ctx context.Context, r *scrubRun, fileID string, down *storage.DownTargets, limiter *storage.RateLimiter) (res *scrubFileResult, fatal error) {
	res = &scrubFileResult{FileID: fileID}
	f, err := s.cat.File(ctx, fileID)
	if errors.Is(err, catalog.ErrNotFound) {
		res.Error = "file no longer exists"
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading file %s: %w", fileID, err)
	}
	res.Dataset, res.Name = f.DatasetID, f.Name
	r.mu.Lock()
	r.current = f.DatasetID + "/" + f.Name
	r.mu.Unlock()
	if f.State != catalog.FileAvailable {
		res.Error = "skipped: file is " + f.State
		return res, nil
	}
	ds, err := s.cat.Dataset(ctx, f.DatasetID)
	if errors.Is(err, catalog.ErrNotFound) { // hidden by a deletion since the run began
		res.Error = "skipped: its dataset is being deleted"
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading dataset %s: %w", f.DatasetID, err)
	}
	// No memo: a scrub proves integrity afresh, Transit included, and
	// stops when Vault cannot answer.
	auth := macAuth{keys: s.keys, name: ds.TransitKey}
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
	rep, err := storage.Scrub(ctx, m, s.scrubTargets, storage.ScrubOptions{
		Deep: r.rec.Deep, Limiter: limiter, Down: down,
		OnPiece: func(n int64) { r.pieces.Add(1); r.bytes.Add(n) },
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
	if !r.rec.Repair {
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
		rr, err := storage.Repair(ctx, m, s.scrubTargets, rep.Findings, storage.RepairOptions{Down: down, Limiter: limiter})
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
			if err := s.replaceManifest(ctx, f, rr.Manifest, auth, down); err != nil {
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
			s.recordEvent(ctx, r.rec.StartedBy, "file.repair", "file/"+f.ID, "ok",
				fmt.Sprintf("scrub %s rebuilt %d pieces of %s/%s", r.rec.ID, n, f.DatasetID, f.Name))
		}
	}
	if len(res.Unrecoverable) > 0 {
		if err := s.cat.MarkFileDamaged(ctx, f.ID); err != nil {
			return nil, fmt.Errorf("marking %s damaged: %w", f.ID, err)
		}
		res.Damaged = true
		segs := make([]int, len(res.Unrecoverable))
		for i, u := range res.Unrecoverable {
			segs[i] = u.Segment
		}
		s.recordEvent(ctx, r.rec.StartedBy, "file.damaged", "file/"+f.ID, "error",
			fmt.Sprintf("scrub %s: %s/%s segments %v lost more than %d pieces", r.rec.ID, f.DatasetID, f.Name, segs, m.M))
		s.log.Error("scrub: file damaged", "run", r.rec.ID, "file", f.ID, "segments", fmt.Sprint(segs))
	}
	return res, nil
}

// replaceManifest signs a repaired manifest with the dataset's Transit key,
// swaps it into the catalog (compare-and-swap on the old one), then
// rewrites the metadata copies on storage. The catalog is the truth and
// goes first; a stale copy on storage still verifies and names only pieces
// that were there, so it is safe, merely degraded.
func (s *Server) replaceManifest(ctx context.Context, f *catalog.File, nm *storage.Manifest, auth storage.Authenticator, down *storage.DownTargets) error {
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
	if err := s.cat.ReplaceManifest(ctx, f.ID, f.Manifest, nb, changed); err != nil {
		return fmt.Errorf("updating the catalog: %w", err)
	}
	var live []storage.Target
	for _, t := range s.allTargets() {
		if !down.IsDown(t.ID()) {
			live = append(live, t)
		}
	}
	if err := filestore.PutMetadata(ctx, live, nm, f.HeaderObject); err != nil {
		return fmt.Errorf("manifest updated in the catalog, but rewriting its copies on storage failed: %w", err)
	}
	return nil
}

// scrubRunAPI assembles a run's view from the catalog (and, for the run
// executing here, its live progress). withFindings adds the findings.
func (s *Server) scrubRunAPI(ctx context.Context, id string, withFindings bool) (*api.ScrubRun, error) {
	rec, err := s.cat.ScrubRun(ctx, id)
	if err != nil {
		return nil, err
	}
	files, err := s.cat.ScrubFiles(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &api.ScrubRun{ID: rec.ID, State: rec.State, Trigger: rec.Trigger, StartedBy: rec.StartedBy,
		Dataset: rec.DatasetID, File: rec.FileName, Deep: rec.Deep, Repair: rec.Repair, Rate: rec.Rate,
		StartedAt: rec.StartedAt, EndedAt: rec.EndedAt, Error: rec.Error}
	sm := &out.Summary
	sm.Files = len(files)
	for _, f := range files {
		sm.PiecesTotal += f.Pieces
		sm.BytesTotal += f.Bytes
		if f.DoneAt == nil {
			continue
		}
		sm.FilesDone++
		var res scrubFileResult
		if err := json.Unmarshal(f.Result, &res); err != nil {
			return nil, fmt.Errorf("scrub run %s file %s: %w", id, f.FileID, err)
		}
		sm.Segments += res.Segments
		sm.Pieces += res.Pieces
		sm.Bytes += res.Bytes
		if res.Error != "" {
			sm.FileErrors++
			out.Errors = append(out.Errors, fmt.Sprintf("%s/%s (%s): %s", res.Dataset, res.Name, res.FileID, res.Error))
		}
		if res.Damaged {
			sm.DamagedFiles++
		}
		sm.Unrecoverable += len(res.Unrecoverable)
		out.Unrecoverable = append(out.Unrecoverable, res.Unrecoverable...)
		for _, fd := range res.Findings {
			sm.Found++
			switch fd.Kind {
			case api.FindingMissing:
				sm.Missing++
			case api.FindingSize:
				sm.Size++
			case api.FindingHash:
				sm.Hash++
			case api.FindingUnreachable:
				sm.Unreachable++
			}
			switch fd.Action {
			case api.ActionRepaired:
				sm.Repaired++
			case api.ActionDeferred:
				sm.Deferred++
			}
			if withFindings {
				if len(out.Findings) < api.MaxScrubFindings {
					out.Findings = append(out.Findings, fd)
				} else {
					out.FindingsTruncated = true
				}
			}
		}
	}
	s.scrubMu.Lock()
	cur := s.scrubCur
	s.scrubMu.Unlock()
	if cur != nil && cur.rec.ID == id && rec.State == catalog.ScrubRunning {
		cur.mu.Lock()
		out.Current = cur.current
		cur.mu.Unlock()
		sm.Pieces += cur.pieces.Load()
		sm.Bytes += cur.bytes.Load()
	}
	end := s.now()
	if rec.EndedAt != nil {
		end = *rec.EndedAt
	}
	if sm.Seconds = end.Sub(rec.StartedAt).Seconds(); sm.Seconds > 0 {
		sm.BytesPerSec = float64(sm.Bytes) / sm.Seconds
	}
	return out, nil
}

func (s *Server) postScrub(q *request) error {
	q.object = "scrub"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	var req api.ScrubRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if req.RateBytesPerSec < 0 {
		return badRequest("rate_bytes_per_sec %d: must be 0 (no limit) or positive", req.RateBytesPerSec)
	}
	if req.File != "" && req.Dataset == "" {
		return badRequest("file %q needs a dataset", req.File)
	}
	if req.Dataset != "" {
		q.object = "dataset/" + req.Dataset
		if api.ValidateDatasetID(req.Dataset) != nil {
			return notFoundDataset(req.Dataset)
		}
		if _, err := s.cat.Dataset(q.ctx, req.Dataset); errors.Is(err, catalog.ErrNotFound) {
			return notFoundDataset(req.Dataset)
		} else if err != nil {
			return internal("reading the dataset", err)
		}
	}
	if req.File != "" {
		q.object = "dataset/" + req.Dataset + "/file/" + req.File
		if ValidateName(req.File) != nil {
			return notFoundFile(req.Dataset, req.File)
		}
		if _, err := s.cat.AvailableFile(q.ctx, req.Dataset, req.File); errors.Is(err, catalog.ErrNotFound) {
			return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("file %q not found in dataset %q", req.File, req.Dataset),
				hint: "only available files are scrubbed; see dozo ls " + req.Dataset}
		} else if err != nil {
			return internal("reading the file", err)
		}
	}
	rec := catalog.ScrubRun{ID: newID("scrub-"), Trigger: catalog.ScrubManual, StartedBy: q.user.Name,
		DatasetID: req.Dataset, FileName: req.File, Deep: req.Deep, Repair: req.Repair, Rate: req.RateBytesPerSec,
		StartedAt: s.now()}
	if err := s.createScrub(q.ctx, rec); errors.Is(err, catalog.ErrState) {
		hint := "wait for it, or cancel it"
		if cur, err := s.cat.RunningScrub(q.ctx); err == nil {
			hint = fmt.Sprintf("scrub %s is running; follow it with `dozo scrub status %s`", cur.ID, cur.ID)
		}
		return &httpError{status: http.StatusConflict, msg: "another scrub is running", hint: hint}
	} else if err != nil {
		return internal("starting the scrub", err)
	}
	q.object = "scrub/" + rec.ID
	out, err := s.scrubRunAPI(q.ctx, rec.ID, false)
	if err != nil {
		return internal("reading the scrub", err)
	}
	return q.reply(http.StatusAccepted, out)
}

func (s *Server) listScrubs(q *request) error {
	q.object = "scrub"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	limit := 20
	if v := q.r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit %q: want 1..1000", v)
		}
		limit = n
	}
	runs, err := s.cat.ScrubRuns(q.ctx, limit)
	if err != nil {
		return internal("listing scrubs", err)
	}
	out := []api.ScrubRun{}
	for _, r := range runs {
		a, err := s.scrubRunAPI(q.ctx, r.ID, false)
		if err != nil {
			return internal("reading a scrub", err)
		}
		out = append(out, *a)
	}
	return q.reply(http.StatusOK, out)
}

// scrubByID resolves {id}; unknown ids are 404 (after the admin check, so
// non-admins learn nothing).
func (s *Server) scrubByID(q *request) (string, error) {
	id := q.r.PathValue("id")
	q.object = "scrub/" + id
	if err := s.requireAdmin(q); err != nil {
		return "", err
	}
	if storage.ValidateID(id) != nil {
		return "", errorf(http.StatusNotFound, "scrub %q not found", id)
	}
	if _, err := s.cat.ScrubRun(q.ctx, id); errors.Is(err, catalog.ErrNotFound) {
		return "", errorf(http.StatusNotFound, "scrub %q not found", id)
	} else if err != nil {
		return "", internal("reading the scrub", err)
	}
	return id, nil
}

func (s *Server) showScrub(q *request) error {
	id, err := s.scrubByID(q)
	if err != nil {
		return err
	}
	withFindings := true
	switch v := q.r.URL.Query().Get("findings"); v {
	case "", "true":
	case "false":
		withFindings = false // progress polls need only the summary
	default:
		return badRequest("findings=%q: want true or false", v)
	}
	out, err := s.scrubRunAPI(q.ctx, id, withFindings)
	if err != nil {
		return internal("reading the scrub", err)
	}
	return q.reply(http.StatusOK, out)
}

func (s *Server) cancelScrub(q *request) error {
	id, err := s.scrubByID(q)
	if err != nil {
		return err
	}
	if err := q.noBody(); err != nil {
		return err
	}
	s.scrubMu.Lock()
	cur := s.scrubCur
	s.scrubMu.Unlock()
	if cur != nil && cur.rec.ID == id {
		cur.cancelled.Store(true)
		cur.cancel()
		select {
		case <-cur.done:
		case <-q.ctx.Done():
			return q.ctx.Err()
		}
	} else if err := s.cat.EndScrubRun(q.ctx, id, catalog.ScrubCancelled, "cancelled", s.now()); err != nil && !errors.Is(err, catalog.ErrState) {
		return internal("cancelling the scrub", err)
	}
	out, err := s.scrubRunAPI(q.ctx, id, false)
	if err != nil {
		return internal("reading the scrub", err)
	}
	if out.State == catalog.ScrubRunning {
		return errorf(http.StatusConflict, "scrub %s could not be cancelled", id)
	}
	return q.reply(http.StatusOK, out)
}
