package client

import (
	"context"
	"net/http"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// lifecycleTimeout bounds a rotation or deletion call: dozod rewrites one
// header per file, or deletes every object of the dataset, before it
// answers. Both resume if cut short.
const lifecycleTimeout = 2 * time.Hour

// long returns a copy of c whose calls may take up to d.
func (c *Client) long(d time.Duration) *Client {
	cc := *c
	cc.timeout = max(c.timeout, d)
	return &cc
}

// RotateKey rotates a dataset's key: new uploads and new header wraps use
// the new key version, every stored header is rewrapped under it, and older
// versions are retired, so the stored headers open only under the new one.
// Payload objects are not re-encrypted, and file keys grantees already
// obtained keep working. Repeating it after an interruption resumes.
func (c *Client) RotateKey(ctx context.Context, dataset string) (*api.RotateKeyResponse, error) {
	var out api.RotateKeyResponse
	return &out, c.long(lifecycleTimeout).do(ctx, http.MethodPost, api.RotateKey.Path(dataset), struct{}{}, &out)
}

// DeleteDataset asks for a dataset's deletion; confirm must repeat the
// dataset id. The first call schedules it (State "scheduled"): the dataset
// is hidden at once and the deletion runs when the grace period ends. A
// call from then on runs it (every object on every target, then the key)
// and returns it complete, with the report. Repeating it after an
// interruption resumes.
func (c *Client) DeleteDataset(ctx context.Context, dataset, confirm string) (*api.DeletionStatus, error) {
	var out api.DeletionStatus
	return &out, c.long(lifecycleTimeout).do(ctx, http.MethodPost, api.DeleteDataset.Path(dataset), api.DeleteDatasetRequest{Confirm: confirm}, &out)
}

// UndeleteDataset cancels a scheduled deletion that has not begun to run:
// the dataset is visible again, as it was.
func (c *Client) UndeleteDataset(ctx context.Context, dataset string) (*api.DeletionStatus, error) {
	var out api.DeletionStatus
	return &out, c.do(ctx, http.MethodPost, api.UndeleteDataset.Path(dataset), struct{}{}, &out)
}

// DeletionReport fetches the stored report of a finished deletion.
func (c *Client) DeletionReport(ctx context.Context, dataset string) (*api.DeletionReport, error) {
	var out api.DeletionReport
	return &out, c.do(ctx, http.MethodGet, api.GetDeletionReport.Path(dataset), nil, &out)
}
