// Package client is a Go client of the dozod HTTP API (package api): one
// Client, configured by Options, with a typed method per API call, each
// taking a context first. It retries calls safe to repeat while dozod does
// not answer and moves between several dozod URLs. It also keeps the CLI's
// local state (config directory, login token, pinned CA, age identity) and
// the Vault login that yields the token: how the client gets its
// credentials. Moving data to and from storage is package transfer's job.
//
// Security properties kept throughout:
//   - the token goes to dozod only, over TLS (plain http to a loopback
//     address only), and to nothing else; a pinned CA vouches for dozod
//     alone;
//   - the file key leaves this process once, at upload begin, to dozod;
//   - tokens, keys, passwords and presigned URLs (which are bearer
//     capabilities) never appear in errors or logs.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/internal/loopback"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// Options configure a Client.
type Options struct {
	// Broker is dozod's base URL, e.g. https://dozo.example.org:8443, or
	// several, comma-separated: replicas of dozod over one catalog. Calls go
	// to one of them and move to the next, round robin, when it does not
	// answer. The first names the service (upload journals are kept per
	// broker).
	Broker string
	// CACert is a PEM file. When set, dozod's certificate must chain to it
	// or be it (a self-signed leaf from `dozod gen-cert`), and to nothing
	// else (the system roots are not consulted), so a compromised public CA
	// cannot impersonate the broker. When empty the system roots are used.
	// It applies to dozod only, never to storage.
	CACert string
	// Token is the caller's Vault token, sent as a bearer token to dozod
	// only (never to storage).
	Token string
	// UserAgent is sent with every request.
	UserAgent string
	// Timeout bounds each dozod API call (not piece transfers); default 60s.
	Timeout time.Duration
	// RetryFor bounds how long a call is retried while dozod does not
	// answer (a restart, a failover): see Client.retry for which calls.
	// Zero means DefaultBrokerRetry; a negative value turns retries off.
	RetryFor time.Duration
	// RetryBackoff is the first wait between two tries; it doubles up to
	// 8 s. Zero means 250 ms.
	RetryBackoff time.Duration
	// Notice, if set, receives a line for the user when dozod stops
	// answering and calls wait for it: once per outage, never per call.
	Notice func(format string, args ...any)
	// Debug, if set, receives one line per API call (method, path,
	// status, request id). Never the token or a presigned URL.
	Debug func(format string, args ...any)
}

// Client talks to dozod. It is safe for concurrent use.
type Client struct {
	brokers  *brokers
	token    string
	ua       string
	timeout  time.Duration
	retryFor time.Duration
	// retryFirst is the first backoff; tests shorten it.
	retryFirst time.Duration
	notice     func(string, ...any)
	debug      func(string, ...any)
	api        *http.Client // to dozod: pinned CA
}

// New returns a Client. It does not contact dozod.
func New(o Options) (*Client, error) {
	list, err := parseBrokers(o.Broker)
	if err != nil {
		return nil, &Error{Op: "connecting to dozod", Err: err,
			Hint: "pass --broker URL or set DOZO_BROKER"}
	}
	for i, b := range list {
		u, err := url.Parse(strings.TrimRight(b, "/"))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, &Error{Op: "connecting to dozod", Err: fmt.Errorf("bad broker address %q", b),
				Hint: "use a URL like https://host:port, or several separated by commas"}
		}
		if u.Scheme == "http" {
			// Every call carries the Vault token: plain HTTP only to this host,
			// as dozod itself allows.
			if !loopback.Host(u.Hostname()) {
				return nil, &Error{Op: "connecting to dozod", Err: fmt.Errorf("plain http to %s would send the login token unencrypted", u.Host),
					Hint: "use https://; http:// is allowed only for a loopback address"}
			}
		}
		list[i] = u.String()
	}
	apiTLS := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pool, err := loadCA(o.CACert)
		if err != nil {
			return nil, err
		}
		apiTLS.RootCAs = pool
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	debug := o.Debug
	if debug == nil {
		debug = func(string, ...any) {}
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "dozo-client"
	}
	retryFor := o.RetryFor
	if retryFor == 0 {
		retryFor = DefaultBrokerRetry
	}
	backoff := o.RetryBackoff
	if backoff <= 0 {
		backoff = retryFirst
	}
	notice := o.Notice
	if notice == nil {
		notice = func(string, ...any) {}
	}
	return &Client{
		brokers:    &brokers{urls: list},
		token:      o.Token,
		ua:         ua,
		timeout:    timeout,
		retryFor:   retryFor,
		retryFirst: backoff,
		notice:     notice,
		debug:      debug,
		api:        &http.Client{Transport: Transport(apiTLS, 8)},
	}, nil
}

// Transport is the HTTP transport of every dozo connection, to dozod or
// to storage: tc's TLS, conns idle connections per host, bounded dial,
// handshake and header waits, and no bound on a whole body's transfer.
func Transport(tc *tls.Config, conns int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          conns * 2,
		MaxIdleConnsPerHost:   conns,
		ForceAttemptHTTP2:     true,
	}
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Op: "loading the broker CA certificate", Err: err,
			Hint: "check --ca-cert / DOZO_CA_CERT"}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &Error{Op: "loading the broker CA certificate", Err: fmt.Errorf("%s holds no PEM certificate", path),
			Hint: "check --ca-cert / DOZO_CA_CERT"}
	}
	return pool, nil
}

// Broker returns dozod's base URL: the first configured, which names the
// service whichever replica answers.
func (c *Client) Broker() string { return c.brokers.urls[0] }

// HasToken reports whether the client carries a login token.
func (c *Client) HasToken() bool { return c.token != "" }

// do sends one API call: in (if not nil) as the JSON body, and decodes a
// 2xx JSON response into out (if not nil). A non-2xx answer is an
// *APIError. Each try is bounded by the client's timeout; while dozod does
// not answer, calls safe to repeat are retried (see retry).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	return c.retry(ctx, method, path, func(ctx context.Context, base string) tryResult {
		return c.try(ctx, base, method, path, body, in != nil, out)
	})
}

// try sends one API call to base once. An answer cut short is a
// *TransportError like no answer at all: dozod may not have finished.
func (c *Client) try(ctx context.Context, base, method, path string, body []byte, hasBody bool, out any) tryResult {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := c.request(ctx, base, method, path, rd, "application/json")
	if err != nil {
		return tryResult{err: err}
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.api.Do(req)
	if err != nil {
		c.debug("%s %s: %v", method, path, err)
		return tryResult{err: &TransportError{Method: method, Path: path, Err: unwrapURLError(err)}}
	}
	defer resp.Body.Close()
	rid := resp.Header.Get("X-Request-Id")
	c.debug("%s %s -> %d (request id %s)", method, path, resp.StatusCode, orDash(rid))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		dozods := json.Unmarshal(b, &ae.Body) == nil && ae.Body.Error != ""
		if !dozods {
			ae.Body.Error = strings.TrimSpace(http.StatusText(resp.StatusCode))
		}
		if ae.Body.RequestID == "" {
			ae.Body.RequestID = rid
		}
		return answer(ae, dozods, resp.Header)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return tryResult{}
	}
	// dozod bounds request bodies at api.MaxBodyBytes; responses may be
	// larger (a manifest of a 200 GB file is a few MB), so bound generously.
	b, err := io.ReadAll(io.LimitReader(resp.Body, storage.MaxManifestSize+(1<<20)))
	if err != nil {
		c.debug("%s %s: reading the answer: %v", method, path, err)
		return tryResult{err: &TransportError{Method: method, Path: path, Err: fmt.Errorf("reading the answer: %w", unwrapURLError(err))}}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return tryResult{err: fmt.Errorf("%s %s: decoding dozod's answer: %w", method, path, err)}
	}
	return tryResult{}
}

// request is a request to dozod at base with the headers every call
// carries: who we are and, if logged in, the token.
func (c *Client) request(ctx context.Context, base, method, path string, body io.Reader, accept string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// URL: harmless for dozod's URLs, but the same helper serves presigned
// URLs, whose query strings are credentials.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Health checks that dozod answers (no login needed).
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	return &h, c.do(ctx, http.MethodGet, api.GetHealth.Path(), nil, &h)
}

// WhoAmI returns the caller as dozod sees them.
func (c *Client) WhoAmI(ctx context.Context) (*api.User, error) {
	var u api.User
	return &u, c.do(ctx, http.MethodGet, api.Whoami.Path(), nil, &u)
}

// SetRecipient registers the caller's age recipient (public key). Headers
// of files the caller fetches are wrapped to it.
func (c *Client) SetRecipient(ctx context.Context, recipient string) (*api.User, error) {
	var u api.User
	return &u, c.do(ctx, http.MethodPut, api.SetRecipient.Path(), api.RecipientRequest{Recipient: recipient}, &u)
}

// CreateDataset creates a dataset; the caller becomes its custodian.
func (c *Client) CreateDataset(ctx context.Context, req api.CreateDatasetRequest) (*api.Dataset, error) {
	var d api.Dataset
	return &d, c.do(ctx, http.MethodPost, api.CreateDataset.Path(), req, &d)
}

// ListDatasets lists the datasets the caller may see.
func (c *Client) ListDatasets(ctx context.Context) ([]api.Dataset, error) {
	var ds []api.Dataset
	return ds, c.do(ctx, http.MethodGet, api.ListDatasets.Path(), nil, &ds)
}

// Dataset describes one dataset.
func (c *Client) Dataset(ctx context.Context, id string) (*api.Dataset, error) {
	var d api.Dataset
	return &d, c.do(ctx, http.MethodGet, api.ShowDataset.Path(id), nil, &d)
}

// ListFiles lists a dataset's files.
func (c *Client) ListFiles(ctx context.Context, dataset string) ([]api.File, error) {
	var fs []api.File
	return fs, c.do(ctx, http.MethodGet, api.ListFiles.Path(dataset), nil, &fs)
}

// BeginUpload opens an upload session. req carries the file key and nonce
// the client made; dozod wraps the key with the dataset's Transit key and
// keeps only the wrapped form.
//
// req.PresignSegments asks for the first PUT URLs with the answer; a dozod
// from before that field refuses it unread, and is asked again without.
func (c *Client) BeginUpload(ctx context.Context, dataset string, req api.BeginUploadRequest) (*api.Upload, error) {
	var u api.Upload
	err := c.do(ctx, http.MethodPost, api.BeginUpload.Path(dataset), req, &u)
	if req.PresignSegments != 0 && olderDozod(err, "presign_segments") {
		req.PresignSegments = 0
		return c.BeginUpload(ctx, dataset, req)
	}
	return &u, err
}

// olderDozod reports whether err is dozod refusing a request for a JSON
// field it does not know yet: its strict decoding names the field and
// refuses before anything is done, so the request may be made again
// without it.
func olderDozod(err error, field string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Body.Error, `unknown field "`+field+`"`)
}

// Upload returns an upload session with its committed segments.
func (c *Client) Upload(ctx context.Context, id string) (*api.Upload, error) {
	var u api.Upload
	return &u, c.do(ctx, http.MethodGet, api.ShowUpload.Path(id), nil, &u)
}

// PresignUpload asks for a PUT URL for one piece of an upload.
func (c *Client) PresignUpload(ctx context.Context, upload, target, key string) (*api.PresignResponse, error) {
	var p api.PresignResponse
	return &p, c.do(ctx, http.MethodPost, api.PresignUpload.Path(upload), api.PresignRequest{Target: target, Key: key}, &p)
}

// CommitSegment records that every piece of a segment is stored.
func (c *Client) CommitSegment(ctx context.Context, upload string, seg storage.SegmentMeta) (*api.Upload, error) {
	var u api.Upload
	return &u, c.do(ctx, http.MethodPut, api.CommitSegment.Path(upload, fmt.Sprint(seg.Index)), seg, &u)
}

// CompleteUpload finishes an upload with the plaintext checksums; the file
// becomes available.
//
// req.Commit commits a segment first, in the same call; a dozod from
// before that field is sent the commit on its own, then the complete.
func (c *Client) CompleteUpload(ctx context.Context, upload string, req api.CompleteUploadRequest) (*api.File, error) {
	var f api.File
	err := c.do(ctx, http.MethodPost, api.CompleteUpload.Path(upload), req, &f)
	if req.Commit != nil && olderDozod(err, "commit") {
		if _, err := c.CommitSegment(ctx, upload, *req.Commit); err != nil {
			return nil, err
		}
		req.Commit = nil
		return c.CompleteUpload(ctx, upload, req)
	}
	return &f, err
}

// AbortUpload abandons an upload; dozod deletes its pieces.
func (c *Client) AbortUpload(ctx context.Context, upload string) error {
	return c.do(ctx, http.MethodDelete, api.AbortUpload.Path(upload), nil, nil)
}

// Fetch asks for a file: its manifest, a header wrapped for the caller's
// registered recipient, and the targets to read from.
func (c *Client) Fetch(ctx context.Context, dataset, name string) (*api.FetchResponse, error) {
	var f api.FetchResponse
	return &f, c.do(ctx, http.MethodPost, api.FetchFile.Path(dataset, name), nil, &f)
}

// FetchWithBatch is Fetch whose answer also carries the first presign
// batch (FetchResponse.Batch): batch's segments, cut to those the file has
// and one batch holds. A small file then needs no batch call of its own.
// A dozod from before the body refuses it unread, and is asked again
// without: its answer has no Batch.
func (c *Client) FetchWithBatch(ctx context.Context, dataset, name string, batch api.FetchBatchRequest) (*api.FetchResponse, error) {
	var f api.FetchResponse
	err := c.do(ctx, http.MethodPost, api.FetchFile.Path(dataset, name), batch, &f)
	if olderDozod(err, "first") {
		return c.Fetch(ctx, dataset, name)
	}
	return &f, err
}

// PresignFetch asks for a GET URL for one piece of a file being fetched.
func (c *Client) PresignFetch(ctx context.Context, file, target, key string) (*api.PresignResponse, error) {
	var p api.PresignResponse
	return &p, c.do(ctx, http.MethodPost, api.PresignFetch.Path(file), api.PresignRequest{Target: target, Key: key}, &p)
}

// Grant records a use period for user on a dataset (req.Until inclusive,
// UTC). A current grant of the user is superseded and kept in the history.
func (c *Client) Grant(ctx context.Context, dataset, user string, req api.GrantRequest) (*api.Grant, error) {
	var g api.Grant
	return &g, c.do(ctx, http.MethodPut, api.PutGrant.Path(dataset, user), req, &g)
}

// Revoke ends user's access to a dataset now; reason goes in the register.
func (c *Client) Revoke(ctx context.Context, dataset, user, reason string) (*api.Grant, error) {
	var g api.Grant
	return &g, c.do(ctx, http.MethodDelete, api.RevokeGrant.Path(dataset, user), api.RevokeRequest{Reason: reason}, &g)
}

// Grants lists a dataset's register: current rows, or every row (history).
func (c *Client) Grants(ctx context.Context, dataset string, history bool) ([]api.Grant, error) {
	var gs []api.Grant
	return gs, c.do(ctx, http.MethodGet, api.ListGrants.Path(dataset)+historyQuery(history), nil, &gs)
}
