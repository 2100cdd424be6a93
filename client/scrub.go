package client

import (
	"context"
	"net/http"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// StartScrub asks dozod to start a scrub (admin only). It returns at once
// with the running run; dozod does the work.
func (c *Client) StartScrub(ctx context.Context, req api.ScrubRequest) (*api.ScrubRun, error) {
	var r api.ScrubRun
	return &r, c.do(ctx, http.MethodPost, api.StartScrub.Path(), req, &r)
}

// Scrub returns a run: progress, summary and, with findings, its findings.
func (c *Client) Scrub(ctx context.Context, id string, findings bool) (*api.ScrubRun, error) {
	var r api.ScrubRun
	path := api.ShowScrub.Path(id)
	if !findings {
		path += "?findings=false"
	}
	return &r, c.do(ctx, http.MethodGet, path, nil, &r)
}

// Scrubs lists recent runs, newest first.
func (c *Client) Scrubs(ctx context.Context) ([]api.ScrubRun, error) {
	var rs []api.ScrubRun
	return rs, c.do(ctx, http.MethodGet, api.ListScrubs.Path(), nil, &rs)
}

// CancelScrub stops a running scrub; files already checked keep their
// results.
func (c *Client) CancelScrub(ctx context.Context, id string) (*api.ScrubRun, error) {
	var r api.ScrubRun
	return &r, c.do(ctx, http.MethodDelete, api.CancelScrub.Path(id), nil, &r)
}

// WaitScrub polls a run every interval until it is no longer running,
// calling progress (if set) with each answer, and returns the final run
// with its findings. Cancelling ctx stops the waiting, not the scrub.
func (c *Client) WaitScrub(ctx context.Context, id string, interval time.Duration, progress func(*api.ScrubRun)) (*api.ScrubRun, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r, err := c.Scrub(ctx, id, false)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(r)
		}
		if r.State != api.ScrubRunning {
			return c.Scrub(ctx, id, true)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
