package broker

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/internal/envconfig"
	"github.com/dozo-vault/dozo/vault"
)

// exportableKeys is fakeKeys whose keys Transit would call exportable.
type exportableKeys struct{ *fakeKeys }

func (k exportableKeys) ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error) {
	ki, err := k.fakeKeys.ReadKey(ctx, name)
	if ki != nil {
		ki.Exportable = true
	}
	return ki, err
}

// batchAnchorKeys adds batch verification, as *vault.Client has it.
type batchAnchorKeys struct{ *fakeKeys }

func (k batchAnchorKeys) VerifyHMACs(ctx context.Context, name string, data [][]byte, macs []string) ([]bool, error) {
	ok := make([]bool, len(data))
	for i := range data {
		ok[i] = k.VerifyHMAC(ctx, name, data[i], macs[i]) == nil
	}
	return ok, nil
}

func (e *env) verifyAudit() api.AuditVerifyResponse {
	e.t.Helper()
	var v api.AuditVerifyResponse
	e.must(200, "tok-admin", "GET", "/v1/audit/verify", nil, &v)
	return v
}

// TestAuditAnchors: the head is anchored with the anchor key (once per
// head, and at every export); verify checks every anchor, and fails, with
// a clear reason, when the log was cut short below an anchor or an anchor
// was altered.
func TestAuditAnchors(t *testing.T) {
	t.Run("one by one", func(t *testing.T) { testAuditAnchors(t, &fakeKeys{}) })
	t.Run("batch", func(t *testing.T) { testAuditAnchors(t, batchAnchorKeys{&fakeKeys{}}) })
}

func testAuditAnchors(t *testing.T, keys KeyService) {
	ctx := context.Background()
	e, path := newEnvWith(t, keys)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t"}, nil)
	e.must(200, "tok-sam", "GET", "/v1/whoami", nil, nil)
	a, err := e.srv.anchorAudit(ctx)
	if err != nil || a == nil {
		t.Fatalf("anchoring: %v %v", a, err)
	}
	head, hash, _ := e.cat.AuditHead(ctx)
	if a.Seq != head || a.Hash != hash || !strings.HasPrefix(a.MAC, "vault:v1:") {
		t.Fatalf("anchor %+v, head %d %s", a, head, hash)
	}
	if again, err := e.srv.anchorAudit(ctx); err != nil || again != nil {
		t.Fatalf("anchoring an anchored head again: %+v %v", again, err)
	}
	// The MAC is the anchor key's, over (seq, hash, time).
	if err := e.srv.keys.VerifyHMAC(ctx, DefaultAnchorKey, audit.AnchorInput(a.Seq, a.Hash, a.Time), a.MAC); err != nil {
		t.Fatalf("the anchor's MAC does not verify with %s: %v", DefaultAnchorKey, err)
	}

	v := e.verifyAudit()
	if !v.OK || v.Anchors != 1 || v.AnchoredSeq != a.Seq {
		t.Fatalf("verify with one anchor: %+v", v)
	}
	e.must(200, "tok-admin", "GET", "/v1/audit/export", nil, nil)
	v = e.verifyAudit()
	if !v.OK || v.Anchors != 2 || v.AnchoredSeq <= a.Seq {
		t.Fatalf("verify after an export: %+v", v)
	}
	as, _ := e.cat.AuditAnchors(ctx)
	latest := as[len(as)-1].Seq

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// An anchor altered in the catalog no longer verifies with Vault.
	if _, err := db.Exec(`UPDATE audit_anchors SET time = time + 1 WHERE seq = ?`, a.Seq); err != nil {
		t.Fatal(err)
	}
	v = e.verifyAudit()
	if v.OK || v.Kind != audit.ForgedAnchor || v.BadSeq != a.Seq || !strings.Contains(v.Reason, "does not verify") {
		t.Fatalf("verify with an altered anchor: %+v", v)
	}
	db.Exec(`UPDATE audit_anchors SET time = time - 1 WHERE seq = ?`, a.Seq)
	if v = e.verifyAudit(); !v.OK {
		t.Fatalf("verify with the anchor restored: %+v", v)
	}

	// The log cut short below the latest anchor: the chain that is left
	// is intact, but it no longer holds the anchored record.
	if _, err := db.Exec(`DELETE FROM audit WHERE seq > ?`, latest-2); err != nil {
		t.Fatal(err)
	}
	v = e.verifyAudit()
	if v.OK || v.Kind != audit.Truncated || v.BadSeq != latest || !strings.Contains(v.Reason, "anchored in Vault") {
		t.Fatalf("verify of a log cut below its anchor: %+v", v)
	}
	// Records appended since refill the seqs with other hashes: rewritten.
	for i := 0; i < 4; i++ {
		e.must(200, "tok-sam", "GET", "/v1/whoami", nil, nil)
	}
	if v = e.verifyAudit(); v.OK || v.Kind != audit.Rewritten || v.BadSeq != latest {
		t.Fatalf("verify of a cut log appended to since: %+v", v)
	}
}

// TestAuditAnchorKeyChecked: an exportable anchor key is refused, and no
// anchor is made with it.
func TestAuditAnchorKeyChecked(t *testing.T) {
	ctx := context.Background()
	e, _ := newEnvWith(t, exportableKeys{&fakeKeys{}})
	e.must(200, "tok-sam", "GET", "/v1/whoami", nil, nil)
	if _, err := e.srv.anchorAudit(ctx); err == nil || !strings.Contains(err.Error(), "exportable") {
		t.Fatalf("anchoring with an exportable key: %v", err)
	}
	if as, _ := e.cat.AuditAnchors(ctx); len(as) != 0 {
		t.Fatalf("anchors made with an exportable key: %+v", as)
	}
}

func TestAuditConfig(t *testing.T) {
	var c AuditConfig
	if err := envconfig.Apply(&c, func(k string) string { return map[string]string{"DOZOD_AUDIT_ANCHOR_INTERVAL": "30m"}[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil || c.AnchorInterval != 30*time.Minute || c.AnchorKey != DefaultAnchorKey {
		t.Fatalf("%+v %v", c, err)
	}
	for name, bad := range map[string]AuditConfig{
		"short interval":  {AnchorInterval: time.Second},
		"dataset key":     {AnchorKey: api.TransitKeyName("JGAD000001")},
		"bad key name":    {AnchorKey: "../keys"},
		"interval > 24 h": {AnchorInterval: 48 * time.Hour},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, bad)
		}
	}
}
