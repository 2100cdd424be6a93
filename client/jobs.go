package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// JobsFilter selects jobs; empty fields select all.
type JobsFilter struct {
	Dataset, Kind, State string
	Limit                int // 0: dozod's default (100)
}

// Jobs lists the jobs the caller may see, newest first: every job for an
// admin, the jobs of their datasets for a custodian.
func (c *Client) Jobs(ctx context.Context, f JobsFilter) ([]api.Job, error) {
	q := url.Values{}
	for k, v := range map[string]string{"dataset": f.Dataset, "kind": f.Kind, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := api.ListJobs.Path()
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var js []api.Job
	return js, c.do(ctx, http.MethodGet, path, nil, &js)
}

// Job returns one job: state, progress, owner and lease, result or error.
func (c *Client) Job(ctx context.Context, id string) (*api.Job, error) {
	var j api.Job
	return &j, c.do(ctx, http.MethodGet, api.ShowJob.Path(id), nil, &j)
}

// CancelJob asks for a job to end: a queued job ends at once, a running
// one at its next step. Every job is resumable, so what it did stays
// done and a new job picks up from there.
func (c *Client) CancelJob(ctx context.Context, id string) (*api.Job, error) {
	var j api.Job
	return &j, c.do(ctx, http.MethodDelete, api.CancelJob.Path(id), nil, &j)
}

// WaitJob polls a job every interval until it has ended, calling
// progress (if set) with each answer, and returns the final job.
// Cancelling ctx stops the waiting, not the job.
func (c *Client) WaitJob(ctx context.Context, id string, interval time.Duration, progress func(*api.Job)) (*api.Job, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(j)
		}
		if j.Finished() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
