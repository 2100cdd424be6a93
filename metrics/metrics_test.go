package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/health"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.String()
}

func TestEscapeLabel(t *testing.T) {
	body := scrape(t, New(Sources{Version: "x\"y\\z\nw"}))
	if want := `dozo_build_info{version="x\"y\\z\nw"} 1` + "\n"; !strings.Contains(body, want) {
		t.Fatalf("no %q in\n%s", want, body)
	}
}

func TestScrape(t *testing.T) {
	started := time.Unix(1700000000, 0)
	catErr := error(nil)
	r := New(Sources{
		Version: "v1", Started: started,
		Targets: func() []health.TargetStatus {
			return []health.TargetStatus{{ID: "s1-a", Domain: "s1", Up: false, Since: started, Failures: 3}}
		},
		Catalog: func(context.Context) (*catalog.Stats, error) {
			return &catalog.Stats{Datasets: 2, States: []catalog.StateCount{{State: "available", Files: 1, Bytes: 5}}}, catErr
		},
		Scrub: func() Scrub { return Scrub{FindingsTotal: map[string]int64{"hash": 4}} },
	})
	r.ObserveRequest("upload.begin", 201, 3*time.Millisecond)
	r.ObserveRequest("", 200, time.Millisecond)
	r.CountPresign(http.MethodPut, 100)
	r.CountPresign("DELETE", 100)
	body := scrape(t, r)
	for _, want := range []string{
		`dozo_http_requests_total{action="upload.begin",status="201"} 1`,
		`dozo_http_requests_total{action="health",status="200"} 1`,
		`dozo_http_request_duration_seconds_bucket{action="upload.begin",le="0.005"} 1`,
		`dozo_http_request_duration_seconds_bucket{action="upload.begin",le="+Inf"} 1`,
		`dozo_uploads_started_total 1`,
		`dozo_presigned_urls_total{method="PUT"} 1`,
		`dozo_presigned_bytes_total{method="PUT"} 100`,
		`dozo_presigned_urls_total{method="GET"} 0`,
		`dozo_start_time_seconds 1.7e+09`,
		`dozo_target_up{domain="s1",target="s1-a"} 0`,
		`dozo_target_failures_total{domain="s1",target="s1-a"} 3`,
		`dozo_catalog_up 1`,
		`dozo_catalog_datasets 2`,
		`dozo_catalog_file_bytes{state="available"} 5`,
		`dozo_scrub_findings_total{kind="hash"} 4`,
		`dozo_scrub_findings_total{kind="missing"} 0`,
		// No run has ended yet: 0, as its help says.
		`dozo_scrub_last_end_seconds 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %q", want)
		}
	}
	if strings.Contains(body, "DELETE") {
		t.Error("a method other than PUT and GET became a label value")
	}
	catErr = errors.New("database is locked")
	body = scrape(t, r)
	if !strings.Contains(body, "dozo_catalog_up 0\n") || strings.Contains(body, "dozo_catalog_datasets") {
		t.Errorf("catalog down:\n%s", body)
	}
}

func TestMaxSeries(t *testing.T) {
	r := New(Sources{})
	for i := range maxSeries + 5 {
		r.ObserveRequest("a"+strconv.Itoa(i), 200, time.Millisecond)
	}
	body := scrape(t, r)
	if !strings.Contains(body, `dozo_http_requests_total{action="other",status="200"} 5`+"\n") {
		t.Error("requests past the bound are not counted as other")
	}
	if n := strings.Count(body, "dozo_http_request_duration_seconds_count{"); n != maxSeries {
		t.Errorf("%d duration histograms, want %d", n, maxSeries)
	}
}
