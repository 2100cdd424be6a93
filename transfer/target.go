package transfer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// ErrNotThroughBroker is returned by the presigned target's Stat, List and
// Delete: dozod presigns piece PUTs and GETs only, so a client can neither
// enumerate nor remove stored objects.
var ErrNotThroughBroker = errors.New("not supported through the broker")

// storageHTTP moves pieces through presigned URLs. Storage is reached
// through the system roots only (SSL_CERT_FILE and SSL_CERT_DIR add a
// centre's private CA). The certificate pinned for dozod is not among
// them: it vouches for dozod alone, and trusting it here would let whoever
// holds dozod's key impersonate storage too. Piece transfers can take
// minutes on a slow link; they are bounded by the caller's context and the
// transport's idle timeouts instead of a total timeout.
var storageHTTP = &http.Client{Transport: storageTransport()}

func storageTransport() *http.Transport {
	t := client.Transport(&tls.Config{MinVersion: tls.VersionTLS12}, 64)
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok && err == nil {
			return pieceConn{tc}, nil
		}
		return c, err
	}
	return t
}

// pieceConn is a TCP connection that sends a piece PUT's body straight
// from memory, or else in writes of up to 1 MiB. net/http hands a body of
// known length to the connection behind an io.LimitedReader, which hides
// the body's WriterTo, and a plain TCP connection copies such a reader
// through a 32 KiB buffer: a system call per 32 KiB, 48 000 of them per
// GiB uploaded with 4+2, and a copy of every byte. A piece in memory (a
// bytes.Reader, as storage.Writer sends it, in a memBody) is written from
// where it lies.
// (Over TLS the connection is below the encryption, which writes records
// of its own.)
type pieceConn struct{ *net.TCPConn }

var pieceBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// writerOnly hides the connection's ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

func (c pieceConn) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok || lr.N < 64<<10 {
		return c.TCPConn.ReadFrom(r)
	}
	switch body := lr.R.(type) {
	case *os.File, net.Conn: // the kernel's sendfile and splice do better
		return c.TCPConn.ReadFrom(r)
	case memBody:
		if int64(body.Len()) <= lr.N {
			n, err := body.WriteTo(c.TCPConn)
			lr.N -= n
			if inPlaceHook != nil {
				inPlaceHook(n)
			}
			return n, err
		}
	}
	bp := pieceBufs.Get().(*[]byte)
	defer pieceBufs.Put(bp)
	return io.CopyBuffer(writerOnly{c.TCPConn}, lr, *bp)
}

// memBody is a request body held in memory. net/http passes a body that
// is its own io.ReadCloser to the connection as it is (an io.NopCloser
// would stay wrapped, hiding the bytes.Reader), so pieceConn can see it.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// inPlaceHook, if set (by tests), is told of every body pieceConn wrote
// from memory.
var inPlaceHook func(n int64)

// presignFunc asks dozod for a URL for one piece key on one target.
type presignFunc func(ctx context.Context, target, key string) (*api.PresignResponse, error)

// PresignedTarget is a storage.Target that reaches one of dozod's targets
// through presigned URLs. The client holds no storage credentials: each
// piece PUT or GET is authorised by dozod individually, for this upload or
// fetch only, and expires quickly.
type PresignedTarget struct {
	id, domain string
	presign    presignFunc
	// stale, if set, is told that storage rejected a URL it handed out
	// (expired by storage's clock), so the next presign asks dozod afresh
	// instead of handing out another URL of the same batch.
	stale func()
	http  *http.Client
}

// uploadTargets returns presigned targets for an upload session, in the
// order dozod listed them, and where each segment's pieces go among them,
// as dozod placed them (p). The URLs are presigned in batches (see
// batchPresigner).
func uploadTargets(c *client.Client, u *api.Upload, p placement) ([]storage.Target, func(seg int) ([]storage.Target, error)) {
	b := uploadPresigner(c, u, p)
	b.seed(u.Presigned) // the URLs that came with the begin, if any
	ts := targets(storageHTTP, u.Targets, b.presign, b.flush)
	return ts, p.on(ts)
}

// FetchTargets returns presigned targets for reading the file whose
// manifest head is m from targets ts, and the source of its manifest
// entries: both come from dozod in the same batches (see fetchBatcher).
func FetchTargets(c *client.Client, m *storage.Manifest, ts []api.Target) ([]storage.Target, storage.EntrySource) {
	b := newFetchBatcher(c, m)
	return targets(storageHTTP, ts, b.presign, b.flush), b.Entry
}

// fetchTargets is FetchTargets for the answer of a fetch, starting with
// the presign batch that came with it (fr.Batch), if any.
func fetchTargets(c *client.Client, fr *api.FetchResponse) ([]storage.Target, storage.EntrySource, error) {
	b := newFetchBatcher(c, fr.Manifest)
	if err := b.seed(fr.Batch); err != nil {
		return nil, nil, err
	}
	return targets(storageHTTP, fr.Targets, b.presign, b.flush), b.Entry, nil
}

func targets(hc *http.Client, ts []api.Target, presign presignFunc, stale func()) []storage.Target {
	out := make([]storage.Target, len(ts))
	for i, t := range ts {
		out[i] = &PresignedTarget{id: t.ID, domain: t.Domain, presign: presign, stale: stale, http: hc}
	}
	return out
}

// presignURL asks for a URL for key on this target. A refusal by dozod
// (access withdrawn since the transfer began) comes back as a
// *client.RefusedError, which ends the whole transfer.
func (t *PresignedTarget) presignURL(ctx context.Context, method, key string) (*api.PresignResponse, error) {
	p, err := t.presign(ctx, t.id, key)
	if err != nil {
		return nil, fmt.Errorf("presigning %s of %s on %s: %w", method, key, t.id, client.Refusal(err))
	}
	return p, nil
}

// rejected reports a storage answer that says the URL itself is no good
// (its signature expired, or storage's clock runs ahead of dozod's): a
// fresh URL may succeed.
func (t *PresignedTarget) rejected(status int) bool {
	if status != http.StatusForbidden {
		return false
	}
	if t.stale != nil {
		t.stale()
	}
	return true
}

func (t *PresignedTarget) ID() string     { return t.id }
func (t *PresignedTarget) Domain() string { return t.domain }

// putAttempts bounds retries of one piece PUT. Pieces are whole objects in
// memory (a bytes.Reader from storage.Writer), so a retry resends them.
const putAttempts = 4

// Put implements storage.Target: presign, then PUT exactly size bytes.
func (t *PresignedTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s on %s: unknown size", key, t.id)
	}
	rs, seekable := r.(io.ReadSeeker)
	var err error
	for attempt := range putAttempts {
		if attempt > 0 {
			if !seekable {
				break
			}
			if _, serr := rs.Seek(0, io.SeekStart); serr != nil {
				break
			}
			if werr := sleepCtx(ctx, backoff(attempt)); werr != nil {
				return werr
			}
		}
		var retry bool
		retry, err = t.putOnce(ctx, key, r, size)
		if err == nil || !retry {
			return err
		}
	}
	return err
}

func (t *PresignedTarget) putOnce(ctx context.Context, key string, r io.Reader, size int64) (retry bool, err error) {
	p, err := t.presignURL(ctx, http.MethodPut, key)
	if err != nil {
		return retryableAPI(err), err
	}
	body := io.NopCloser(r)
	if br, ok := r.(*bytes.Reader); ok {
		body = memBody{br}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.URL, body)
	if err != nil {
		return false, fmt.Errorf("put %s on %s: bad presigned URL", key, t.id)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := t.http.Do(req)
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("put %s on %s (%s): %w", key, t.id, redact(p.URL), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return false, nil
	}
	return resp.StatusCode >= 500 || t.rejected(resp.StatusCode) || resp.StatusCode == http.StatusTooManyRequests,
		fmt.Errorf("put %s on %s (%s): %s", key, t.id, redact(p.URL), s3Status(resp))
}

// Get implements storage.Target with a ranged GET on a presigned URL. A
// 404 from storage wraps storage.ErrNotFound, so the reader falls back to
// parity. A URL storage rejects (403: expired on the way, or clocks
// disagree) is presigned afresh once; dozod re-checks access then, so a
// withdrawn grant surfaces as a *client.RefusedError, never as a bad piece.
func (t *PresignedTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s on %s: negative offset %d", key, t.id, off)
	}
	if length == 0 {
		return http.NoBody, nil
	}
	rc, retry, err := t.getOnce(ctx, key, off, length)
	if retry {
		rc, _, err = t.getOnce(ctx, key, off, length)
	}
	return rc, err
}

// getOnce is one presign and ranged GET; retry is true when storage
// rejected the URL itself.
func (t *PresignedTarget) getOnce(ctx context.Context, key string, off, length int64) (_ io.ReadCloser, retry bool, _ error) {
	p, err := t.presignURL(ctx, http.MethodGet, key)
	if err != nil {
		return nil, false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return nil, false, fmt.Errorf("get %s on %s: bad presigned URL", key, t.id)
	}
	switch {
	case length > 0:
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+length-1, 10))
	case off > 0:
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("get %s on %s (%s): %w", key, t.id, redact(p.URL), unwrapURLError(err))
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusOK:
		// The server ignored the range: skip to off ourselves.
		if off > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
				resp.Body.Close()
				return nil, false, fmt.Errorf("get %s on %s: short object", key, t.id)
			}
		}
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, false, fmt.Errorf("get %s on %s: %w", key, t.id, storage.ErrNotFound)
	default:
		defer resp.Body.Close()
		return nil, t.rejected(resp.StatusCode), fmt.Errorf("get %s on %s (%s): %s", key, t.id, redact(p.URL), s3Status(resp))
	}
	if length > 0 {
		return &rangeBody{lr: io.LimitedReader{R: resp.Body, N: length}, body: resp.Body}, false, nil
	}
	return resp.Body, false, nil
}

// rangeBody is a ranged GET's body, read up to the range's length. Once
// all of it is read, Close first reads on to the body's end (at most a
// few bytes: a chunked answer's last chunk) so that net/http keeps the
// connection for the next piece: it drops one closed before the end of
// its answer, and a body of the exact length has not yet seen the end of
// an answer that came without a Content-Length. Closed early, nothing is
// read.
type rangeBody struct {
	lr   io.LimitedReader
	body io.ReadCloser
}

func (b *rangeBody) Read(p []byte) (int, error) { return b.lr.Read(p) }

func (b *rangeBody) Close() error {
	if b.lr.N == 0 {
		io.CopyN(io.Discard, b.body, 4<<10)
	}
	return b.body.Close()
}

func (t *PresignedTarget) Stat(context.Context, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, fmt.Errorf("stat on %s: %w", t.id, ErrNotThroughBroker)
}

func (t *PresignedTarget) Delete(context.Context, string) error {
	return fmt.Errorf("delete on %s: %w", t.id, ErrNotThroughBroker)
}

func (t *PresignedTarget) List(context.Context, string, func(storage.ObjectInfo) error) error {
	return fmt.Errorf("list on %s: %w", t.id, ErrNotThroughBroker)
}

// redact reduces a presigned URL to its scheme and host: the query string
// holds the signature, a bearer capability that must not reach logs or
// terminals, and the path repeats the key already in the message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "presigned URL"
	}
	return u.Scheme + "://" + u.Host
}

// s3Status summarises a failed storage response: status and, if the body is
// an S3 error document, its code.
func s3Status(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	s := resp.Status
	if code := between(string(b), "<Code>", "</Code>"); code != "" {
		s += " " + code
	}
	return s
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, ok := strings.Cut(rest, b)
	if !ok || len(v) > 64 {
		return ""
	}
	return v
}

func retryableAPI(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	var te *client.TransportError
	return errors.As(err, &te) && !errors.Is(err, context.Canceled)
}

// retryBase is the first retry delay of a piece transfer; it doubles.
var retryBase = 250 * time.Millisecond

func backoff(attempt int) time.Duration {
	return retryBase << attempt
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
