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
	path := api.GrantRegister.Path()
	if dataset != "" {
		path = api.ListGrants.Path(dataset)
	}
	var gs []api.Grant
	return gs, c.do(ctx, http.MethodGet, path+"?expiring_days="+strconv.Itoa(days), nil, &gs)
}

// Warnings returns dozod's notices for the caller (the Dozo-Warning
// lines dozod adds to every answer: grants about to end). It asks with a
// whoami, which any logged-in user may make, once: it is no reason to
// wait for a dozod that does not answer (the command that follows will).
func (c *Client) Warnings(ctx context.Context) ([]string, error) {
	path := api.Whoami.Path()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, base := c.brokers.current()
	req, err := c.request(ctx, base, http.MethodGet, path, nil, "application/json")
	if err != nil {
		return nil, err
	}
	resp, err := c.api.Do(req)
	if err != nil {
		return nil, &TransportError{Method: http.MethodGet, Path: path, Err: unwrapURLError(err)}
	}
	resp.Body.Close()
	c.debug("GET %s -> %d (request id %s)", path, resp.StatusCode, orDash(resp.Header.Get("X-Request-Id")))
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Method: http.MethodGet, Path: path, Status: resp.StatusCode}
	}
	return resp.Header.Values(api.WarningHeader), nil
}
