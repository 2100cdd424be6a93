package catalog

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/audit"
)

// populate gives c something in every table: datasets, files with
// segments, an open upload, grants with history, freezes, members, a
// recipient, a scrub run, a rotation, a deletion, audit records and an
// anchor of the chain.
func populate(t *testing.T, c *Catalog) {
	t.Helper()
	ctx := context.Background()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mkDataset(t, c, "DS1")
	mkDataset(t, c, "DS2")
	check(c.AddMember(ctx, "DS1", "amy", "", RoleSubmitter, "sam", t0))
	check(c.SetRecipient(ctx, "bob", "age1bob", t0))
	check(mkUpload(t, c, "DS1", "u1", "a.bam", 2))
	check(c.CommitSegment(ctx, "u1", seg(0), t0, t0.Add(time.Hour)))
	check(c.CommitSegment(ctx, "u1", seg(1), t0, t0.Add(time.Hour)))
	_, err := c.CompleteUpload(ctx, "u1", strings.Repeat("0", 64), strings.Repeat("1", 32), []byte(`{"m":1}`), t0)
	check(err)
	check(mkUpload(t, c, "DS1", "u2", "b.bam", 1))
	for _, u := range []string{"bob", "carol"} {
		_, err := c.PutGrant(ctx, Grant{DatasetID: "DS1", User: u, Until: "2026-06-01", GrantedBy: "sam", GrantedAt: t0, Reason: "study"})
		check(err)
	}
	_, err = c.PutGrant(ctx, Grant{DatasetID: "DS1", User: "bob", Until: "2026-09-01", GrantedBy: "sam", GrantedAt: t0.Add(time.Hour)})
	check(err)
	_, err = c.RevokeGrant(ctx, "DS1", ByName("carol"), "sam", "left", t0.Add(2*time.Hour))
	check(err)
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "eve", Reason: "incident", FrozenBy: "admin", FrozenAt: t0})
	check(err)
	_, err = c.LiftFreeze(ctx, FreezeUser, ByName("eve"), "admin", "resolved", t0.Add(time.Hour))
	check(err)
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeDataset, Name: "DS1", Reason: "audit", FrozenBy: "admin", FrozenAt: t0})
	check(err)
	cands, err := c.ScrubCandidates(ctx, "DS1", "")
	check(err)
	check(c.CreateScrubRun(ctx, ScrubRun{ID: "r1", Trigger: ScrubManual, StartedBy: "admin", Deep: true, StartedAt: t0}, cands))
	check(c.FinishScrubFile(ctx, "r1", 0, []byte(`{"ok":true}`), t0))
	check(c.EndScrubRun(ctx, "r1", ScrubDone, "", t0))
	_, err = c.StartRotation(ctx, "DS1", 2, "sam", t0)
	check(err)
	_, err = c.StartDeletion(ctx, "DS2", "sam", t0)
	check(err)
	check(c.RecordDeletedObject(ctx, "DS2", DeletedObject{Target: "s1-a", Key: "dozo/v1/DS2/x", VersionID: "v1", Size: 3, DeleteMarker: true, DeletedAt: t0}))
	check(c.InsertJob(ctx, Job{ID: "j1", Kind: "rotate-key", DatasetID: "DS1", LockKey: "dataset/DS1", RequestedBy: "sam", CreatedAt: t0}))
	for i := range 25 {
		_, err := c.AppendAudit(ctx, audit.Record{Time: t0.Add(time.Duration(i) * time.Second), Actor: "sam", Action: "file.fetch",
			Object: "file/f-u1", Result: audit.ResultOK, Status: 200, Detail: "seg \u00e9 'q' \"d\""})
		check(err)
	}
	check(c.CreateConsoleSession(ctx, ConsoleSession{IDHash: make([]byte, 32), User: "sam", Sealed: []byte("sealed"), CreatedAt: t0, SeenAt: t0},
		t0.Add(-time.Hour), t0.Add(-8*time.Hour), 10))
	check(c.CreatePendingSignIn(ctx, PendingSignIn{IDHash: make([]byte, 32), Sealed: []byte("sealed"), CreatedAt: t0}, t0.Add(-time.Hour), 10))
	seq, hash, err := c.AuditHead(ctx)
	check(err)
	check(c.AddAuditAnchor(ctx, audit.StoredAnchor{Seq: seq, Hash: hash, MAC: "vault:v1:bWFj", Time: t0}))
}

// TestCopyKeepsEverything copies a SQLite catalog into an empty one on the
// backend under test (PostgreSQL in TestPostgres): every table has the
// source's rows, the audit chain verifies and ends where the source's
// does, the API reads the same values, and the copy takes new writes
// (identity sequences moved past the copied keys).
func TestCopyKeepsEverything(t *testing.T) {
	ctx := context.Background()
	src := openAt(t, filepath.Join(t.TempDir(), "src.db"))
	populate(t, src)
	dst := open(t)
	rep, err := Copy(ctx, dst, src)
	if err != nil {
		t.Fatal(err)
	}
	srcTables, _ := tableNames(ctx, src.db, src.d)
	srcTables = slices.DeleteFunc(srcTables, func(s string) bool { return s == "schema_migrations" })
	if len(rep.Tables) != len(srcTables) {
		t.Fatalf("copied %d tables, the source has %d: %+v", len(rep.Tables), len(srcTables), rep.Tables)
	}
	for _, tc := range rep.Tables {
		s, d := rowCount(t, src.db, tc.Table), rowCount(t, dst.db, tc.Table)
		if s != d || s != tc.Rows || s == 0 {
			t.Errorf("%s: source %d rows, copy %d, reported %d", tc.Table, s, d, tc.Rows)
		}
	}
	res, err := dst.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Records != 25 || rep.AuditRecords != 25 {
		t.Fatalf("copied chain: %+v %v (report %+v)", res, err, rep)
	}
	srcRecs, _ := src.AuditRecords(ctx, AuditFilter{Limit: 100})
	dstRecs, _ := dst.AuditRecords(ctx, AuditFilter{Limit: 100})
	if !reflect.DeepEqual(srcRecs, dstRecs) || rep.AuditHead != srcRecs[len(srcRecs)-1].Hash {
		t.Fatal("the copied audit records differ")
	}
	same := func(what string, get func(*Catalog) (any, error)) {
		t.Helper()
		a, err1 := get(src)
		b, err2 := get(dst)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: source %+v (%v), copy %+v (%v)", what, a, err1, b, err2)
		}
	}
	same("grants", func(c *Catalog) (any, error) { return c.Grants(ctx, "DS1", true) })
	same("freezes", func(c *Catalog) (any, error) { return c.Freezes(ctx, true) })
	same("file", func(c *Catalog) (any, error) { return c.File(ctx, "f-u1") })
	same("segments", func(c *Catalog) (any, error) { return c.Segments(ctx, "f-u1") })
	same("upload", func(c *Catalog) (any, error) { return c.Upload(ctx, "u2") })
	same("members", func(c *Catalog) (any, error) { return c.Members(ctx, "DS1") })
	same("recipient", func(c *Catalog) (any, error) { return c.Recipient(ctx, "bob") })
	same("scrub runs", func(c *Catalog) (any, error) { return c.ScrubRuns(ctx, 10) })
	same("scrub files", func(c *Catalog) (any, error) { return c.ScrubFiles(ctx, "r1") })
	same("rotation", func(c *Catalog) (any, error) { return c.OpenRotation(ctx, "DS1") })
	same("deletion", func(c *Catalog) (any, error) { return c.Deletion(ctx, "DS2") })
	same("deleted objects", func(c *Catalog) (any, error) { return c.DeletedObjects(ctx, "DS2") })
	same("audit anchors", func(c *Catalog) (any, error) { return c.AuditAnchors(ctx) })

	// New rows get fresh keys and the chain goes on.
	hist, _ := src.Grants(ctx, "DS1", true)
	g, err := dst.PutGrant(ctx, Grant{DatasetID: "DS1", User: "dan", Until: "2026-06-01", GrantedBy: "sam", GrantedAt: t0})
	if err != nil || g.ID <= hist[len(hist)-1].ID {
		t.Fatalf("grant after copy: %+v %v", g, err)
	}
	if _, err := dst.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "mallory", Reason: "r", FrozenBy: "admin", FrozenAt: t0}); err != nil {
		t.Fatalf("freeze after copy: %v", err)
	}
	if r, err := dst.AppendAudit(ctx, audit.Record{Time: t0, Actor: "sam", Action: "a", Object: "o", Result: audit.ResultOK}); err != nil || r.Seq != 26 {
		t.Fatalf("append after copy: %+v %v", r, err)
	}
	if res, _ := dst.VerifyAudit(ctx); !res.OK || res.Records != 26 {
		t.Fatalf("chain after an append to the copy: %+v", res)
	}
	// A catalog with rows is never a destination.
	if _, err := Copy(ctx, dst, src); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a used catalog: %v", err)
	}
}

// TestCopyRefusesBrokenChain: a source whose audit chain does not verify
// is not copied (the copy would launder it), and the destination stays
// empty.
func TestCopyRefusesBrokenChain(t *testing.T) {
	ctx := context.Background()
	src := openAt(t, filepath.Join(t.TempDir(), "src.db"))
	populate(t, src)
	if _, err := src.db.Exec(`UPDATE audit SET actor = 'mallory' WHERE seq = 7`); err != nil {
		t.Fatal(err)
	}
	dst := open(t)
	if _, err := Copy(ctx, dst, src); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("copy of a broken chain: %v", err)
	}
	tables, _ := tableNames(ctx, dst.db, dst.d)
	for _, tb := range tables {
		if n := rowCount(t, dst.db, tb); n != 0 && tb != "schema_migrations" {
			t.Errorf("%s has %d rows after a refused copy", tb, n)
		}
	}
}

// TestBackup backs a SQLite catalog up while it is open: the backup is a
// new 0600 file that opens as a catalog with the same rows and chain; an
// existing file is never overwritten. A PostgreSQL catalog refuses (it is
// backed up with pg_dump).
func TestBackup(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	populate(t, c)
	path := filepath.Join(t.TempDir(), "backup.db")
	if onPostgres(t) {
		if err := c.Backup(ctx, path); err == nil || !strings.Contains(err.Error(), "pg_dump") {
			t.Fatalf("backup of a PostgreSQL catalog: %v", err)
		}
		return
	}
	if err := c.Backup(ctx, path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	b := openAt(t, path)
	if res, err := b.VerifyAudit(ctx); err != nil || !res.OK || res.Records != 25 {
		t.Fatalf("backup chain: %+v %v", res, err)
	}
	tables, _ := tableNames(ctx, c.db, c.d)
	for _, tb := range tables {
		if n, m := rowCount(t, c.db, tb), rowCount(t, b.db, tb); n != m {
			t.Errorf("%s: %d rows, backup %d", tb, n, m)
		}
	}
	if err := c.Backup(ctx, path); err == nil {
		t.Fatal("backup overwrote an existing file")
	}
	if res, err := b.VerifyAudit(ctx); err != nil || !res.OK || res.Records != 25 {
		t.Fatalf("backup after a refused overwrite: %+v %v", res, err)
	}
}
