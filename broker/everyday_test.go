package broker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/crypto"
)

// day sets the env's clock to noon UTC of d (YYYY-MM-DD).
func (e *env) day(d string) {
	e.t.Helper()
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		e.t.Fatal(err)
	}
	e.now = t.Add(12 * time.Hour)
}

// warnings makes an authenticated whoami and returns its Dozo-Warning
// lines.
func (e *env) warnings(token string) []string {
	e.t.Helper()
	req := httptest.NewRequest("GET", "/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("whoami: %d %s", rec.Code, rec.Body)
	}
	return rec.Header().Values(api.WarningHeader)
}

func grantReq(from, until string) api.GrantRequest {
	return api.GrantRequest{From: from, Until: until, ApplicationID: "J-DU000001", Institution: "NIG"}
}

// TestScheduledGrant: the next period, booked while the current grant
// runs, is "scheduled", leaves the current one running to its last day,
// and becomes active on its first day with no action; it may not overlap
// the running grant, and a revocation ends both.
func TestScheduledGrant(t *testing.T) {
	e := newEnv(t)
	e.day("2026-03-01")
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	put := "/v1/datasets/JGAD000001/grants/rita"
	var cur, next api.Grant
	e.must(200, "tok-sam", "PUT", put, grantReq("", "2026-03-31"), &cur)

	// Overlap: any later start on or before the running grant's last day.
	for _, from := range []string{"2026-03-02", "2026-03-31"} {
		raw := e.must(409, "tok-sam", "PUT", put, grantReq(from, "2027-02-28"), nil)
		if b := errBody(t, raw); !strings.Contains(b.Error, "overlap") || !strings.Contains(b.Hint, "2026-04-01") {
			t.Errorf("overlap from %s: %s", from, raw)
		}
	}
	e.must(200, "tok-sam", "PUT", put, grantReq("2026-04-01", "2027-03-31"), &next)
	if next.State != api.GrantScheduled || next.Active || next.Follows != cur.ID {
		t.Fatalf("next period: %+v", next)
	}
	var gs []api.Grant
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants", nil, &gs)
	if len(gs) != 2 || gs[0].ID != cur.ID || gs[0].State != api.GrantActive || gs[1].ID != next.ID || gs[1].State != api.GrantScheduled {
		t.Fatalf("register after booking ahead: %+v", gs)
	}
	// The current grant is not cut: rita reads through its last day.
	for _, d := range []string{"2026-03-01", "2026-03-31"} {
		e.day(d)
		e.must(200, "tok-rita", "GET", "/v1/datasets/JGAD000001/files", nil, nil)
	}
	// Its first day: active with nothing done.
	e.day("2026-04-01")
	e.must(200, "tok-rita", "GET", "/v1/datasets/JGAD000001/files", nil, nil)
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants", nil, &gs)
	if len(gs) != 2 || gs[0].State != api.GrantExpired || gs[1].State != api.GrantActive || !gs[1].Active {
		t.Fatalf("register on the next period's first day: %+v", gs)
	}

	// A gap is allowed too: eve's next period starts a week after hers ends.
	e.day("2026-03-01")
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/eve", grantReq("", "2026-03-10"), nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/eve", grantReq("2026-03-18", "2026-06-30"), &next)
	if next.State != api.GrantScheduled {
		t.Fatalf("after a gap: %+v", next)
	}
	e.day("2026-03-14")
	if raw := e.must(403, "tok-eve", "GET", "/v1/datasets/JGAD000001/files", nil, nil); !strings.Contains(string(raw), "starts on 2026-03-18") {
		t.Errorf("in the gap: %s", raw)
	}
	e.day("2026-03-18")
	e.must(200, "tok-eve", "GET", "/v1/datasets/JGAD000001/files", nil, nil)

	// Revoking ends the running grant and cancels the booked one.
	e.day("2026-03-05")
	e.must(200, "tok-sam", "PUT", put, grantReq("", "2026-03-31"), &cur)
	e.must(200, "tok-sam", "PUT", put, grantReq("2026-04-01", "2027-03-31"), &next)
	e.must(200, "tok-sam", "DELETE", put, api.RevokeRequest{Reason: "left"}, nil)
	for _, d := range []string{"2026-03-05", "2026-04-01"} {
		e.day(d)
		e.must(403, "tok-rita", "GET", "/v1/datasets/JGAD000001/files", nil, nil)
	}
}

// TestGrantsExpiring: ?expiring_days lists running grants ending within
// the period that nothing follows, in both register views.
func TestGrantsExpiring(t *testing.T) {
	e := newEnv(t)
	e.day("2026-03-01")
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grantReq("", "2026-03-31"), nil) // 30 days from today
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/eve", grantReq("", "2026-04-01"), nil)  // 31 days
	users := func(path string) string {
		var gs []api.Grant
		e.must(200, "tok-sam", "GET", path, nil, &gs)
		var us []string
		for _, g := range gs {
			us = append(us, g.User)
		}
		return strings.Join(us, ",")
	}
	for _, p := range []string{"/v1/grants?expiring_days=30", "/v1/datasets/JGAD000001/grants?expiring_days=30"} {
		if got := users(p); got != "rita" {
			t.Errorf("%s: %q, want rita", p, got)
		}
	}
	if got := users("/v1/grants?expiring_days=31"); got != "rita,eve" {
		t.Errorf("31 days: %q", got)
	}
	// Booked ahead: no longer expiring.
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grantReq("2026-04-01", "2027-03-31"), nil)
	if got := users("/v1/grants?expiring_days=30"); got != "" {
		t.Errorf("after booking rita's next period: %q", got)
	}
	for _, bad := range []string{"-1", "x", "367"} {
		e.must(400, "tok-sam", "GET", "/v1/grants?expiring_days="+bad, nil, nil)
	}
}

// TestGrantWarning: a grantee's answers carry a Dozo-Warning during the
// last 30 days of a grant nothing follows, and not before.
func TestGrantWarning(t *testing.T) {
	e := newEnv(t)
	e.day("2026-03-01")
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grantReq("", "2026-12-31"), nil)
	for d, want := range map[string]string{
		"2026-03-01": "",
		"2026-11-30": "", // 31 days left
		"2026-12-01": "your grant on JGAD000001 ends on 2026-12-31 (in 30 days)",
		"2026-12-19": "your grant on JGAD000001 ends on 2026-12-31 (in 12 days)",
		"2026-12-31": "your grant on JGAD000001 ends on 2026-12-31 (today)",
		"2027-01-01": "", // over
	} {
		e.day(d)
		ws := e.warnings("tok-rita")
		switch {
		case want == "" && len(ws) != 0:
			t.Errorf("%s: warned %q", d, ws)
		case want != "" && (len(ws) != 1 || !strings.HasPrefix(ws[0], want)):
			t.Errorf("%s: warnings %q, want %q", d, ws, want)
		}
	}
	// Any request carries it, a refused one too; other users get none.
	e.day("2026-12-19")
	req := httptest.NewRequest("GET", "/v1/datasets/NOPE", nil)
	req.Header.Set("Authorization", "Bearer tok-rita")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 404 || len(rec.Header().Values(api.WarningHeader)) != 1 {
		t.Errorf("refused request: %d, warnings %q", rec.Code, rec.Header().Values(api.WarningHeader))
	}
	if ws := e.warnings("tok-eve"); len(ws) != 0 {
		t.Errorf("eve warned: %q", ws)
	}
	// A deleted dataset is not named to its grantees.
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000002", Title: "t"}, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000002/grants/rita", grantReq("", "2026-12-30"), nil)
	if ws := e.warnings("tok-rita"); len(ws) != 2 {
		t.Errorf("two expiring grants: %q", ws)
	}
	e.must(202, "tok-sam", "POST", "/v1/datasets/JGAD000002/delete", api.DeleteDatasetRequest{Confirm: "JGAD000002"}, nil)
	if ws := e.warnings("tok-rita"); len(ws) != 1 || strings.Contains(ws[0], "JGAD000002") {
		t.Errorf("after deleting a dataset: %q", ws)
	}
	// The next period booked: no warning.
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grantReq("2027-01-01", "2027-12-31"), nil)
	if ws := e.warnings("tok-rita"); len(ws) != 0 {
		t.Errorf("warned with the next period booked: %q", ws)
	}
}

// TestDatasetShowCustodians: whoever may see a dataset, a grantee
// included, learns who its custodians are.
func TestDatasetShowCustodians(t *testing.T) {
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/members/eve/custodian", nil, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grantReq("", "2026-03-31"), nil)
	var d api.Dataset
	e.must(200, "tok-rita", "GET", "/v1/datasets/JGAD000001", nil, &d)
	if strings.Join(d.Custodians, ",") != "eve,sam" {
		t.Fatalf("custodians %q", d.Custodians)
	}
}

// TestAuditListEveryday: the list names the files records concern (also
// once the dataset is deleted), a client-reported completion is recorded
// with its bytes, and the filters select what they say.
func TestAuditListEveryday(t *testing.T) {
	e, _ := newEnvAt(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	data := randBytes(5000)
	f := e.upload("tok-sam", "DS1", "a.vcf", data, randBytes(16), randBytes(16))
	e.upload("tok-sam", "DS1", "b.vcf", randBytes(100), randBytes(16), randBytes(16))
	e.must(200, "tok-sam", "PUT", "/v1/datasets/DS1/grants/rita", api.GrantRequest{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	e.must(200, "tok-rita", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil, nil)
	e.must(404, "tok-rita", "POST", "/v1/datasets/DS1/files/a.vcf.gz/fetch", nil, nil)
	done := "/v1/fetches/" + f.ID + "/done"
	e.must(400, "tok-rita", "POST", done, api.FetchDoneRequest{Bytes: 1 << 30, ElapsedMS: 5}, nil)
	e.must(404, "tok-eve", "POST", done, api.FetchDoneRequest{Bytes: 5000, ElapsedMS: 5}, nil)
	e.must(204, "tok-rita", "POST", done, api.FetchDoneRequest{Bytes: 5000, Verified: true, ElapsedMS: 1234}, nil)

	list := func(query string) []api.AuditEntry {
		t.Helper()
		var rs []api.AuditEntry
		e.must(200, "tok-admin", "GET", "/v1/audit?"+query, nil, &rs)
		return rs
	}
	summary := func(rs []api.AuditEntry) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Actor+" "+r.Action+" "+r.File+" "+r.Result)
		}
		return strings.Join(s, "; ")
	}
	want := "rita file.fetch a.vcf ok; rita file.fetch.done a.vcf refused; rita file.fetch.done a.vcf client-reported"
	if got := summary(list("file=a.vcf&user=rita&action=file.fetch,file.fetch.done&exclude_action=x")); got != want {
		t.Errorf("fetches of a.vcf:\n got %s\nwant %s", got, want)
	}
	rs := list("result=client-reported")
	if len(rs) != 1 || rs[0].Detail != "5000 bytes in 1.234s, verified" || rs[0].Object != "file/"+f.ID || rs[0].Dataset != "DS1" {
		t.Fatalf("the completion record: %+v", rs)
	}
	// The refused fetch of a name that does not exist is found by name.
	if got := summary(list("file=a.vcf.gz")); got != "rita file.fetch a.vcf.gz refused" {
		t.Errorf("refusals by name: %s", got)
	}
	// Uploads by name: begin, presigns, commits and complete of a.vcf
	// only; the completion shows the stored file's size.
	completes := 0
	for _, r := range list("file=a.vcf&user=sam") {
		if r.File != "a.vcf" || !strings.HasPrefix(r.Action, "upload.") {
			t.Errorf("sam's a.vcf records: %+v", r)
		}
		if r.Action == "upload.complete" {
			completes++
			if r.FileSize != int64(len(data)) {
				t.Errorf("upload.complete shows size %d, want %d", r.FileSize, len(data))
			}
		}
	}
	if completes != 1 {
		t.Errorf("%d upload.complete records of a.vcf", completes)
	}
	// exclude_action hides the listing's own records, which are still there.
	list("limit=1")
	if rs := list("exclude_action=audit.list&action=audit.list"); len(rs) != 0 {
		t.Errorf("excluded yet listed: %s", summary(rs))
	}
	if rs := list("action=audit.list"); len(rs) < 3 {
		t.Errorf("audit.list records: %s", summary(rs))
	}
	// until is exclusive; since and until together.
	if rs := list("until=2026-03-01T12:00:00Z"); len(rs) != 0 {
		t.Errorf("until: %s", summary(rs))
	}
	for _, bad := range []string{"result=maybe", "until=soon", "file=..", "action=,"} {
		e.must(400, "tok-admin", "GET", "/v1/audit?"+bad, nil, nil)
	}

	// A deleted dataset's files keep their names in the list.
	e.must(202, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, nil)
	if got := summary(list("dataset=DS1&result=client-reported")); got != "rita file.fetch.done a.vcf client-reported" {
		t.Errorf("after deletion: %s", got)
	}
	var v api.AuditVerifyResponse
	e.must(200, "tok-admin", "GET", "/v1/audit/verify", nil, &v)
	if !v.OK {
		t.Fatalf("chain with a client-reported record: %+v", v)
	}
	_ = audit.ResultClientReported

}

// TestFetchDoneCountsRawAgeFile: the report of a raw fetch counts the age
// file it wrote, the caller's header and then the stored chunk stream,
// which is more than the plaintext; beyond any header it is refused.
func TestFetchDoneCountsRawAgeFile(t *testing.T) {
	e, _ := newEnvAt(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	f := e.upload("tok-sam", "DS1", "a.vcf", randBytes(5000), randBytes(16), randBytes(16))
	e.must(200, "tok-sam", "PUT", "/v1/datasets/DS1/grants/rita", api.GrantRequest{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	stored, err := e.srv.cat.AvailableFile(context.Background(), "DS1", "a.vcf")
	if err != nil {
		t.Fatal(err)
	}
	done := "/v1/fetches/" + f.ID + "/done"
	e.must(204, "tok-rita", "POST", done, api.FetchDoneRequest{Bytes: stored.StoredSize + 1643, ElapsedMS: 5}, nil)
	e.must(400, "tok-rita", "POST", done, api.FetchDoneRequest{Bytes: stored.StoredSize + crypto.MaxHeaderSize + 1, ElapsedMS: 5}, nil)
}
