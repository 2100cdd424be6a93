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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// DefaultBrokerRetry is how long a call safe to repeat is retried while
// dozod does not answer: long enough for a restart or a failover, short
// enough that a broker that is really gone is reported within minutes.
const DefaultBrokerRetry = 2 * time.Minute

const (
	retryFirst = 250 * time.Millisecond // first backoff
	retryMax   = 8 * time.Second        // backoff ceiling
)

// idempotent reports whether the call method path may be repeated after a
// try whose outcome is unknown: a GET, or a route the table marks
// Repeatable (api.Route.Repeatable says why each is). Every other call
// (grants, revokes, members, freezes, datasets, scrubs, key rotation,
// deletion, registering a recipient) is sent again only when it certainly
// never reached dozod: its connection was refused.
func idempotent(method, path string) bool {
	if method == http.MethodGet || method == http.MethodHead {
		return true
	}
	rt := routeOf(method, path)
	return rt != nil && rt.Repeatable
}

// routeMux matches a call to its route of the table as dozod's ServeMux
// does, so the client and dozod never disagree on which route a path is.
var routeMux = sync.OnceValue(func() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range api.Routes {
		mux.Handle(rt.Pattern, http.NotFoundHandler())
	}
	return mux
})

// routeOf is the route of the table that serves method path (path as the
// client sends it: escaped, with any query), or nil for none.
func routeOf(method, path string) *api.Route {
	u, err := url.Parse(path)
	if err != nil {
		return nil
	}
	_, pattern := routeMux().Handler(&http.Request{Method: method, URL: u, Host: "dozod"})
	for _, rt := range api.Routes {
		if rt.Pattern == pattern {
			return rt
		}
	}
	return nil
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
		if ctx.Err() != nil && !r.final && c.transient(context.WithoutCancel(ctx), r.err) {
			// Cancelled while dozod was away: the cancel is the outcome,
			// as when it comes during the wait below.
			return &TransportError{Method: method, Path: path, Err: ctx.Err()}
		}
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
