package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBrokerRetry is how long a call safe to repeat is retried while
// dozod does not answer: long enough for a restart or a failover, short
// enough that a broker that is really gone is reported within minutes.
const DefaultBrokerRetry = 2 * time.Minute

const (
	retryFirst = 250 * time.Millisecond // first backoff
	retryMax   = 8 * time.Second        // backoff ceiling
)

// repeatable lists the calls besides GET (always safe) that may be sent
// again when dozod may or may not have acted on an earlier try. Each has
// the same effect done once or twice:
//   - beginning an upload: a second begin with the same name, size, file
//     key and nonce by the same user resumes the session the first one
//     opened (broker resumable) rather than opening another;
//   - presigning, singly or in a batch: no state changes besides pushing
//     the upload's expiry further out;
//   - committing a segment: an upsert of the same segment record;
//   - completing an upload: a completed upload completed again with the
//     same checksums returns the same file;
//   - aborting an upload: an aborted upload aborts again as a no-op;
//   - asking to fetch a file: reads only (it is audited once per try).
//
// Every other call (grants, revokes, members, freezes, datasets, scrubs,
// key rotation, deletion, registering a recipient) is sent again only when
// it certainly never reached dozod: its connection was refused.
var repeatable = []string{
	"POST /v1/datasets/*/uploads",
	"POST /v1/uploads/*/presign",
	"POST /v1/uploads/*/presign-batch",
	"PUT /v1/uploads/*/segments/*",
	"POST /v1/uploads/*/complete",
	"DELETE /v1/uploads/*",
	"POST /v1/datasets/*/files/*/fetch",
	"POST /v1/fetches/*/presign",
	"POST /v1/fetches/*/presign-batch",
}

// idempotent reports whether the call method path may be repeated after a
// try whose outcome is unknown.
func idempotent(method, path string) bool {
	if method == http.MethodGet || method == http.MethodHead {
		return true
	}
	path, _, _ = strings.Cut(path, "?")
	got := strings.Split(path, "/")
	for _, r := range repeatable {
		m, p, _ := strings.Cut(r, " ")
		want := strings.Split(p, "/")
		if m != method || len(want) != len(got) {
			continue
		}
		match := true
		for i := range want {
			if want[i] != "*" && want[i] != got[i] || want[i] == "*" && got[i] == "" {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// brokers is the set of dozod URLs a Client uses and what it has learnt
// about them; copies of a Client (Client.long) share it.
type brokers struct {
	urls []string // base URLs, no trailing slash
	next atomic.Uint64

	mu   sync.Mutex
	down bool      // an outage was announced and no call has got through since
	upAt time.Time // when a call last got through after an outage
}

func parseBrokers(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no broker address")
	}
	return out, nil
}

// current returns the index and base URL calls go to now.
func (b *brokers) current() (int, string) {
	i := int(b.next.Load() % uint64(len(b.urls)))
	return i, b.urls[i]
}

// failed moves calls from broker i to the next one, round robin. Of many
// calls failing on i at once only the first moves them, so they do not
// skip past a broker that works.
func (b *brokers) failed(i int) {
	n := b.next.Load()
	if int(n%uint64(len(b.urls))) == i {
		b.next.CompareAndSwap(n, n+1)
	}
}

// outage reports whether a call sent at sent that just failed begins an
// outage the user has not yet been told of. A call sent before the last
// recovery is a straggler of the outage already announced.
func (b *brokers) outage(sent time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down || sent.Before(b.upAt) {
		return false
	}
	b.down = true
	return true
}

// answered records that dozod answered, ending any outage.
func (b *brokers) answered() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		b.down, b.upAt = false, time.Now()
	}
}

// tryResult is the outcome of one try of a call.
type tryResult struct {
	err        error
	retryAfter time.Duration // from a 502/503/504's Retry-After
	// final marks dozod's own 503 without Retry-After: dozod is up and
	// says the request cannot be served now (no storage targets to place
	// an upload on); repeating it for minutes would only hide that. dozod
	// sends Retry-After on a 503 for an outage of Vault or its catalog,
	// and a proxy's 503 while dozod restarts is not dozod's JSON.
	final bool
}

// answer is the tryResult of a non-2xx answer from dozod: ae, with the
// answer's Retry-After, final if it is dozod's own 503 (dozod set
// ae.Body from its JSON) without one.
func answer(ae *APIError, dozods bool, h http.Header) tryResult {
	ra := retryAfter(h.Get("Retry-After"), time.Now())
	return tryResult{err: ae, retryAfter: ra,
		final: ae.Status == http.StatusServiceUnavailable && dozods && h.Get("Retry-After") == ""}
}

// retry runs try against dozod until it succeeds or fails for good. A
// failure is tried again, on the next broker URL when there are several,
// if dozod gave no answer or a 502, 503 or 504 and the call is idempotent
// (or was refused a connection, so dozod never saw it); after a failure on
// every URL it waits, with exponential backoff and jitter or as long as
// Retry-After asks, for at most the retry budget in all. ctx ending stops
// it at once. The first wait of an outage tells the user, once.
func (c *Client) retry(ctx context.Context, method, path string, try func(ctx context.Context, base string) tryResult) error {
	idem := idempotent(method, path)
	var (
		deadline time.Time
		backoff  = c.retryFirst
		failures int // since the last wait
	)
	for {
		i, base := c.brokers.current()
		sent := time.Now()
		r := try(ctx, base)
		if r.final || !c.transient(ctx, r.err) {
			if answeredBy(r.err) {
				c.brokers.answered()
			}
			return r.err
		}
		if !idem && !notSent(r.err) || c.retryFor < 0 {
			return r.err
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(c.retryFor)
		}
		c.brokers.failed(i)
		if failures++; failures < len(c.brokers.urls) {
			c.debug("%s %s: %v; trying the next broker", method, path, r.err)
			continue
		}
		failures = 0
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, retryMax)
		if r.retryAfter > wait {
			wait = r.retryAfter
		}
		left := deadline.Sub(now)
		if left <= 0 || r.retryAfter > left {
			return gaveUp(r.err, c.retryFor)
		}
		wait = min(wait, left)
		if c.brokers.outage(sent) {
			if isTransport(r.err) {
				c.notice("dozod unreachable, retrying for up to %s…", c.retryFor)
			} else {
				c.notice("dozod unavailable (%s), retrying for up to %s…", r.err, c.retryFor)
			}
		}
		c.debug("%s %s: %v; retrying in %s", method, path, r.err, wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return &TransportError{Method: method, Path: path, Err: ctx.Err()}
		case <-t.C:
		}
	}
}

// transient reports whether err is dozod being away rather than dozod
// answering: no answer at all (refused, reset, cut short, timed out) or a
// 502, 503 or 504, which a proxy gives while dozod restarts. A certificate
// that does not verify or a host name that does not resolve is a
// configuration error: repeating it cannot help. Nothing is transient once
// ctx has ended.
func (c *Client) transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if !isTransport(err) {
		return false
	}
	var (
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		cv  *tls.CertificateVerificationError
		dns *net.DNSError
	)
	switch {
	case errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci), errors.As(err, &cv):
		return false
	case errors.As(err, &dns) && dns.IsNotFound:
		return false
	}
	return true
}

func isTransport(err error) bool {
	var te *TransportError
	return errors.As(err, &te)
}

// answeredBy reports whether err (nil included) means dozod answered.
func answeredBy(err error) bool {
	var ae *APIError
	return err == nil || errors.As(err, &ae)
}

// notSent reports whether a failed call certainly never reached dozod:
// the connection to it could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// gaveUp says how long dozod was waited for; err keeps its kind, so the
// hint about checking --broker still applies.
func gaveUp(err error, d time.Duration) error {
	var te *TransportError
	if errors.As(err, &te) {
		return &TransportError{Method: te.Method, Path: te.Path, Err: fmt.Errorf("%w (retried for %s)", te.Err, d)}
	}
	return err
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
// A missing or malformed value is 0.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
