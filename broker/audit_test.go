package broker

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
)

// newEnvAt is newEnv with the catalog path known, so a test can tamper
// with the database behind the broker's back.
func newEnvAt(t *testing.T) (*env, string) {
	t.Helper()
	return newEnvWith(t, &fakeKeys{})
}

// newEnvWith is newEnvAt with a chosen key service.
func newEnvWith(t *testing.T, keys KeyService) (*env, string) {
	t.Helper()
	return newEnvOn(t, asDirTarget, func(e *env, o *Options) {
		seeAll(t, e.cat, tokens, e.now)
		o.Keys = keys
	})
}

func TestAuditEveryRequest(t *testing.T) {
	e, _ := newEnvAt(t)
	e.must(200, "tok-sam", "GET", "/v1/whoami", nil, nil)
	e.must(401, "hvs.forged-token-value", "GET", "/v1/whoami", nil, nil)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t"}, nil)
	e.must(404, "tok-rita", "GET", "/v1/datasets/DS1", nil, nil)
	e.must(404, "tok-sam", "GET", "/v1/no/such/thing", nil, nil)
	e.must(200, "", "GET", "/v1/health", nil, nil) // no action: not audited

	var rs []api.AuditRecord
	raw := e.must(200, "tok-admin", "GET", "/v1/audit", nil, &rs)
	want := []struct{ actor, action, object, result string }{
		{"sam", "whoami", "user/sam", "ok"},
		{"", "whoami", "", "refused"},
		{"sam", "dataset.create", "dataset/DS1", "ok"},
		{"rita", "dataset.show", "dataset/DS1", "refused"},
		{"", "unknown", "", "refused"}, // not authenticated: unknown endpoints take no token
	}
	if len(rs) != len(want) {
		t.Fatalf("%d records, want %d: %s", len(rs), len(want), raw)
	}
	for i, w := range want {
		r := rs[i]
		if r.Actor != w.actor || r.Action != w.action || r.Object != w.object || r.Result != w.result || r.RequestID == "" || r.Seq != uint64(i+1) {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}
	if rs[1].Status != 401 || rs[3].Status != 404 || rs[3].Dataset != "DS1" || !strings.Contains(rs[4].Detail, "/v1/no/such/thing") {
		t.Errorf("status/dataset/detail not recorded: %+v", rs)
	}
	// No token ever reaches a record.
	for _, secret := range []string{"tok-sam", "tok-rita", "hvs.forged-token-value", "Bearer"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("audit records contain %q", secret)
		}
	}

	// Custodians see their dataset's records only; others get the usual 404.
	var mine []api.AuditRecord
	e.must(200, "tok-sam", "GET", "/v1/audit?dataset=DS1", nil, &mine)
	for _, r := range mine {
		if r.Dataset != "DS1" {
			t.Errorf("custodian listing shows %+v", r)
		}
	}
	if len(mine) != 2 {
		t.Errorf("custodian sees %d DS1 records, want 2", len(mine))
	}
	e.must(403, "tok-sam", "GET", "/v1/audit", nil, nil)
	e.must(404, "tok-rita", "GET", "/v1/audit?dataset=DS1", nil, nil)
	e.must(403, "tok-sam", "GET", "/v1/audit/verify", nil, nil)
	e.must(403, "tok-sam", "GET", "/v1/audit/export", nil, nil)
	e.must(400, "tok-admin", "GET", "/v1/audit?since=yesterday", nil, nil)
	e.must(400, "tok-admin", "GET", "/v1/audit?limit=0", nil, nil)

	var v api.AuditVerifyResponse
	e.must(200, "tok-admin", "GET", "/v1/audit/verify", nil, &v)
	if !v.OK || v.Records < 10 {
		t.Fatalf("verify: %+v", v)
	}
	exp := e.must(200, "tok-admin", "GET", "/v1/audit/export", nil, nil)
	res, err := audit.VerifyExport(bytes.NewReader(exp))
	if err != nil || !res.OK || res.Records != v.Records+2 { // + the verify and the export itself
		t.Fatalf("export verifies as %+v %v (verify said %d records)", res, err, v.Records)
	}
	lines := strings.Split(strings.TrimSpace(string(exp)), "\n")
	var last api.AuditRecord
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if last.Action != "audit.export" || last.Actor != "admin" {
		t.Fatalf("the export does not end with its own record: %+v", last)
	}
}

// TestAuditFailClosed: when no record can be appended, no successful
// answer leaves dozod.
func TestAuditFailClosed(t *testing.T) {
	e, path := newEnvAt(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t"}, nil)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit disabled'); END`); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/whoami", "/v1/datasets/DS1", "/v1/datasets/DS1/files", "/v1/datasets"} {
		code, raw := e.call("tok-sam", "GET", p, nil, nil)
		if code != 503 || !strings.Contains(string(raw), "audit log unavailable") || strings.Contains(string(raw), "DS1\",\"title") {
			t.Errorf("GET %s with the audit log down: %d %s", p, code, raw)
		}
	}
	// A refusal is still a refusal.
	e.must(404, "tok-rita", "GET", "/v1/datasets/DS1", nil, nil)
	if !strings.Contains(e.logs.String(), "audit_error") {
		t.Error("the failed append is not in the log")
	}
	db.Exec(`DROP TRIGGER no_audit`)
	e.must(200, "tok-sam", "GET", "/v1/whoami", nil, nil)
}
