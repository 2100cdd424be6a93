package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/broker"
	"github.com/dozo-vault/dozo/vault"
)

func (s *stack) admin(t testing.TB) *user {
	t.Helper()
	return s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
}

func auditList(t testing.TB, u *user, args ...string) []api.AuditRecord {
	t.Helper()
	var rs []api.AuditRecord
	if err := json.Unmarshal([]byte(u.must(t, append([]string{"audit", "list", "--json", "--limit", "10000"}, args...)...)), &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestAuditChain: a real run leaves a record for every data access, state
// change and refusal, with no secret in any of them; `dozo audit verify`
// passes on it and names the record when one was edited, deleted or two
// were swapped in the catalog; an export verifies offline.
func TestAuditChain(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	admin := s.admin(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "audit test")
	src := filepath.Join(t.TempDir(), "a.vcf")
	writeRandomFile(t, src, 21, 2*mib+5, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	out := filepath.Join(t.TempDir(), "out.vcf")
	rita.refused(t, "fetch", ds+"/a.vcf", "-o", out)
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 0, 7).Format(time.DateOnly), "--application", "J-DU000001", "--institution", "NIG")
	rita.must(t, "fetch", ds+"/a.vcf", "-o", out)

	// Every step is on record, attributed to its dataset.
	rs := auditList(t, admin, "--dataset", ds)
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Actor+" "+r.Action+" "+r.Result] = true
		if d, _, ok := strings.Cut(r.Detail, " of "); ok && strings.HasPrefix(d, "with ") {
			// A presign or commit carried by the call that opens or
			// closes the transfer.
			seen[r.Actor+" "+r.Action+" "+r.Result+" "+d] = true
		}
		if r.Dataset != ds || r.RequestID == "" || r.Source == "" {
			t.Errorf("record %d lacks dataset, request id or source: %+v", r.Seq, r)
		}
	}
	for _, w := range []string{
		sam.name + " dataset.create ok", sam.name + " upload.begin ok with PUT URLs",
		sam.name + " upload.complete ok with the commit", rita.name + " file.fetch refused", sam.name + " grant.put ok",
		rita.name + " file.fetch ok with GET URLs",
	} {
		if !seen[w] {
			t.Errorf("no audit record %q among %d records of %s", w, len(rs), ds)
		}
	}
	// The custodian reads their dataset's audit; a grantee may not, and
	// only admins read the whole log.
	if got := auditList(t, sam, "--dataset", ds); len(got) < len(rs) {
		t.Errorf("custodian sees %d records, admin %d", len(got), len(rs))
	}
	rita.refused(t, "audit", "list", "--dataset", ds)
	rita.refused(t, "audit", "list")
	sam.refused(t, "audit", "verify")
	if byRita := auditList(t, admin, "--user", rita.name, "--since", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)); len(byRita) == 0 {
		t.Error("--user finds nothing")
	}

	// No secret in any record: tokens, header objects, Transit ciphertexts.
	exportPath := filepath.Join(t.TempDir(), "audit.jsonl")
	admin.must(t, "audit", "export", "-o", exportPath)
	exp, err := os.ReadFile(exportPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(exportPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v", fi.Mode().Perm())
	}
	for _, u := range []*user{sam, rita, admin} {
		tok, err := os.ReadFile(filepath.Join(u.dir, "token"))
		if err != nil || len(bytes.TrimSpace(tok)) < 10 {
			t.Fatalf("token of %s: %v", u.name, err)
		}
		if bytes.Contains(exp, bytes.TrimSpace(tok)) {
			t.Errorf("the audit log holds %s's token", u.name)
		}
	}
	for _, bad := range []string{"vault:v", "dozo-transit", "age-encryption.org", "Bearer"} {
		if bytes.Contains(exp, []byte(bad)) {
			t.Errorf("the audit log holds %q", bad)
		}
	}
	if !strings.Contains(admin.must(t, "audit", "verify", "--file", exportPath), "OK") {
		t.Fatal("offline verify of a fresh export does not say OK")
	}
	if !strings.Contains(admin.must(t, "audit", "verify"), "OK") {
		t.Fatal("dozo audit verify does not say OK on a real run")
	}

	// An edited export line is found offline.
	lines := strings.Split(strings.TrimSpace(string(exp)), "\n")
	var victim api.AuditRecord
	json.Unmarshal([]byte(lines[len(lines)/2]), &victim)
	lines[len(lines)/2] = strings.Replace(lines[len(lines)/2], `"result":"`+victim.Result+`"`, `"result":"error"`, 1)
	tampered := filepath.Join(t.TempDir(), "tampered.jsonl")
	os.WriteFile(tampered, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	if line := admin.refused(t, "audit", "verify", "--file", tampered); !strings.Contains(line, fmt.Sprintf("record %d", victim.Seq)) || !strings.Contains(line, "edited") {
		t.Errorf("tampered export: %s", line)
	}

	// Tampering with the catalog itself, one kind at a time, each undone
	// before the next.
	db := s.catalogDB(t)
	var head int64
	if err := db.QueryRow(`SELECT max(seq) FROM audit`).Scan(&head); err != nil || head < 10 {
		t.Fatalf("audit head %d: %v", head, err)
	}
	x := head - 5
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	check := func(kind string, seq int64) {
		t.Helper()
		line := admin.refused(t, "audit", "verify")
		if !strings.Contains(line, fmt.Sprintf("record %d", seq)) || !strings.Contains(line, kind) {
			t.Errorf("verify after %s: %s", kind, line)
		}
	}

	var actor string
	db.QueryRow(`SELECT actor FROM audit WHERE seq = ?`, x).Scan(&actor)
	exec(`UPDATE audit SET actor = 'mallory' WHERE seq = ?`, x)
	check("edited", x)
	exec(`UPDATE audit SET actor = ? WHERE seq = ?`, actor, x)
	admin.must(t, "audit", "verify")

	exec(fmt.Sprintf(`CREATE TABLE audit_saved AS SELECT * FROM audit WHERE seq = %d`, x)) // no parameters in CREATE TABLE AS on PostgreSQL
	exec(`DELETE FROM audit WHERE seq = ?`, x)
	check("deleted", x+1)
	exec(`INSERT INTO audit SELECT * FROM audit_saved`)
	exec(`DROP TABLE audit_saved`)
	admin.must(t, "audit", "verify")

	swap := func() {
		exec(`UPDATE audit SET seq = -seq WHERE seq IN (?, ?)`, x, x+1)
		exec(`UPDATE audit SET seq = CASE seq WHEN ? THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END WHERE seq IN (?, ?)`, -x, x+1, x, -x, -(x + 1))
	}
	swap()
	check("reordered", x)
	swap()
	if !strings.Contains(admin.must(t, "audit", "verify"), "OK") {
		t.Fatal("restored log does not verify")
	}

	// Cutting off the tail leaves a chain that verifies on its own; the
	// earlier export, as an anchor, shows the cut.
	admin.must(t, "audit", "verify", "--anchor", exportPath)
	last := lines[len(lines)-1]
	var anchor api.AuditRecord
	json.Unmarshal([]byte(last), &anchor)
	exec(fmt.Sprintf(`CREATE TABLE audit_tail AS SELECT * FROM audit WHERE seq >= %d`, anchor.Seq))
	exec(`DELETE FROM audit WHERE seq >= ?`, anchor.Seq)
	// dozod anchored the export's last record in Vault: the cut shows
	// without the export at hand.
	if line := admin.refused(t, "audit", "verify"); !strings.Contains(line, "truncated") || !strings.Contains(line, "anchored in Vault") {
		t.Errorf("verify after truncation below dozod's anchor: %s", line)
	}
	// That verify's own record now holds the anchor's seq: "rewritten".
	if line := admin.refused(t, "audit", "verify", "--anchor", exportPath); !strings.Contains(line, "rewritten") || !strings.Contains(line, fmt.Sprintf("record %d", anchor.Seq)) {
		t.Errorf("verify --anchor after truncation: %s", line)
	}
	// Records appended meanwhile took the freed seqs; put the tail back
	// in its place and let those go.
	exec(`DELETE FROM audit WHERE seq >= ?`, anchor.Seq)
	// (and any anchor dozod's timer made of the cut log meanwhile)
	exec(`DELETE FROM audit_anchors WHERE seq >= ? AND hash NOT IN (SELECT hash FROM audit_tail)`, anchor.Seq)
	exec(`INSERT INTO audit SELECT * FROM audit_tail`)
	exec(`DROP TABLE audit_tail`)
	admin.must(t, "audit", "verify", "--anchor", exportPath)
}

// TestAuditAnchorVault: an export anchors the log's head with dozod's
// audit key in Transit, and the anchor's MAC verifies through Vault itself
// (a changed head does not); the key is non-exportable; dozo audit verify
// checks the anchors and names an altered one.
func TestAuditAnchorVault(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	admin := s.admin(t)
	auditList(t, admin)
	exportPath := filepath.Join(t.TempDir(), "audit.jsonl")
	admin.must(t, "audit", "export", "-o", exportPath)
	f, err := os.Open(exportPath)
	if err != nil {
		t.Fatal(err)
	}
	last, err := audit.LastRecord(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	db := s.catalogDB(t)
	var a audit.StoredAnchor
	var seq, ts int64
	if err := db.QueryRow(`SELECT seq, hash, mac, time FROM audit_anchors ORDER BY seq DESC LIMIT 1`).Scan(&seq, &a.Hash, &a.MAC, &ts); err != nil {
		t.Fatalf("no anchor after an export: %v", err)
	}
	a.Seq, a.Time = uint64(seq), time.Unix(0, ts)
	if a.Seq < last.Seq {
		t.Fatalf("latest anchor at record %d, the export ends at %d", a.Seq, last.Seq)
	}
	if a.Seq == last.Seq && a.Hash != last.Hash {
		t.Fatalf("anchor of record %d has hash %s, the export %s", a.Seq, a.Hash, last.Hash)
	}

	vc := s.vault(t)
	ki, err := vc.ReadKey(ctx, broker.DefaultAnchorKey)
	if err != nil || ki.Exportable || ki.Type != vault.KeyType {
		t.Fatalf("anchor key %s: %+v %v", broker.DefaultAnchorKey, ki, err)
	}
	if err := vc.VerifyHMAC(ctx, broker.DefaultAnchorKey, a.Input(), a.MAC); err != nil {
		t.Fatalf("the anchor's MAC does not verify with Transit: %v", err)
	}
	moved := a
	moved.Seq--
	if err := vc.VerifyHMAC(ctx, broker.DefaultAnchorKey, moved.Input(), a.MAC); !errors.Is(err, vault.ErrBadMAC) {
		t.Fatalf("the MAC verifies for another seq: %v", err)
	}

	var v api.AuditVerifyResponse
	if err := json.Unmarshal([]byte(admin.must(t, "audit", "verify", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Anchors < 1 || v.AnchoredSeq < a.Seq {
		t.Fatalf("verify: %+v", v)
	}
	if out := admin.must(t, "audit", "verify"); !strings.Contains(out, "Anchored in Vault") {
		t.Errorf("verify does not mention the anchors: %s", out)
	}

	// An anchor edited in the catalog: Vault refuses its MAC.
	if _, err := db.Exec(`UPDATE audit_anchors SET time = time + 1 WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	line := admin.refused(t, "audit", "verify")
	db.Exec(`UPDATE audit_anchors SET time = time - 1 WHERE seq = ?`, seq)
	if !strings.Contains(line, "forged anchor") || !strings.Contains(line, fmt.Sprintf("record %d", seq)) {
		t.Errorf("verify with an edited anchor: %s", line)
	}
	admin.must(t, "audit", "verify")
}
