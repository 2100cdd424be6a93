package broker

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/internal/envconfig"
)

// callFrom is env.call from a chosen client address (ip:port).
func (e *env) callFrom(remote, token, method, path string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return rec
}

func (e *env) auditRecords() []audit.Record {
	e.t.Helper()
	rs, err := e.cat.AuditRecords(context.Background(), catalog.AuditFilter{Limit: catalog.MaxAuditLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

func (e *env) auditCount() int { return len(e.auditRecords()) }

// countingIdentity counts the token lookups that reach the identity
// provider (Vault, in dozod).
type countingIdentity struct {
	Identifier
	n atomic.Int64
}

func (c *countingIdentity) Identify(ctx context.Context, tok string) (*Identity, error) {
	c.n.Add(1)
	return c.Identifier.Identify(ctx, tok)
}

// refusalsOnRecord adds up the refusals the log holds for source (an
// address without port): one per individual record, the count of each
// aggregate. It checks every aggregate's detail parses.
func refusalsOnRecord(t *testing.T, rs []audit.Record, source string) (total, individual, aggregates int) {
	t.Helper()
	for _, r := range rs {
		if r.Actor != "" || (r.Source != source && !strings.HasPrefix(r.Source, source+":")) {
			continue
		}
		if n, first, last, ok := audit.ParseAggregate(r.Detail); ok {
			if r.Source != source || r.Result != audit.ResultRefused || n == 0 || last.Before(first) || r.RequestID != "" {
				t.Errorf("bad aggregate record: %+v", r)
			}
			total += int(n)
			aggregates++
			continue
		}
		if r.Result != audit.ResultRefused {
			t.Errorf("record from %s is not a refusal: %+v", source, r)
		}
		total++
		individual++
	}
	return total, individual, aggregates
}

// TestRefusalFlood: bad tokens from one address write a bounded number of
// records, and the rest are counted in aggregate records whose counts add
// up to every refusal; past its budget the address is answered 429 with
// Retry-After before its token is looked up; other addresses and a user
// already known are not held up; the chain still verifies.
func TestRefusalFlood(t *testing.T) {
	e := newEnv(t)
	ids := &countingIdentity{Identifier: e.srv.ident}
	e.srv.ident = ids
	const flood = "198.51.100.7"
	// sam works from the same address before the flood starts.
	if c := e.callFrom(flood+":5000", "tok-sam", "GET", "/v1/whoami").Code; c != 200 {
		t.Fatalf("sam before the flood: %d", c)
	}
	before := e.auditCount()
	ids.n.Store(0)

	const n = 300
	codes := map[int]int{}
	var last *httptest.ResponseRecorder
	for i := 0; i < n; i++ {
		path := "/v1/whoami"
		if i%3 == 0 {
			path = fmt.Sprintf("/v1/no/such/path/%d", i) // unknown paths count too
		}
		last = e.callFrom(fmt.Sprintf("%s:%d", flood, 6000+i), "hvs.forged", "GET", path)
		codes[last.Code]++
	}
	if codes[429] == 0 || codes[401]+codes[404] != DefaultRefusalBurst {
		t.Fatalf("answers to %d bad requests: %v; want %d refusals, then 429", n, codes, DefaultRefusalBurst)
	}
	if last.Code != 429 {
		t.Fatalf("request %d from a flooding address: %d, want 429", n, last.Code)
	}
	if ra, err := strconv.Atoi(last.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("429 with Retry-After %q, want 1..60 seconds", last.Header().Get("Retry-After"))
	}
	// Only the requests within the budget cost a token lookup.
	if got := ids.n.Load(); got > int64(DefaultRefusalBurst) {
		t.Errorf("%d token lookups for %d bad requests, want at most %d", got, n, DefaultRefusalBurst)
	}
	// One record per kind (whoami 401, unknown 404, whoami 429, unknown 429).
	if got := e.auditCount() - before; got > 4 {
		t.Fatalf("%d audit records for %d refusals, want at most 4 before the window closes", got, n)
	}

	// Another address is not held up, nor is sam, whom dozod knows.
	if c := e.callFrom("203.0.113.9:7000", "hvs.forged", "GET", "/v1/whoami").Code; c != 401 {
		t.Errorf("bad token from another address: %d, want 401", c)
	}
	if c := e.callFrom(flood+":5001", "tok-sam", "GET", "/v1/whoami").Code; c != 200 {
		t.Errorf("sam from the flooding address: %d, want 200", c)
	}
	if c := e.callFrom("203.0.113.10:7000", "tok-rita", "GET", "/v1/whoami").Code; c != 200 {
		t.Errorf("rita from another address: %d, want 200", c)
	}

	// The window closes: the next refusal is recorded and the counts of
	// its kind flushed; Stop flushes the rest.
	e.now = e.now.Add(DefaultAggregateWindow + time.Second)
	if c := e.callFrom(flood+":9999", "hvs.forged", "GET", "/v1/whoami").Code; c != 401 {
		t.Errorf("after the budget refilled: %d, want 401", c)
	}
	e.srv.Stop(context.Background())
	rs := e.auditRecords()
	total, individual, aggs := refusalsOnRecord(t, rs, flood)
	if total != n+1 || individual > 5 || aggs == 0 {
		t.Fatalf("the log holds %d refusals from %s (%d records, %d aggregates), want %d", total, flood, individual, aggs, n+1)
	}
	var v api.AuditVerifyResponse
	e.must(200, "tok-admin", "GET", "/v1/audit/verify", nil, &v)
	if !v.OK {
		t.Fatalf("chain after a flood: %+v", v)
	}
}

// TestRefusalSourcesBounded: many addresses cannot grow the tracked set
// past max_sources, nor reset a spent budget, and every refusal is still
// on record.
func TestRefusalSourcesBounded(t *testing.T) {
	e := newEnv(t)
	cfg := LimitsConfig{MaxSources: 16, RefusalBurst: 2, RefusalsPerMinute: 1}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	e.srv.guard = newRefusalGuard(cfg)
	const n = 500
	for i := 0; i < n; i++ {
		e.callFrom(fmt.Sprintf("10.0.%d.%d:1000", i/250, i%250), "hvs.forged", "GET", "/v1/whoami")
		if got := len(e.srv.guard.srcs); got > cfg.MaxSources+1 { // + the shared overflow entry
			t.Fatalf("after %d addresses the guard tracks %d sources, want at most %d", i+1, got, cfg.MaxSources+1)
		}
	}
	// The addresses past the bound share one budget, which is spent.
	if c := e.callFrom("10.9.9.9:1000", "hvs.forged", "GET", "/v1/whoami").Code; c != 429 {
		t.Errorf("a new address while the guard is full of busy sources: %d, want 429", c)
	}
	// IPv6 addresses of one /64 are one source.
	e2 := newEnv(t)
	e2.srv.guard = newRefusalGuard(cfg)
	for i := 0; i < 3; i++ {
		e2.callFrom(fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1), "hvs.forged", "GET", "/v1/whoami")
	}
	if c := e2.callFrom("[2001:db8:1:2:ffff::1]:443", "hvs.forged", "GET", "/v1/whoami").Code; c != 429 {
		t.Errorf("another address of a flooding /64: %d, want 429", c)
	}

	e.srv.Stop(context.Background())
	total := 0
	for _, r := range e.auditRecords() {
		if r.Action != "whoami" {
			continue
		}
		if c, _, _, ok := audit.ParseAggregate(r.Detail); ok {
			total += int(c)
		} else {
			total++
		}
	}
	if total != n+1 {
		t.Fatalf("%d refusals on record, want %d", total, n+1)
	}
}

// TestMetricsScrapeNotRecorded: scrapes with the scrape token leave no
// audit record; refused scrapes are refusals like any other.
func TestMetricsScrapeNotRecorded(t *testing.T) {
	e := newEnv(t)
	e.srv.metricsCfg.token = "scrape-token-0123456789"
	before := e.auditCount()
	for i := 0; i < 20; i++ {
		e.must(200, "scrape-token-0123456789", "GET", "/metrics", nil, nil)
	}
	if got := e.auditCount() - before; got != 0 {
		t.Fatalf("20 scrapes wrote %d audit records, want 0", got)
	}
	e.must(401, "wrong-scrape-token", "GET", "/metrics", nil, nil)
	rs := e.auditRecords()
	if len(rs) != before+1 || rs[len(rs)-1].Action != "metrics" || rs[len(rs)-1].Result != audit.ResultRefused {
		t.Fatalf("a refused scrape is not on record: %+v", rs[before:])
	}
	// An admin's scrape is recorded as before.
	e.must(200, "tok-admin", "GET", "/metrics", nil, nil)
	if got := e.auditCount(); got != before+2 {
		t.Fatalf("an admin's scrape: %d records, want %d", got, before+2)
	}
}

func TestLimitsConfig(t *testing.T) {
	var c LimitsConfig
	env := map[string]string{"DOZOD_LIMITS_REFUSALS_PER_MINUTE": "120", "DOZOD_LIMITS_AGGREGATE_WINDOW": "30s"}
	if err := envconfig.Apply(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.RefusalsPerMinute != 120 || c.AggregateWindow != 30*time.Second || c.RefusalBurst != DefaultRefusalBurst || c.MaxSources != DefaultMaxSources {
		t.Fatalf("limits after env and defaults: %+v", c)
	}
	for name, bad := range map[string]LimitsConfig{
		"rate":    {RefusalsPerMinute: -1},
		"burst":   {RefusalBurst: -5},
		"sources": {MaxSources: 3},
		"window":  {AggregateWindow: time.Millisecond},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, bad)
		}
	}
	if err := envconfig.Apply(&LimitsConfig{}, func(string) string { return "x" }); err == nil {
		t.Error("a bad number in the environment is accepted")
	}
}

// TestLimitsAndAuditSections: the [limits] and [audit] sections are read
// from the file, the environment overrides them, and bad values are
// refused with the key named.
func TestLimitsAndAuditSections(t *testing.T) {
	dir := t.TempDir()
	body := `insecure_http = true
[vault]
address = "http://127.0.0.1:8200"
[[targets]]
id = "s1-a"
domain = "s1"
endpoint = "http://127.0.0.1:9000"
bucket = "dozo-a"
access_key = "ak"
[limits]
refusals_per_minute = 30
refusal_burst = 10
max_sources = 500
[audit]
anchor_interval = "5m"
anchor_key = "site-audit"
`
	conf := writeFile(t, dir, "dozod.toml", body, 0o600)
	env := map[string]string{"DOZOD_VAULT_TOKEN": "s.dozod", "DOZOD_S3_SECRET_KEY": "secret", "DOZOD_LIMITS_REFUSAL_BURST": "20"}
	c, err := LoadConfig(conf, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != (LimitsConfig{RefusalsPerMinute: 30, RefusalBurst: 20, MaxSources: 500, AggregateWindow: DefaultAggregateWindow}) ||
		c.Audit != (AuditConfig{AnchorInterval: 5 * time.Minute, AnchorKey: "site-audit"}) {
		t.Fatalf("limits %+v, audit %+v", c.Limits, c.Audit)
	}
	bad := writeFile(t, dir, "bad.toml", strings.Replace(body, `"5m"`, `"5s"`, 1), 0o600)
	if _, err := LoadConfig(bad, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "audit.anchor_interval") {
		t.Fatalf("a 5s anchor interval: %v", err)
	}
	if !strings.Contains(ConfigHelp, "DOZOD_LIMITS_REFUSALS_PER_MINUTE") || !strings.Contains(ConfigHelp, "DOZOD_AUDIT_ANCHOR_INTERVAL") {
		t.Error("dozod --help does not document the [limits] and [audit] sections")
	}
}
