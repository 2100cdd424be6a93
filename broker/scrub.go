package broker

// Scrubs: the [scrub] config section and the /v1/scrubs handlers. Runs
// execute inside dozod, which alone holds storage credentials, in package
// scrub (scheduler, runner, per-file check and repair), each as a job of
// the job runner (kind "scrub", the job's id is the run's); this file maps
// requests to it and its records to API answers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/scrub"
	"github.com/dozo-vault/dozo/storage"
)

// ScrubConfig is the [scrub] section of dozod's config: scheduled scrubs.
// Both intervals default to 0 (off).
type ScrubConfig struct {
	LightInterval time.Duration `toml:"light_interval" env:"DOZOD_SCRUB_LIGHT_INTERVAL" help:"0 (off); e.g. 24h: every piece exists, right size"`
	DeepInterval  time.Duration `toml:"deep_interval" env:"DOZOD_SCRUB_DEEP_INTERVAL" help:"0 (off); e.g. 720h: every piece read and hashed"`
	Rate          string        `toml:"rate" env:"DOZOD_SCRUB_RATE" help:"0 (no limit); deep read rate, e.g. 200MiB/s (of each dozod checking a shard)"`
	Repair        bool          `toml:"repair" env:"DOZOD_SCRUB_REPAIR" help:"false; rebuild bad pieces from parity"`
	// Shards is how many parts a run of several files is cut into, each
	// a job any dozod takes, one at a time per dozod: replicas on one
	// PostgreSQL catalog share a run's work. 0: DefaultScrubShards on
	// PostgreSQL, 1 (one job, one dozod) on SQLite.
	Shards int `toml:"shards" env:"DOZOD_SCRUB_SHARDS" help:"0 (4 on PostgreSQL, 1 on SQLite; 1..256): a run's files are cut into this many parts, checked by the replicas at once"`

	rate int64 // Rate parsed by validate
}

// minScrubInterval keeps a mistaken "24" (hours meant) from scrubbing
// continuously.
const minScrubInterval = time.Minute

func (c *ScrubConfig) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"scrub.light_interval", c.LightInterval}, {"scrub.deep_interval", c.DeepInterval}} {
		if d.v != 0 && d.v < minScrubInterval {
			return fmt.Errorf("%s %v: must be 0 (off) or at least %v", d.name, d.v, minScrubInterval)
		}
	}
	if c.Shards < 0 || c.Shards > scrub.MaxShards {
		return fmt.Errorf("scrub.shards %d: must be 0 (default) or 1..%d", c.Shards, scrub.MaxShards)
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

// DefaultScrubShards is how many shards a run is cut into on PostgreSQL,
// where several dozods may share it: enough for four replicas to take
// one each, few enough that a run stays a handful of job records.
const DefaultScrubShards = 4

// scrubShards is the shard count for runs over catalog backend.
func (c *ScrubConfig) scrubShards(backend string) int {
	switch {
	case c.Shards > 0:
		return c.Shards
	case backend == catalog.Postgres:
		return DefaultScrubShards
	default:
		return 1
	}
}

// ScrubSnapshot is a read-only view of scrub progress and findings for
// the metrics endpoint (scrub.Snapshot).
type ScrubSnapshot = scrub.Snapshot

// scrubSnapshot returns the current scrub progress and counters; safe to
// call from any goroutine.
func (s *Server) scrubSnapshot() ScrubSnapshot { return s.scrubs.Snapshot() }

// initScrub makes the scrub scheduler over the Server's catalog, key
// service, targets and audit log; its runs execute as jobs of s.jobs.
func (s *Server) initScrub(o Options) error {
	if err := o.Scrub.validate(); err != nil {
		return err
	}
	s.scrubs = scrub.NewScheduler(scrub.Options{
		Catalog: s.cat,
		Keys:    s.keys,
		Targets: s.allTargets(),
		Record: func(ctx context.Context, e scrub.Event) error {
			return s.event(ctx, e.Actor, e.Action, e.Object, e.Result, e.Detail)
		},
		Now:           s.now,
		Logger:        s.log,
		LightInterval: o.Scrub.LightInterval,
		DeepInterval:  o.Scrub.DeepInterval,
		Repair:        o.Scrub.Repair,
		Rate:          o.Scrub.rate,
		Shards:        o.Scrub.scrubShards(s.cat.Backend()),
	}, s.jobs)
	return nil
}

// startScrub runs the scrub scheduler until ctx ends: scheduled runs (if
// configured) and runs to settle with their jobs. Runs themselves execute
// on the job runner (RunReaper starts it).
func (s *Server) startScrub(ctx context.Context) { s.scrubs.Start(ctx) }

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
	t, err := scrub.Tally(files, withFindings)
	if err != nil {
		return nil, fmt.Errorf("scrub run %s %w", id, err)
	}
	out := &api.ScrubRun{ID: rec.ID, State: rec.State, Trigger: rec.Trigger, StartedBy: rec.StartedBy,
		Dataset: rec.DatasetID, File: rec.FileName, Deep: rec.Deep, Repair: rec.Repair, Rate: rec.Rate,
		StartedAt: rec.StartedAt, EndedAt: rec.EndedAt, Error: rec.Error,
		Summary: t.Summary, Findings: t.Findings, FindingsTruncated: t.FindingsTruncated,
		Unrecoverable: t.Unrecoverable, Errors: t.Errors}
	if out.Shards, err = s.scrubShardsAPI(ctx, id, files); err != nil {
		return nil, err
	}
	sm := &out.Summary
	if rec.State == catalog.ScrubRunning {
		if cur, pieces, bytes, ok := s.scrubs.Progress(id); ok {
			out.Current = cur
			sm.Pieces += pieces
			sm.Bytes += bytes
		}
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

// scrubShardsAPI are the shards of run id, with the files of each done
// (files are the run's).
func (s *Server) scrubShardsAPI(ctx context.Context, id string, files []catalog.ScrubFile) ([]api.ScrubShard, error) {
	shards, err := s.scrubs.Shards(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("scrub run %s shards: %w", id, err)
	}
	var out []api.ScrubShard
	for _, sh := range shards {
		a := api.ScrubShard{Shard: sh.Shard, Of: sh.Of}
		if j := sh.Job; j != nil {
			a.Job, a.State, a.Owner, a.Attempts, a.Error = j.ID, j.State, j.Owner, j.Attempts, j.Error
			var res scrub.ShardResult
			if len(j.Result) > 0 && json.Unmarshal(j.Result, &res) == nil && a.Owner == "" {
				a.Owner = res.By
			}
			a.Files = sh.To - sh.From
			for _, f := range files {
				if f.Seq >= sh.From && f.Seq < sh.To && f.DoneAt != nil {
					a.FilesDone++
				}
			}
		}
		out = append(out, a)
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
	if err := s.scrubs.Create(q.ctx, rec); errors.Is(err, catalog.ErrState) {
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
	if err := s.scrubs.Cancel(q.ctx, id); err != nil {
		if err == q.ctx.Err() { // the caller left while the run stopped
			return err
		}
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
