package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
)

// AuditQuery selects audit records; zero fields match all.
type AuditQuery struct {
	Dataset, User string
	Since         string // RFC 3339 or YYYY-MM-DD (UTC)
	Limit         int
}

// AuditList returns the newest matching audit records, oldest first.
// Admins may list everything; a custodian must name their dataset.
func (c *Client) AuditList(ctx context.Context, q AuditQuery) ([]api.AuditRecord, error) {
	v := url.Values{}
	if q.Dataset != "" {
		v.Set("dataset", q.Dataset)
	}
	if q.User != "" {
		v.Set("user", q.User)
	}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out []api.AuditRecord
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// AuditVerify asks dozod to verify the whole stored chain (admin),
// including the anchors dozod made with its Vault audit key (each MAC
// checked with Vault, each anchored record still in the log unchanged).
// With an anchor of the caller's own (the last record of an earlier
// export) it also checks that the log still holds that record unchanged.
// Either catches a log cut short or rewritten wholesale since.
func (c *Client) AuditVerify(ctx context.Context, anchor *audit.Anchor) (*api.AuditVerifyResponse, error) {
	path := "/v1/audit/verify"
	if anchor != nil {
		path += "?" + url.Values{"anchor_seq": {strconv.FormatUint(anchor.Seq, 10)}, "anchor_hash": {anchor.Hash}}.Encode()
	}
	var out api.AuditVerifyResponse
	return &out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// AuditExport streams the whole audit chain (JSON lines) to w (admin) and
// returns the number of bytes written. It is bounded by ctx only, not by
// the per-call timeout: a long log takes as long as it takes.
func (c *Client) AuditExport(ctx context.Context, w io.Writer) (int64, error) {
	const path = "/v1/audit/export"
	var n int64
	// Getting the answer is retried while dozod is away; the stream, once
	// it has begun to reach w, is not.
	err := c.retry(ctx, http.MethodGet, path, func(ctx context.Context, base string) tryResult {
		req, err := c.request(ctx, base, http.MethodGet, path, nil, "application/x-ndjson")
		if err != nil {
			return tryResult{err: err}
		}
		resp, err := c.api.Do(req)
		if err != nil {
			return tryResult{err: &TransportError{Method: http.MethodGet, Path: path, Err: unwrapURLError(err)}}
		}
		defer resp.Body.Close()
		c.debug("GET %s -> %d (request id %s)", path, resp.StatusCode, orDash(resp.Header.Get("X-Request-Id")))
		if resp.StatusCode != http.StatusOK {
			ae := &APIError{Method: http.MethodGet, Path: path, Status: resp.StatusCode}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if json.Unmarshal(b, &ae.Body) != nil || ae.Body.Error == "" {
				ae.Body.Error = strings.TrimSpace(http.StatusText(resp.StatusCode))
			}
			return tryResult{err: ae, retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		n, err = io.Copy(w, resp.Body)
		if err != nil {
			return tryResult{err: fmt.Errorf("audit export interrupted after %d bytes: %w", n, unwrapURLError(err))}
		}
		return tryResult{}
	})
	return n, err
}

// VerifyAuditExport verifies an export offline, with the same code dozod
// uses: no broker, no login.
func VerifyAuditExport(r io.Reader) (audit.Result, error) {
	return audit.VerifyExport(r)
}
