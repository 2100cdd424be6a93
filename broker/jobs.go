package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/jobs"
	"github.com/dozo-vault/dozo/scrub"
)

// JobsConfig is the [jobs] section of dozod's config: the job runner's
// lease and how long finished jobs' records are kept.
type JobsConfig struct {
	// Lease is how long a dozod's claim on a job lasts unless renewed
	// (every third of it); a job of a dozod that died is taken over by
	// another once it has run out.
	Lease time.Duration `toml:"lease" env:"DOZOD_JOBS_LEASE" help:"30s (1s..10m): a dead dozod's jobs are taken over after this; renewed every third of it"`
	// Retention is how long the record of a finished job is kept. What
	// jobs did stays in the audit chain, and a scrub's findings in its run.
	Retention time.Duration `toml:"retention" env:"DOZOD_JOBS_RETENTION" help:"2160h (90 days, 1h..87600h): finished jobs' records are deleted after this; the audit chain keeps what they did"`
}

// DefaultJobRetention keeps a quarter of job records for operators to
// look back on; the audit chain keeps the actions for good.
const DefaultJobRetention = 90 * 24 * time.Hour

// validate runs after defaults (0 becomes the default).
func (c *JobsConfig) validate() error {
	if c.Lease == 0 {
		c.Lease = jobs.DefaultLease
	}
	if c.Retention == 0 {
		c.Retention = DefaultJobRetention
	}
	if c.Lease < jobs.MinLease || c.Lease > jobs.MaxLease {
		return fmt.Errorf("jobs.lease %v: must be %v..%v", c.Lease, jobs.MinLease, jobs.MaxLease)
	}
	if c.Retention < time.Hour || c.Retention > 10*365*24*time.Hour {
		return fmt.Errorf("jobs.retention %v: must be 1h..87600h", c.Retention)
	}
	return nil
}

func apiJob(j *catalog.Job) api.Job {
	out := api.Job{ID: j.ID, Kind: j.Kind, Dataset: j.DatasetID, State: j.State,
		Progress: api.JobProgress{Done: j.ProgressDone, Total: j.ProgressTotal, Note: j.ProgressNote},
		Owner:    j.Owner, LeaseUntil: j.LeaseUntil, Attempts: j.Attempts,
		RequestedBy: j.RequestedBy, CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, EndedAt: j.EndedAt,
		CancelRequested: j.CancelRequested, Error: j.Error}
	if len(j.Params) > 0 && string(j.Params) != "{}" && json.Valid(j.Params) {
		out.Params = j.Params
	}
	if len(j.Result) > 0 && json.Valid(j.Result) {
		out.Result = j.Result
	}
	return out
}

// listJobs lists jobs, newest first: every job to an admin, the jobs of
// their datasets to a custodian, none to anyone else.
func (s *Server) listJobs(q *request) error {
	if err := s.checkUserFrozen(q); err != nil {
		return err
	}
	q.object = "jobs"
	v := q.r.URL.Query()
	f := catalog.JobFilter{Kind: v.Get("kind"), State: v.Get("state")}
	if ds := v.Get("dataset"); ds != "" {
		if api.ValidateDatasetID(ds) != nil {
			return errorf(http.StatusBadRequest, "dataset %q is not a dataset id", ds)
		}
		f.DatasetIDs = []string{ds}
		q.object = "dataset/" + ds
	}
	switch f.State {
	case "", api.JobQueued, api.JobRunning, api.JobDone, api.JobFailed, api.JobCancelled:
	default:
		return errorf(http.StatusBadRequest, "state %q: want queued, running, done, failed or cancelled", f.State)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return errorf(http.StatusBadRequest, "limit %q: want 1..1000", l)
		}
		f.Limit = n
	}
	if !s.isAdmin(q.user) {
		who := q.user.principal()
		f.CustodianOf = &who
	}
	js, err := s.cat.Jobs(q.ctx, f)
	if err != nil {
		return internal("listing jobs", err)
	}
	out := make([]api.Job, len(js))
	for i := range js {
		out[i] = apiJob(&js[i])
	}
	return q.reply(http.StatusOK, out)
}

// jobAccess finds a job the caller may see: an admin any; a custodian
// one of their dataset's (lifecycleAccess: also while a deletion hides
// the dataset). Everyone else gets the same 404 as for a job that does
// not exist, or the dataset's usual answer.
func (s *Server) jobAccess(q *request) (*catalog.Job, error) {
	if err := s.checkUserFrozen(q); err != nil {
		return nil, err
	}
	id := q.r.PathValue("id")
	q.object = "job/" + id
	none := &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("job %q not found", id),
		hint: "`dozo jobs` lists the jobs you can see"}
	j, err := s.cat.Job(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, none
	}
	if err != nil {
		return nil, internal("reading the job", err)
	}
	if s.isAdmin(q.user) {
		return j, nil
	}
	if j.DatasetID == "" {
		return nil, none
	}
	if _, _, err := s.lifecycleAccess(q, j.DatasetID); err != nil {
		// Not found is said of the job: its dataset is not named.
		if he, ok := err.(*httpError); ok && he.status == http.StatusNotFound {
			return nil, none
		}
		return nil, err
	}
	q.object = "job/" + id
	return j, nil
}

func (s *Server) showJob(q *request) error {
	j, err := s.jobAccess(q)
	if err != nil {
		return err
	}
	return q.reply(http.StatusOK, apiJob(j))
}

// cancelJob asks for a job to end. A queued job is cancelled at once; a
// running one stops at its next step (at once if it runs on this dozod,
// else at its runner's next lease renewal). Allowed on a frozen dataset:
// stopping destroys nothing, and every job here is resumable.
func (s *Server) cancelJob(q *request) error {
	j, err := s.jobAccess(q)
	if err != nil {
		return err
	}
	if err := q.noBody(); err != nil {
		return err
	}
	if j.Kind == scrub.Kind {
		// As DELETE /v1/scrubs/{id}: the run ends with its job.
		if err := s.scrubs.Cancel(q.ctx, j.ID); err != nil {
			if err == q.ctx.Err() {
				return err
			}
			return internal("cancelling the scrub", err)
		}
		if j, err = s.cat.Job(q.ctx, j.ID); err != nil {
			return internal("reading the job", err)
		}
		return q.reply(http.StatusOK, apiJob(j))
	}
	j, err = s.jobs.Cancel(q.ctx, j.ID)
	switch {
	case errors.Is(err, catalog.ErrState):
		return errorf(http.StatusConflict, "job %s has already ended", q.r.PathValue("id"))
	case err != nil:
		return internal("cancelling the job", err)
	}
	return q.reply(http.StatusOK, apiJob(j))
}
