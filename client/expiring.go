package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/dozo-vault/dozo/api"
)

// ExpiringGrants lists the running grants the caller may review (of
// dataset, or all when dataset is "") whose last day is within days days
// and that no scheduled grant follows: whom a custodian should book the
// next period for.
func (c *Client) ExpiringGrants(ctx context.Context, dataset string, days int) ([]api.Grant, error) {
	path := "/v1/grants"
	if dataset != "" {
		path = "/v1/datasets/" + esc(dataset) + "/grants"
	}
	var gs []api.Grant
	return gs, c.do(ctx, http.MethodGet, path+"?expiring_days="+strconv.Itoa(days), nil, &gs)
}

// Warnings returns dozod's notices for the caller (the Dozo-Warning
// lines dozod adds to every answer: grants about to end). It asks with a
// whoami, which any logged-in user may make.
func (c *Client) Warnings(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/v1/whoami", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.api.Do(req)
	if err != nil {
		return nil, &TransportError{Method: http.MethodGet, Path: "/v1/whoami", Err: unwrapURLError(err)}
	}
	resp.Body.Close()
	c.debug("GET /v1/whoami -> %d (request id %s)", resp.StatusCode, orDash(resp.Header.Get("X-Request-Id")))
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Method: http.MethodGet, Path: "/v1/whoami", Status: resp.StatusCode}
	}
	return resp.Header.Values(api.WarningHeader), nil
}
