package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/dozo-vault/dozo/api"
)

// PresignUploadBatch asks dozod for PUT URLs of many pieces of an upload.
func (c *Client) PresignUploadBatch(ctx context.Context, upload string, pieces []api.PresignRequest) ([]api.PresignResponse, error) {
	var r api.PresignBatchResponse
	err := c.do(ctx, http.MethodPost, api.PresignUploadBatch.Path(upload), api.PresignBatchRequest{Pieces: pieces}, &r)
	return checkBatch(r, len(pieces), err)
}

func checkBatch(r api.PresignBatchResponse, n int, err error) ([]api.PresignResponse, error) {
	if err != nil {
		return nil, err
	}
	if len(r.URLs) != n {
		return nil, fmt.Errorf("dozod presigned %d of %d pieces", len(r.URLs), n)
	}
	return r.URLs, nil
}

// PresignFetchBatch asks dozod for the manifest entries of a run of a
// file's segments and GET URLs for their data (or parity) pieces.
func (c *Client) PresignFetchBatch(ctx context.Context, file string, req api.FetchBatchRequest) (*api.FetchBatchResponse, error) {
	var r api.FetchBatchResponse
	if err := c.do(ctx, http.MethodPost, api.PresignFetchBatch.Path(file), req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
