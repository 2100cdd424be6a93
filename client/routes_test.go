package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// TestCallsMatchRouteTable: each API call of the client reaches the route
// of the table it means, with the table's method, as dozod routes it.
func TestCallsMatchRouteTable(t *testing.T) {
	var (
		mu    sync.Mutex
		hits  []*api.Route
		stray []string
	)
	mux := http.NewServeMux()
	for _, rt := range api.Routes {
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits = append(hits, rt)
			mu.Unlock()
			if typ := rt.ResponseType(); typ != nil && typ.Kind() == reflect.Slice {
				io.WriteString(w, "[]")
				return
			}
			io.WriteString(w, "{}")
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stray = append(stray, r.Method+" "+r.URL.EscapedPath())
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"no such endpoint"}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(Options{Broker: srv.URL, Token: "s.test-token"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seen := map[*api.Route]bool{}
	for _, call := range []struct {
		want *api.Route
		do   func() error
	}{
		{api.GetHealth, func() error { _, err := c.Health(ctx); return err }},
		{api.Whoami, func() error { _, err := c.WhoAmI(ctx); return err }},
		{api.Whoami, func() error { _, err := c.Warnings(ctx); return err }},
		{api.SetRecipient, func() error { _, err := c.SetRecipient(ctx, "age1x"); return err }},
		{api.CreateDataset, func() error { _, err := c.CreateDataset(ctx, api.CreateDatasetRequest{ID: "D"}); return err }},
		{api.ListDatasets, func() error { _, err := c.ListDatasets(ctx); return err }},
		{api.ShowDataset, func() error { _, err := c.Dataset(ctx, "D"); return err }},
		{api.ListFiles, func() error { _, err := c.ListFiles(ctx, "D"); return err }},
		{api.BeginUpload, func() error { _, err := c.BeginUpload(ctx, "D", api.BeginUploadRequest{Name: "a b/c"}); return err }},
		{api.ShowUpload, func() error { _, err := c.Upload(ctx, "U"); return err }},
		{api.PresignUpload, func() error { _, err := c.PresignUpload(ctx, "U", "t", "k"); return err }},
		{api.PresignUploadBatch, func() error {
			_, err := c.PresignUploadBatch(ctx, "U", []api.PresignRequest{{Target: "t", Key: "k"}})
			return err
		}},
		{api.CommitSegment, func() error { _, err := c.CommitSegment(ctx, "U", storage.SegmentMeta{Index: 12}); return err }},
		{api.CompleteUpload, func() error { _, err := c.CompleteUpload(ctx, "U", api.CompleteUploadRequest{}); return err }},
		{api.AbortUpload, func() error { return c.AbortUpload(ctx, "U") }},
		{api.FetchFile, func() error { _, err := c.Fetch(ctx, "D", "dir/a b?.vcf"); return err }},
		{api.FetchFile, func() error {
			_, err := c.FetchWithBatch(ctx, "D", "dir/a b?.vcf", api.FetchBatchRequest{Count: 1})
			return err
		}},
		{api.PresignFetch, func() error { _, err := c.PresignFetch(ctx, "F", "t", "k"); return err }},
		{api.PresignFetchBatch, func() error {
			_, err := c.PresignFetchBatch(ctx, "F", api.FetchBatchRequest{Count: 1})
			return err
		}},
		{api.FetchDone, func() error { return c.FetchDone(ctx, "F", &FetchReport{}) }},
		{api.PutGrant, func() error { _, err := c.Grant(ctx, "D", "bob", api.GrantRequest{}); return err }},
		{api.RevokeGrant, func() error { _, err := c.Revoke(ctx, "D", "bob", "done"); return err }},
		{api.ListGrants, func() error { _, err := c.Grants(ctx, "D", true); return err }},
		{api.ListGrants, func() error { _, err := c.ExpiringGrants(ctx, "D", 30); return err }},
		{api.GrantRegister, func() error { _, err := c.GrantRegister(ctx, false); return err }},
		{api.GrantRegister, func() error { _, err := c.ExpiringGrants(ctx, "", 30); return err }},
		{api.ListMembers, func() error { _, err := c.Members(ctx, "D"); return err }},
		{api.AddMember, func() error { _, err := c.AddMember(ctx, "D", "bob", "submitter", false); return err }},
		{api.RemoveMember, func() error { return c.RemoveMember(ctx, "D", "bob", "submitter") }},
		{api.FreezeAccess, func() error { _, err := c.Freeze(ctx, "user", "bob", "r", false); return err }},
		{api.UnfreezeAccess, func() error { _, err := c.Unfreeze(ctx, "user", "bob", "r"); return err }},
		{api.ListFreezes, func() error { _, err := c.Freezes(ctx, true); return err }},
		{api.ListAudit, func() error { _, err := c.AuditList(ctx, AuditQuery{Dataset: "D"}); return err }},
		{api.VerifyAudit, func() error { _, err := c.AuditVerify(ctx, nil); return err }},
		{api.ExportAudit, func() error { _, err := c.AuditExport(ctx, io.Discard); return err }},
		{api.RotateKey, func() error { _, err := c.RotateKey(ctx, "D"); return err }},
		{api.DeleteDataset, func() error { _, err := c.DeleteDataset(ctx, "D", "D"); return err }},
		{api.UndeleteDataset, func() error { _, err := c.UndeleteDataset(ctx, "D"); return err }},
		{api.GetDeletionReport, func() error { _, err := c.DeletionReport(ctx, "D"); return err }},
		{api.ListJobs, func() error { _, err := c.Jobs(ctx, JobsFilter{Dataset: "D", Limit: 5}); return err }},
		{api.ShowJob, func() error { _, err := c.Job(ctx, "J"); return err }},
		{api.CancelJob, func() error { _, err := c.CancelJob(ctx, "J"); return err }},
		{api.StartScrub, func() error { _, err := c.StartScrub(ctx, api.ScrubRequest{}); return err }},
		{api.ListScrubs, func() error { _, err := c.Scrubs(ctx); return err }},
		{api.ShowScrub, func() error { _, err := c.Scrub(ctx, "S", false); return err }},
		{api.CancelScrub, func() error { _, err := c.CancelScrub(ctx, "S"); return err }},
		{api.ListTargets, func() error { _, err := c.Targets(ctx); return err }},
	} {
		hits, stray = nil, nil
		call.do() // the answers are empty; only where the request went matters
		if len(stray) > 0 || len(hits) == 0 {
			t.Errorf("%s: the client called %v, which no route serves", call.want.Pattern, stray)
			continue
		}
		for _, h := range hits {
			if h != call.want {
				t.Errorf("%s: the client called %s", call.want.Pattern, h.Pattern)
			}
		}
		seen[call.want] = true
	}
	for _, rt := range api.Routes {
		if !seen[rt] && rt != api.Metrics && rt != api.MetricsRoot { // Prometheus scrapes metrics, not the client
			t.Errorf("%s: no client call in this test", rt.Pattern)
		}
	}
}

// TestRepeatableIsTable: the calls the client sends again after a try of
// unknown outcome (retry.go) are the routes the table marks repeatable:
// each route's path, as the client builds it, is matched to that route,
// and the retry decision is the table's.
func TestRepeatableIsTable(t *testing.T) {
	for _, rt := range api.Routes {
		ps := make([]string, len(rt.Params()))
		for i := range ps {
			ps[i] = "x/y z" // escaped into one segment, as a file name would be
		}
		path := rt.Path(ps...) + "?q=1"
		if got := routeOf(rt.Method(), path); got != rt {
			t.Errorf("%s: %s matched to %v", rt.Pattern, path, got)
		}
		want := rt.Repeatable || rt.Method() == http.MethodGet
		if got := idempotent(rt.Method(), path); got != want {
			t.Errorf("%s: the client repeats it: %v; the table: %v", rt.Pattern, got, want)
		}
	}
}
