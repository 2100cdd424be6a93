package broker

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
)

// TestWarnCache: a user's warnings are reused at the same grants
// generation for less than grantWarnInterval on the same day, computed
// afresh at another generation, after the interval, on another day,
// after forget (by login name or entity) and reset; a failed computation
// or generation read is not kept; the cache stays bounded.
func TestWarnCache(t *testing.T) {
	var c warnCache
	fills := 0
	fill := func(lines ...string) func() ([]string, error) {
		return func() ([]string, error) { fills++; return lines, nil }
	}
	gen := int64(7)
	atGen := func() (int64, error) { return gen, nil }
	rita := catalog.Principal{Name: "rita", EntityID: "ent-rita"}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	get := func(p catalog.Principal, day string, at time.Time, lines ...string) []string {
		t.Helper()
		got, err := c.get(p, day, at, atGen, fill(lines...))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	step := func(what string, wantFills int, got []string, want string) {
		t.Helper()
		if fills != wantFills || fmt.Sprint(got) != want {
			t.Errorf("%s: %d computations, lines %q; want %d, %s", what, fills, got, wantFills, want)
		}
	}
	step("first", 1, get(rita, "2026-03-01", t0, "a"), "[a]")
	step("within the interval", 1, get(rita, "2026-03-01", t0.Add(grantWarnInterval-time.Nanosecond), "b"), "[a]")
	gen++
	step("another generation", 2, get(rita, "2026-03-01", t0, "b"), "[b]")
	step("same generation again", 2, get(rita, "2026-03-01", t0, "x"), "[b]")
	step("interval over", 3, get(rita, "2026-03-01", t0.Add(grantWarnInterval), "b"), "[b]")
	step("another day", 4, get(rita, "2026-03-02", t0.Add(grantWarnInterval), "c"), "[c]")
	step("clock set back", 5, get(rita, "2026-03-02", t0, "d"), "[d]")
	step("another user", 6, get(catalog.Principal{Name: "eve"}, "2026-03-02", t0, "e"), "[e]")
	step("cached again", 6, get(rita, "2026-03-02", t0, "x"), "[d]")

	c.forget(catalog.Principal{Name: "rita"})
	step("forgotten by name", 7, get(rita, "2026-03-02", t0, "f"), "[f]")
	c.forget(catalog.Principal{Name: "rita-renamed", EntityID: "ent-rita"})
	step("forgotten by entity", 8, get(rita, "2026-03-02", t0, "g"), "[g]")
	step("eve untouched", 8, get(catalog.Principal{Name: "eve"}, "2026-03-02", t0, "x"), "[e]")
	c.reset()
	step("reset", 9, get(rita, "2026-03-02", t0, "h"), "[h]")

	boom := errors.New("catalog down")
	if _, err := c.get(rita, "2026-03-03", t0, atGen, func() ([]string, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
	step("error not kept", 10, get(rita, "2026-03-03", t0, "i"), "[i]")
	gen++
	if _, err := c.get(rita, "2026-03-03", t0, func() (int64, error) { return 0, boom }, fill("x")); !errors.Is(err, boom) || fills != 10 {
		t.Fatalf("generation read failing: %v, %d computations", err, fills)
	}
	step("after a failed generation read", 11, get(rita, "2026-03-03", t0, "j"), "[j]")

	for i := range maxWarnUsers + 10 {
		get(catalog.Principal{Name: fmt.Sprint("u", i)}, "2026-03-03", t0, "z")
	}
	if n := len(c.entries); n > maxWarnUsers {
		t.Errorf("%d entries, bound %d", n, maxWarnUsers)
	}
}

// replicaOf is a second Server on e's catalog, clock and targets (a
// second dozod).
func replicaOf(t *testing.T, e *env) *env {
	t.Helper()
	var targets []Target
	for _, tg := range e.targets {
		targets = append(targets, dirTarget{tg.(*storage.DirTarget)})
	}
	b := *e
	var err error
	b.srv, err = New(Options{
		Catalog: e.cat, Identifier: tokens, Keys: e.srv.keys, Targets: targets,
		Admins: []string{"admin"}, Submitters: []string{"sam"},
		Logger: slog.New(slog.DiscardHandler), Version: "test",
		Now: func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &b
}

// warningsOf makes an authenticated GET of path and returns its
// Dozo-Warning lines (warnings asks whoami, which reads no dataset).
func (e *env) warningsOf(token, path string) []string {
	e.t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Header().Values(api.WarningHeader)
}

// TestGrantWarningAcrossReplicas: a change of a grant or of a dataset's
// deletion made on one dozod shows in another's warnings at the grantee's
// very next request, on a route that reads the dataset (the generation
// comes with the access read) and on one that reads none (the generation
// read alone), with no clock moving; access follows a revoke or a freeze
// made there at the very next request too.
func TestGrantWarningAcrossReplicas(t *testing.T) {
	a := newEnv(t)
	a.day("2026-12-19")
	b := replicaOf(t, a)
	const show = "/v1/datasets/JGAD000001"
	a.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	a.must(200, "tok-sam", "PUT", show+"/grants/rita", grantReq("", "2026-12-31"), nil)
	for _, e := range []*env{a, b} {
		if ws, ws2 := e.warnings("tok-rita"), e.warningsOf("tok-rita", show); len(ws) != 1 || len(ws2) != 1 {
			t.Fatalf("warnings before the changes: %q, %q", ws, ws2)
		}
	}
	// step checks a's lines: none, or one about a grant ending on until.
	step := func(what string, got []string, until string) {
		t.Helper()
		if until == "" && len(got) != 0 || until != "" && (len(got) != 1 || !strings.Contains(got[0], "ends on "+until)) {
			t.Errorf("%s: warnings %q, want %s", what, got, cmp.Or(until, "none"))
		}
	}
	// b books the next period: a warns no more.
	b.must(200, "tok-sam", "PUT", show+"/grants/rita", grantReq("2027-01-01", "2027-12-31"), nil)
	step("b after its booking", b.warnings("tok-rita"), "")
	step("a after b's booking (whoami)", a.warnings("tok-rita"), "")
	// b revokes and grants again, to a day before: a warns of that one.
	b.must(200, "tok-sam", "DELETE", show+"/grants/rita", api.RevokeRequest{Reason: "redo"}, nil)
	b.must(200, "tok-sam", "PUT", show+"/grants/rita", grantReq("", "2026-12-30"), nil)
	step("a after b's new grant (dataset read)", a.warningsOf("tok-rita", show), "2026-12-30")
	// b deletes the dataset: its grant is hidden, and a says nothing of it.
	b.must(202, "tok-sam", "POST", show+"/delete", api.DeleteDatasetRequest{Confirm: "JGAD000001"}, nil)
	step("a after b's deletion (whoami)", a.warnings("tok-rita"), "")
	// b restores it: a warns again.
	b.must(200, "tok-sam", "POST", show+"/undelete", nil, nil)
	step("a after b's restore (dataset read)", a.warningsOf("tok-rita", show), "2026-12-30")
	step("a after b's restore (whoami)", a.warnings("tok-rita"), "2026-12-30")

	// Access is never cached: b revokes, a refuses at once.
	a.must(200, "tok-rita", "GET", show, nil, nil)
	b.must(200, "tok-sam", "DELETE", show+"/grants/rita", api.RevokeRequest{Reason: "ended"}, nil)
	if code, raw := a.call("tok-rita", "GET", show, nil, nil); code == 200 {
		t.Errorf("a after b's revoke: %d %s", code, raw)
	}
	// A freeze on b likewise.
	a.must(200, "tok-sam", "GET", show, nil, nil)
	b.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "sam", Reason: "incident"}, nil)
	if code, raw := a.call("tok-sam", "GET", show, nil, nil); code != 403 {
		t.Errorf("a after b's freeze: %d %s", code, raw)
	}
}

// queryCounts are the catalog statements one request of each hot route
// costs, by the caller's relation to the dataset (the figures
// docs/scale-out.md quotes).
func queryCounts(t *testing.T) map[string]int64 {
	e := newEnv(t)
	e.day("2026-03-01")
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	data := randBytes(3<<20 + 99)
	f := e.upload("tok-sam", "DS1", "a.vcf", data, randBytes(16), randBytes(16))
	e.must(200, "tok-sam", "PUT", "/v1/datasets/DS1/grants/rita", grantReq("", "2026-06-30"), nil)
	for _, tok := range []string{"tok-sam", "tok-rita"} {
		id, _ := age.GenerateX25519Identity()
		e.must(200, tok, "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	}
	calls := []struct {
		name, method, path string
		body               any
	}{
		{"dataset list", "GET", "/v1/datasets", nil},
		{"header fetch", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil},
		{"batch presign", "POST", "/v1/fetches/" + f.ID + "/presign-batch", api.FetchBatchRequest{First: 0, Count: 4}},
	}
	out := map[string]int64{}
	for _, who := range []struct{ name, tok string }{{"submitter", "tok-sam"}, {"grantee", "tok-rita"}} {
		for _, c := range calls {
			e.must(200, who.tok, c.method, c.path, c.body, nil) // warm: warnings, memo, seen user
			out[c.name+", "+who.name] = e.statements(func() { e.must(200, who.tok, c.method, c.path, c.body, nil) })
		}
	}
	// The dataset list reads every dataset at once: more datasets, no
	// more statements.
	for _, id := range []string{"DS2", "DS3", "DS4"} {
		e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: id, Title: "t"}, nil)
	}
	e.must(200, "tok-rita", "GET", "/v1/datasets", nil, nil)
	out["dataset list of 4, grantee"] = e.statements(func() { e.must(200, "tok-rita", "GET", "/v1/datasets", nil, nil) })
	return out
}

// TestQueriesPerRequest bounds the catalog statements of the hot routes,
// so that a change adding one to every request shows here. Each count
// includes the audit append's two (the chain head and the insert), which
// group commit shares among the requests of a batch under load. The one
// other statement reads the caller's freeze, the dataset with the
// caller's roles and its freeze, and for a header fetch the file and the
// caller's recipient, for a presign batch the file (catalog.Access).
// Before the checks were folded the counts were 10, 11 and 10 (the
// dataset list 4 or 5 more per dataset: 22 for four), then 4, 6 and 5.
func TestQueriesPerRequest(t *testing.T) {
	got := queryCounts(t)
	for k, max := range map[string]int64{
		"dataset list, submitter":    3,
		"dataset list, grantee":      3,
		"dataset list of 4, grantee": 3,
		"header fetch, submitter":    3,
		"header fetch, grantee":      3,
		"batch presign, submitter":   3,
		"batch presign, grantee":     3,
	} {
		t.Logf("%s: %d statements", k, got[k])
		if got[k] > max {
			t.Errorf("%s: %d statements, want at most %d", k, got[k], max)
		}
	}
}
