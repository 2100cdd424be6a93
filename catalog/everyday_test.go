package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/audit"
)

// TestScheduledGrantRows: a grant starting after the running one ends
// leaves it in force and follows it; one that overlaps replaces it; a
// revocation revokes both; ExpiringGrants skips a followed grant and
// deleted datasets.
func TestScheduledGrantRows(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	put := func(from, until string) *Grant {
		t.Helper()
		g, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", From: from, Until: until, GrantedBy: "sam", GrantedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	cur := put("2026-03-01", "2026-03-31")
	exp, err := c.ExpiringGrants(ctx, ByName("rita"), "2026-03-01", "2026-03-31")
	if err != nil || len(exp) != 1 || exp[0].ID != cur.ID {
		t.Fatalf("expiring before booking: %+v %v", exp, err)
	}
	next := put("2026-04-01", "2027-03-31")
	if next.Follows != cur.ID {
		t.Fatalf("next period follows %d, want %d", next.Follows, cur.ID)
	}
	for day, want := range map[string]int64{"2026-03-31": cur.ID, "2026-04-01": next.ID} {
		if a, err := c.ActiveGrant(ctx, "D", ByName("rita"), day); err != nil || a.ID != want {
			t.Errorf("active on %s: %+v %v, want #%d", day, a, err, want)
		}
	}
	if gs, err := c.Grants(ctx, "D", false); err != nil || len(gs) != 2 {
		t.Fatalf("current rows: %+v %v", gs, err)
	}
	if exp, err := c.ExpiringGrants(ctx, ByName(""), "2026-03-01", "2026-03-31"); err != nil || len(exp) != 0 {
		t.Errorf("a followed grant is expiring: %+v %v", exp, err)
	}
	// Rebooking the next period with other dates replaces the booking,
	// not the running grant.
	again := put("2026-04-02", "2027-03-31")
	if gs, _ := c.Grants(ctx, "D", false); len(gs) != 2 || gs[0].ID != cur.ID || gs[1].ID != again.ID {
		t.Fatalf("after rebooking: %+v", gs)
	}
	r, err := c.RevokeGrant(ctx, "D", ByName("rita"), "sam", "left", t0)
	if err != nil || r.ID != again.ID || r.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	for _, day := range []string{"2026-03-01", "2026-04-05"} {
		if _, err := c.ActiveGrant(ctx, "D", ByName("rita"), day); !errors.Is(err, ErrNotFound) {
			t.Errorf("active on %s after revoking: %v", day, err)
		}
	}
	// Deleted datasets are not expiring for anyone.
	mkDataset(t, c, "E")
	if _, err := c.PutGrant(ctx, Grant{DatasetID: "E", User: "eve", From: "2026-03-01", Until: "2026-03-20", GrantedBy: "sam", GrantedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if exp, _ := c.ExpiringGrants(ctx, ByName("eve"), "2026-03-01", "2026-03-31"); len(exp) != 1 {
		t.Fatalf("eve's grant: %+v", exp)
	}
	if _, err := c.ScheduleDeletion(ctx, "E", "sam", t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if exp, _ := c.ExpiringGrants(ctx, ByName("eve"), "2026-03-01", "2026-03-31"); len(exp) != 0 {
		t.Errorf("a deleted dataset's grant is expiring: %+v", exp)
	}
}

// TestAuditFileFilter: records are found by file name (fetches by id,
// uploads by upload id, refusals by the name they asked for) and the
// file's name and size are looked up for the list.
func TestAuditFileFilter(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	if err := mkUpload(t, c, "D", "u1", "a.vcf", 1); err != nil {
		t.Fatal(err)
	}
	if err := mkUpload(t, c, "D", "u2", "b.vcf", 1); err != nil {
		t.Fatal(err)
	}
	add := func(action, object, result string) {
		t.Helper()
		if _, err := c.AppendAudit(ctx, audit.Record{Time: t0, Actor: "rita", Action: action, Object: object, Result: result}); err != nil {
			t.Fatal(err)
		}
	}
	add("upload.complete", "upload/u1", audit.ResultOK)
	add("file.fetch", "file/f-u1", audit.ResultOK)
	add("fetch.presign-batch", "file/f-u1", audit.ResultOK)
	add("fetch.presign", "file/f-u1/D/f-u1/0/1", audit.ResultOK)
	add("file.fetch.done", "file/f-u1", audit.ResultClientReported)
	add("file.fetch", "file/f-u2", audit.ResultOK)
	add("file.fetch", "dataset/D/file/a.vcf", audit.ResultRefused)
	add("file.fetch", "dataset/D/file/xa.vcf", audit.ResultRefused)
	add("audit.list", "audit", audit.ResultOK)

	actions := func(f AuditFilter) string {
		t.Helper()
		rs, err := c.AuditRecords(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range rs {
			s = append(s, r.Action)
		}
		return strings.Join(s, ",")
	}
	if got := actions(AuditFilter{File: "a.vcf"}); got != "upload.complete,file.fetch,fetch.presign-batch,fetch.presign,file.fetch.done,file.fetch" {
		t.Errorf("a.vcf: %s", got)
	}
	if got := actions(AuditFilter{File: "a.vcf", Dataset: "D", ExcludeActions: []string{"fetch.presign", "fetch.presign-batch"}, Result: audit.ResultOK}); got != "upload.complete,file.fetch" {
		t.Errorf("a.vcf without presigns, ok only: %s", got)
	}
	if got := actions(AuditFilter{Actions: []string{"file.fetch.done", "audit.list"}}); got != "file.fetch.done,audit.list" {
		t.Errorf("by action: %s", got)
	}
	if got := actions(AuditFilter{Until: t0}); got != "" {
		t.Errorf("until is exclusive: %s", got)
	}
	files, err := c.AuditFiles(ctx, []string{"upload/u1", "file/f-u1/D/f-u1/0/1", "file/f-u2", "dataset/D/file/xa.vcf", "audit", "file/f-none"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]AuditFile{"upload/u1": {"a.vcf", 10}, "file/f-u1/D/f-u1/0/1": {"a.vcf", 10}, "file/f-u2": {"b.vcf", 10}, "dataset/D/file/xa.vcf": {Name: "xa.vcf"}}
	if len(files) != len(want) {
		t.Errorf("files %+v", files)
	}
	for o, w := range want {
		if files[o] != w {
			t.Errorf("%s: %+v, want %+v", o, files[o], w)
		}
	}
}
