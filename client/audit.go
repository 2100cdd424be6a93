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
	Since, Until  string // RFC 3339 or YYYY-MM-DD (UTC); Until is exclusive
	// Actions keeps only these actions; ExcludeActions drops these.
	Actions, ExcludeActions []string
	Result                  string // ok, refused, error or client-reported
	File                    string // a file name: its fetches, presigns, uploads and refusals
	Limit                   int
}

// AuditList returns the newest matching audit records, oldest first, each
// with the name of the file it concerns when it concerns one. Admins may
// list everything; a custodian must name their dataset.
func (c *Client) AuditList(ctx context.Context, q AuditQuery) ([]api.AuditEntry, error) {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("dataset", q.Dataset)
	set("user", q.User)
	set("since", q.Since)
	set("until", q.Until)
	set("action", strings.Join(q.Actions, ","))
	set("exclude_action", strings.Join(q.ExcludeActions, ","))
	set("result", q.Result)
	set("file", q.File)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := api.ListAudit.Path()
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out []api.AuditEntry
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// FetchReport is what a finished fetch reports to dozod.
type FetchReport struct {
	Bytes    int64
	Verified bool
	Elapsed  time.Duration
}

// FetchDone tells dozod that a fetch of file id finished, so the audit
// log shows the transfer completed and how many bytes it wrote (recorded
// as client-reported: dozod never sees the transfer itself).
func (c *Client) FetchDone(ctx context.Context, fileID string, r *FetchReport) error {
	req := api.FetchDoneRequest{Bytes: r.Bytes, Verified: r.Verified, ElapsedMS: r.Elapsed.Milliseconds()}
	return c.do(ctx, http.MethodPost, api.FetchDone.Path(fileID), req, nil)
}

// AuditVerify asks dozod to verify the whole stored chain (admin),
// including the anchors dozod made with its Vault audit key (each MAC
// checked with Vault, each anchored record still in the log unchanged).
// With an anchor of the caller's own (the last record of an earlier
// export) it also checks that the log still holds that record unchanged.
// Either catches a log cut short or rewritten wholesale since.
func (c *Client) AuditVerify(ctx context.Context, anchor *audit.Anchor) (*api.AuditVerifyResponse, error) {
	path := api.VerifyAudit.Path()
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
	path := api.ExportAudit.Path()
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
			dozods := json.Unmarshal(b, &ae.Body) == nil && ae.Body.Error != ""
			if !dozods {
				ae.Body.Error = strings.TrimSpace(http.StatusText(resp.StatusCode))
			}
			return answer(ae, dozods, resp.Header)
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
