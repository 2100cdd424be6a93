package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// flakyDozod answers the first len(fail) requests with fail[i] ("drop":
// the connection is closed without an answer; "503": a proxy's Service
// Unavailable; "503-outage" and "503-final": dozod's, with and without
// Retry-After) and every later one with an empty JSON object.
type flakyDozod struct {
	t          *testing.T
	srv        *httptest.Server
	fail       []string
	retryAfter string
	n          atomic.Int64
	seen       chan string // method and path of every request, if not nil
}

func newFlakyDozod(t *testing.T, fail ...string) *flakyDozod {
	f := &flakyDozod{t: t, fail: fail}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *flakyDozod) serve(w http.ResponseWriter, r *http.Request) {
	i := int(f.n.Add(1)) - 1
	if f.seen != nil {
		f.seen <- r.Method + " " + r.URL.Path
	}
	what := "ok"
	if i < len(f.fail) {
		what = f.fail[i]
	}
	switch what {
	case "drop":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			f.t.Error(err)
			return
		}
		conn.Close()
	case "503":
		// A proxy's answer while dozod restarts: not dozod's JSON.
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		http.Error(w, "no backend available", http.StatusServiceUnavailable)
	case "503-outage":
		// dozod's answer while Vault or its catalog is away.
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"Vault is unavailable; try again later"}`))
	case "503-final":
		// dozod up, refusing for now: no storage to place the upload on.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"only 4 of 6 storage targets are up"}`))
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}
}

// notices counts the client's notices.
type notices struct {
	mu    sync.Mutex
	lines []string
}

func (n *notices) add(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lines = append(n.lines, format)
}

func (n *notices) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.lines)
}

func newRetryClient(t *testing.T, broker string, retryFor time.Duration, ns *notices) *Client {
	t.Helper()
	o := Options{Broker: broker, Token: "t", RetryFor: retryFor}
	if ns != nil {
		o.Notice = ns.add
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	c.retryFirst = time.Millisecond
	return c
}

// closedURL is the URL of a server that is gone: connections are refused.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func TestRetrySurvivesDropsAnd503(t *testing.T) {
	for _, call := range []struct {
		name string
		do   func(c *Client) error
	}{
		{"GET upload", func(c *Client) error { _, err := c.Upload(context.Background(), "u1"); return err }},
		{"POST presign", func(c *Client) error {
			_, err := c.PresignFetch(context.Background(), "f1", "s1-a", "k")
			return err
		}},
		{"PUT commit", func(c *Client) error {
			_, err := c.CommitSegment(context.Background(), "u1", storage.SegmentMeta{Index: 3})
			return err
		}},
		{"POST begin upload", func(c *Client) error {
			_, err := c.BeginUpload(context.Background(), "DS1", api.BeginUploadRequest{Name: "a"})
			return err
		}},
	} {
		t.Run(call.name, func(t *testing.T) {
			f := newFlakyDozod(t, "drop", "503", "drop", "503")
			var ns notices
			c := newRetryClient(t, f.srv.URL, time.Hour, &ns)
			if err := call.do(c); err != nil {
				t.Fatalf("call failed: %v", err)
			}
			if n := f.n.Load(); n != 5 {
				t.Fatalf("dozod saw %d requests, want 4 failed tries and 1 that succeeded", n)
			}
			if ns.count() != 1 {
				t.Fatalf("%d notices, want 1: %q", ns.count(), ns.lines)
			}
		})
	}
}

func TestRetryNotForMutations(t *testing.T) {
	for _, fail := range []string{"drop", "503"} {
		t.Run(fail, func(t *testing.T) {
			f := newFlakyDozod(t, fail, fail, fail)
			var ns notices
			c := newRetryClient(t, f.srv.URL, time.Hour, &ns)
			_, err := c.CreateDataset(context.Background(), api.CreateDatasetRequest{ID: "DS1"})
			if err == nil {
				t.Fatal("a failed dataset creation was repeated until it succeeded")
			}
			_, err = c.Grant(context.Background(), "DS1", "rita", api.GrantRequest{})
			if err == nil {
				t.Fatal("a failed grant was repeated until it succeeded")
			}
			if n := f.n.Load(); n != 2 {
				t.Fatalf("dozod saw %d requests, want 2: one per call, none repeated", n)
			}
			if ns.count() != 0 {
				t.Fatalf("notices for calls that were not retried: %q", ns.lines)
			}
		})
	}
}

func TestRetryStopsOnCancel(t *testing.T) {
	f := newFlakyDozod(t, "503", "503", "503")
	f.seen = make(chan string, 10)
	c := newRetryClient(t, f.srv.URL, time.Hour, nil)
	c.retryFirst = time.Hour // only cancelling can end the wait
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Upload(ctx, "u1")
		done <- err
	}()
	<-f.seen
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := f.n.Load(); n != 1 {
		t.Fatalf("dozod saw %d requests after cancel, want 1", n)
	}
}

// TestRetryCancelledDuringTry: a call cancelled while its try was under
// way and dozod away ends as cancelled, as a cancel during the wait does,
// not with the 503 that happened to come back first.
func TestRetryCancelledDuringTry(t *testing.T) {
	c := newRetryClient(t, "http://127.0.0.1:1", time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	err := c.retry(ctx, http.MethodGet, api.ShowUpload.Path("u1"), func(context.Context, string) tryResult {
		cancel()
		return tryResult{err: &APIError{Status: http.StatusServiceUnavailable}}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestRetryMovesToNextBroker(t *testing.T) {
	f := newFlakyDozod(t)
	var ns notices
	c := newRetryClient(t, closedURL(t)+", "+f.srv.URL+"/", time.Hour, &ns)
	c.retryFirst = time.Hour // any wait would hang the test
	if c.Broker() != c.brokers.urls[0] || strings.Contains(c.Broker(), ",") {
		t.Fatalf("Broker() = %q, want the first URL", c.Broker())
	}
	for range 3 {
		if _, err := c.Upload(context.Background(), "u1"); err != nil {
			t.Fatal(err)
		}
	}
	// A refused connection never reached dozod: even a mutation moves on.
	c2 := newRetryClient(t, closedURL(t)+","+f.srv.URL, time.Hour, &ns)
	c2.retryFirst = time.Hour
	if _, err := c2.Grant(context.Background(), "DS1", "rita", api.GrantRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := f.n.Load(); n != 4 {
		t.Fatalf("the second broker saw %d requests, want all 4", n)
	}
	if ns.count() != 0 {
		t.Fatalf("a failover the user need not know about printed %q", ns.lines)
	}
}

func TestRetryRoundRobin(t *testing.T) {
	a := newFlakyDozod(t, "503")
	b := newFlakyDozod(t, "drop")
	c := newRetryClient(t, a.srv.URL+","+b.srv.URL, time.Hour, nil)
	if _, err := c.Upload(context.Background(), "u1"); err != nil {
		t.Fatal(err)
	}
	// a failed, b failed, back to a, which now answers.
	if a.n.Load() != 2 || b.n.Load() != 1 {
		t.Fatalf("requests: first broker %d, second %d; want 2 and 1", a.n.Load(), b.n.Load())
	}
}

func TestRetryGivesUp(t *testing.T) {
	var ns notices
	c := newRetryClient(t, closedURL(t), 20*time.Millisecond, &ns)
	_, err := c.Upload(context.Background(), "u1")
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "retried for 20ms") {
		t.Fatalf("got %v, want a transport error saying how long it retried", err)
	}
	if Hint(err) != "is dozod running? check --broker / DOZO_BROKER" {
		t.Fatalf("hint %q", Hint(err))
	}
	if ns.count() != 1 {
		t.Fatalf("%d notices, want 1", ns.count())
	}

	// Retries off: one try.
	f := newFlakyDozod(t, "503", "503")
	c = newRetryClient(t, f.srv.URL, -1, nil)
	if _, err := c.Upload(context.Background(), "u1"); !IsStatus(err, http.StatusServiceUnavailable) || f.n.Load() != 1 {
		t.Fatalf("with retries off: %v after %d requests, want the 503 after 1", err, f.n.Load())
	}
}

func TestRetryAfter(t *testing.T) {
	// Asked to wait longer than the budget left: give up at once.
	f := newFlakyDozod(t, "503", "503")
	f.retryAfter = "3600"
	c := newRetryClient(t, f.srv.URL, time.Minute, nil)
	if _, err := c.Upload(context.Background(), "u1"); !IsStatus(err, http.StatusServiceUnavailable) || f.n.Load() != 1 {
		t.Fatalf("Retry-After beyond the budget: %v after %d requests, want the 503 after 1", err, f.n.Load())
	}
	// Within it: wait as long as asked, though the backoff is shorter.
	f = newFlakyDozod(t, "503")
	f.retryAfter = "1"
	c = newRetryClient(t, f.srv.URL, time.Minute, nil)
	start := time.Now()
	if _, err := c.Upload(context.Background(), "u1"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("retried after %s, before the Retry-After of 1s", el)
	}

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, " 2 ": 2 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", h, got, want)
		}
	}
}

// TestRetryOneNoticePerOutage: many calls in flight when dozod goes away
// give one notice; a second outage after a recovery gives another.
func TestRetryOneNoticePerOutage(t *testing.T) {
	var failing atomic.Int64 // how many requests still get a 502
	failing.Store(16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Add(-1) >= 0 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	var ns notices
	c := newRetryClient(t, srv.URL, time.Hour, &ns)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.Upload(context.Background(), "u1"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ns.count() != 1 {
		t.Fatalf("%d notices for one outage, want 1: %q", ns.count(), ns.lines)
	}
	failing.Store(3)
	if _, err := c.Upload(context.Background(), "u1"); err != nil {
		t.Fatal(err)
	}
	if ns.count() != 2 {
		t.Fatalf("%d notices after a second outage, want 2", ns.count())
	}
}

func TestIdempotentCalls(t *testing.T) {
	for call, want := range map[string]bool{
		"GET /v1/datasets":                              true,
		"GET /v1/datasets/DS1/grants?history=1":         true,
		"POST /v1/datasets/DS1/uploads":                 true,
		"POST /v1/uploads/u1/presign":                   true,
		"POST /v1/uploads/u1/presign-batch":             true,
		"PUT /v1/uploads/u1/segments/7":                 true,
		"POST /v1/uploads/u1/complete":                  true,
		"DELETE /v1/uploads/u1":                         true,
		"POST /v1/datasets/DS1/files/a%2Fb.bam/fetch":   true,
		"POST /v1/fetches/f1/presign":                   true,
		"POST /v1/fetches/f1/presign-batch":             true,
		"POST /v1/datasets":                             false,
		"PUT /v1/datasets/DS1/grants/rita":              false,
		"DELETE /v1/datasets/DS1/grants/rita":           false,
		"PUT /v1/datasets/DS1/members/rita/submitter":   false,
		"DELETE /v1/datasets/DS1/members/rita/admin":    false,
		"POST /v1/admin/freezes":                        false,
		"DELETE /v1/admin/freezes/user/rita":            false,
		"PUT /v1/me/recipient":                          false,
		"POST /v1/scrubs":                               false,
		"DELETE /v1/scrubs/s1":                          false,
		"POST /v1/datasets/DS1/rotate-key":              false,
		"POST /v1/datasets/DS1/delete":                  false,
		"POST /v1/uploads//presign":                     false,
		"POST /v1/uploads/u1/presign/extra":             false,
		"PUT /v1/uploads/u1/segments/7?x=1":             true,
		"DELETE /v1/uploads/u1/segments/7":              false,
		"POST /v1/datasets/DS1/files/a.bam/fetch/again": false,
	} {
		m, p, _ := strings.Cut(call, " ")
		if got := idempotent(m, p); got != want {
			t.Errorf("idempotent(%s) = %v, want %v", call, got, want)
		}
	}
}

// TestRetry503FromDozod: dozod's 503 with Retry-After (Vault or its
// catalog away) is retried; its 503 without one (up, but no storage to
// place an upload on) is final at once, so the user reads dozod's reason
// now rather than after minutes of retries.
func TestRetry503FromDozod(t *testing.T) {
	f := newFlakyDozod(t, "503-outage")
	c := newRetryClient(t, f.srv.URL, time.Minute, nil)
	if _, err := c.Upload(context.Background(), "u1"); err != nil || f.n.Load() != 2 {
		t.Fatalf("dozod's outage 503: %v after %d requests, want success after 2", err, f.n.Load())
	}
	f = newFlakyDozod(t, "503-final", "503-final")
	c = newRetryClient(t, f.srv.URL, time.Minute, nil)
	_, err := c.Upload(context.Background(), "u1")
	if !IsStatus(err, http.StatusServiceUnavailable) || f.n.Load() != 1 || !strings.Contains(err.Error(), "storage targets") {
		t.Fatalf("dozod's final 503: %v after %d requests, want dozod's reason after 1", err, f.n.Load())
	}
}
