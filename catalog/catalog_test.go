package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// open opens a fresh catalog on the backend t runs on (backend_test.go).
func open(t *testing.T) *Catalog {
	t.Helper()
	c, err := Open(context.Background(), store(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mkDataset(t *testing.T, c *Catalog, id string) {
	t.Helper()
	err := c.CreateDataset(context.Background(), Dataset{ID: id, Title: "t", K: 4, M: 2, PlainSegmentSize: 1 << 20,
		SegmentSize: 1<<20 + 16*16, TransitKey: "dozo-ds-" + id, CreatedBy: "sam", CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
}

func mkUpload(t *testing.T, c *Catalog, ds, id, name string, segments int) error {
	t.Helper()
	return c.BeginUpload(context.Background(), Upload{
		ID:        id,
		File:      File{ID: "f-" + id, DatasetID: ds, Name: name, Size: 10, StoredSize: 26, HashAlg: "blake3", HeaderObject: []byte("hdr")},
		Segments:  segments,
		Targets:   []TargetRef{{ID: "s1-a", Domain: "s1"}},
		CreatedBy: "sam", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	})
}

func seg(i int) storage.SegmentMeta {
	return storage.SegmentMeta{Index: i, Size: 26, PieceSize: 7, Pieces: []storage.PieceMeta{{Target: "s1-a", Hash: strings.Repeat("a", 64)}}}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := store(t)
	for range 2 { // reopening applies nothing twice
		c, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Version(ctx)
		if err != nil || v != SchemaVersion {
			t.Fatalf("version %d, %v; want %d", v, err, SchemaVersion)
		}
		var n int
		c.db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n)
		if n != len(migrations) {
			t.Fatalf("%d migration rows, want %d", n, len(migrations))
		}
		c.Close()
	}
	// A catalog from a newer dozod is refused.
	c, _ := Open(ctx, path)
	c.db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (?, 0)`, SchemaVersion+1)
	c.Close()
	if _, err := Open(ctx, path); err == nil {
		t.Fatal("opened a catalog with a newer schema")
	}
}

func TestDatasetExistsAndRoles(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "JGAD1")
	err := c.CreateDataset(ctx, Dataset{ID: "JGAD1", Title: "x", K: 1, PlainSegmentSize: 1, SegmentSize: 1, TransitKey: "k", CreatedBy: "x", CreatedAt: t0})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate dataset: %v", err)
	}
	roles, err := c.Roles(ctx, "JGAD1", ByName("sam"), "2026-03-01")
	if err != nil || fmt.Sprint(roles) != "[custodian submitter]" {
		t.Fatalf("roles %v %v", roles, err)
	}
	if roles, _ := c.Roles(ctx, "JGAD1", ByName("rita"), "2026-03-01"); len(roles) != 0 {
		t.Fatalf("stranger has roles %v", roles)
	}
	if _, err := c.Dataset(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing dataset: %v", err)
	}
}

func TestGrantLifecycle(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	g, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", Until: "2026-03-10", GrantedBy: "sam", GrantedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	for day, want := range map[string]bool{"2026-03-01": true, "2026-03-10": true, "2026-03-11": false} {
		if got := g.ActiveOn(day); got != want {
			t.Errorf("ActiveOn(%s) = %v", day, got)
		}
		_, err := c.ActiveGrant(ctx, "D", ByName("rita"), day)
		if (err == nil) != want {
			t.Errorf("ActiveGrant on %s: %v", day, err)
		}
	}
	// Extension supersedes, keeping history.
	g2, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", Until: "2026-06-01", GrantedBy: "sam", GrantedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := c.ActiveGrant(ctx, "D", ByName("rita"), "2026-05-01"); err != nil || a.ID != g2.ID {
		t.Fatalf("active after extension: %+v %v", a, err)
	}
	// Revocation stamps, never deletes.
	r, err := c.RevokeGrant(ctx, "D", ByName("rita"), "sam", "left the project", t0.Add(time.Hour))
	if err != nil || r.RevokedAt == nil || r.RevokedBy != "sam" || r.RevokeReason != "left the project" || r.ActiveOn("2026-03-01") {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if _, err := c.ActiveGrant(ctx, "D", ByName("rita"), "2026-03-01"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked grant still active: %v", err)
	}
	if _, err := c.RevokeGrant(ctx, "D", ByName("rita"), "sam", "again", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	hist, err := c.Grants(ctx, "D", true)
	if err != nil || len(hist) != 2 || hist[0].SupersededBy != g2.ID || hist[1].RevokedAt == nil {
		t.Fatalf("history %+v %v", hist, err)
	}
	if cur, err := c.Grants(ctx, "D", false); err != nil || len(cur) != 1 || cur[0].ID != g2.ID || cur[0].State("2026-03-01") != GrantRevoked {
		t.Fatalf("current rows %+v %v", cur, err)
	}
	if l, err := c.LatestGrant(ctx, "D", ByName("rita")); err != nil || l.ID != g2.ID {
		t.Fatalf("latest %+v %v", l, err)
	}
	// A new grant after the revocation replaces the revoked row as the
	// current one; the revocation stays on record.
	g3, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", Until: "2026-04-01", GrantedBy: "sam", GrantedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	hist, _ = c.Grants(ctx, "D", true)
	if len(hist) != 3 || hist[1].SupersededBy != g3.ID || hist[1].RevokedAt == nil || hist[1].State("2026-03-01") != GrantRevoked {
		t.Fatalf("history after re-grant %+v", hist)
	}
	if cur, _ := c.Grants(ctx, "D", false); len(cur) != 1 || cur[0].ID != g3.ID {
		t.Fatalf("current after re-grant %+v", cur)
	}
	c.RevokeGrant(ctx, "D", ByName("rita"), "sam", "end", t0)
	if roles, _ := c.Roles(ctx, "D", ByName("rita"), "2026-03-01"); len(roles) != 0 {
		t.Fatalf("revoked grantee has roles %v", roles)
	}
}

func TestUploadStateMachine(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	if err := mkUpload(t, c, "D", "u1", "a.vcf", 3); err != nil {
		t.Fatal(err)
	}
	// The name is held while uploading.
	if err := mkUpload(t, c, "D", "u2", "a.vcf", 3); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second upload of a name: %v", err)
	}
	if u, err := c.OpenUploadByName(ctx, "D", "a.vcf"); err != nil || u.ID != "u1" {
		t.Fatalf("open upload by name: %v", err)
	}
	// Not available, not listed, until every segment is committed.
	for i := range 2 {
		if err := c.CommitSegment(ctx, "u1", seg(i), t0, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CommitSegment(ctx, "u1", seg(3), t0, t0); !errors.Is(err, ErrState) {
		t.Fatalf("out-of-range segment: %v", err)
	}
	if _, err := c.CompleteUpload(ctx, "u1", "s", "m", []byte("{}"), t0); !errors.Is(err, ErrState) {
		t.Fatalf("complete with a missing segment: %v", err)
	}
	if fs, _ := c.Files(ctx, "D"); len(fs) != 0 {
		t.Fatalf("partial file listed: %+v", fs)
	}
	if _, err := c.AvailableFile(ctx, "D", "a.vcf"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partial file available: %v", err)
	}
	u, _ := c.Upload(ctx, "u1")
	if !u.ExpiresAt.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("commit did not extend expiry: %v", u.ExpiresAt)
	}
	if err := c.CommitSegment(ctx, "u1", seg(2), t0, t0); err != nil {
		t.Fatal(err)
	}
	f, err := c.CompleteUpload(ctx, "u1", "s", "m", []byte("{}"), t0)
	if err != nil || f.State != FileAvailable || string(f.Manifest) != "{}" {
		t.Fatalf("complete: %+v %v", f, err)
	}
	if fs, _ := c.Files(ctx, "D"); len(fs) != 1 {
		t.Fatalf("files %+v", fs)
	}
	// A finished session accepts nothing more.
	if err := c.CommitSegment(ctx, "u1", seg(0), t0, t0); !errors.Is(err, ErrState) {
		t.Fatalf("commit after complete: %v", err)
	}
	if err := c.EndUpload(ctx, "u1", UploadAborted, t0); !errors.Is(err, ErrState) {
		t.Fatalf("abort after complete: %v", err)
	}
	if _, err := c.CompleteUpload(ctx, "u1", "s", "m", nil, t0); !errors.Is(err, ErrState) {
		t.Fatalf("second complete: %v", err)
	}
	// The name stays taken by the available file.
	if err := mkUpload(t, c, "D", "u3", "a.vcf", 1); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("upload over an available file: %v", err)
	}
}

func TestAbortExpireAndClean(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	mkUpload(t, c, "D", "u1", "a", 1)
	mkUpload(t, c, "D", "u2", "b", 1)
	if err := c.EndUpload(ctx, "u1", UploadAborted, t0); err != nil {
		t.Fatal(err)
	}
	// Abort frees the name.
	if err := mkUpload(t, c, "D", "u3", "a", 1); err != nil {
		t.Fatalf("name not freed by abort: %v", err)
	}
	ids, _ := c.ExpiredUploads(ctx, t0.Add(30*time.Minute))
	if len(ids) != 0 {
		t.Fatalf("expired too early: %v", ids)
	}
	ids, _ = c.ExpiredUploads(ctx, t0.Add(2*time.Hour))
	if len(ids) != 2 {
		t.Fatalf("expired %v", ids)
	}
	c.EndUpload(ctx, "u2", UploadExpired, t0.Add(2*time.Hour))
	todo, _ := c.UploadsToClean(ctx, 10*time.Minute)
	if len(todo) != 2 {
		t.Fatalf("to clean %d", len(todo))
	}
	// A clean-up inside the presign window must be repeated later.
	c.MarkCleaned(ctx, "u1", t0.Add(time.Minute), 10*time.Minute)
	c.MarkCleaned(ctx, "u2", t0.Add(3*time.Hour), 10*time.Minute)
	todo, _ = c.UploadsToClean(ctx, 10*time.Minute)
	if len(todo) != 1 || todo[0].ID != "u1" {
		t.Fatalf("to clean after first pass: %+v", todo)
	}
	c.MarkCleaned(ctx, "u1", t0.Add(11*time.Minute), 10*time.Minute)
	if todo, _ = c.UploadsToClean(ctx, 10*time.Minute); len(todo) != 0 {
		t.Fatalf("still to clean: %+v", todo)
	}
}

func TestGrantPeriodAndRegister(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	mkDataset(t, c, "E")
	g, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", From: "2026-04-01", Until: "2026-04-30",
		ApplicationID: "J-DU000001", Institution: "NIG", Reason: "approved", GrantedBy: "sam", GrantedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	for day, want := range map[string]string{"2026-03-31": GrantFuture, "2026-04-01": GrantActive, "2026-04-30": GrantActive, "2026-05-01": GrantExpired} {
		if got := g.State(day); got != want {
			t.Errorf("State(%s) = %s, want %s", day, got, want)
		}
		_, err := c.ActiveGrant(ctx, "D", ByName("rita"), day)
		if (err == nil) != (want == GrantActive) {
			t.Errorf("ActiveGrant on %s: %v", day, err)
		}
	}
	if g.ApplicationID != "J-DU000001" || g.Institution != "NIG" || g.Reason != "approved" || g.From != "2026-04-01" {
		t.Fatalf("register fields lost: %+v", g)
	}
	if _, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", From: "2026-05-01", Until: "2026-04-30", GrantedBy: "sam", GrantedAt: t0}); err == nil {
		t.Fatal("from after until accepted")
	}
	c.PutGrant(ctx, Grant{DatasetID: "E", User: "bob", Until: "2026-04-30", GrantedBy: "carl", GrantedAt: t0})
	// sam created both (custodian of both); rita sees only her own; bob
	// his own; an admin everything.
	for _, tc := range []struct {
		viewer string
		all    bool
		want   int
	}{{"sam", false, 2}, {"rita", false, 1}, {"bob", false, 1}, {"nobody", false, 0}, {"admin", true, 2}} {
		gs, err := c.VisibleGrants(ctx, ByName(tc.viewer), tc.all, true)
		if err != nil || len(gs) != tc.want {
			t.Errorf("VisibleGrants(%s) = %d rows %v, want %d", tc.viewer, len(gs), err, tc.want)
		}
	}
}

func TestDatasetNBDCMetadataAndMembers(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	d, err := c.Dataset(ctx, "D")
	if err != nil || d.AccessLevel != AccessControlled1 || d.MaxUseDays != DefaultMaxUseDays {
		t.Fatalf("defaults: %+v %v", d, err)
	}
	err = c.CreateDataset(ctx, Dataset{ID: "E", Title: "t", K: 4, M: 2, PlainSegmentSize: 1 << 20, SegmentSize: 1 << 20,
		TransitKey: "k", CreatedBy: "sam", CreatedAt: t0, AccessLevel: AccessControlled2, NBDCID: "JGAD000001", PolicyID: "JGAP000001", MaxUseDays: 90})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Dataset(ctx, "E"); e.AccessLevel != AccessControlled2 || e.NBDCID != "JGAD000001" || e.PolicyID != "JGAP000001" || e.MaxUseDays != 90 {
		t.Fatalf("metadata %+v", e)
	}
	for _, bad := range []Dataset{{ID: "F", AccessLevel: "open"}, {ID: "G", MaxUseDays: 400}} {
		bad.Title, bad.K, bad.M, bad.PlainSegmentSize, bad.SegmentSize, bad.TransitKey, bad.CreatedBy = "t", 4, 2, 1, 1, "k", "sam"
		if err := c.CreateDataset(ctx, bad); err == nil {
			t.Errorf("dataset %+v accepted", bad)
		}
		if _, err := c.Dataset(ctx, bad.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("refused dataset %s was stored", bad.ID)
		}
	}
	if err := c.AddMember(ctx, "D", "cara", "", RoleCustodian, "admin", t0); err != nil {
		t.Fatal(err)
	}
	if err := c.AddMember(ctx, "D", "cara", "", RoleCustodian, "admin", t0); err != nil {
		t.Fatalf("adding twice: %v", err)
	}
	if err := c.AddMember(ctx, "nope", "cara", "", RoleCustodian, "admin", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("member of a missing dataset: %v", err)
	}
	if roles, _ := c.Roles(ctx, "D", ByName("cara"), "2026-03-01"); fmt.Sprint(roles) != "[custodian]" {
		t.Fatalf("roles %v", roles)
	}
	if ms, err := c.Members(ctx, "D"); err != nil || len(ms) != 3 || ms[0].User != "cara" || ms[0].AddedBy != "admin" {
		t.Fatalf("members %+v %v", ms, err)
	}
	if err := c.RemoveMember(ctx, "D", ByName("cara"), RoleCustodian); err != nil {
		t.Fatal(err)
	}
	// sam, the creator, is now the last custodian.
	if err := c.RemoveMember(ctx, "D", ByName("sam"), RoleCustodian); !errors.Is(err, ErrState) {
		t.Fatalf("removing the last custodian: %v", err)
	}
	if roles, _ := c.Roles(ctx, "D", ByName("sam"), "2026-03-01"); fmt.Sprint(roles) != "[custodian submitter]" {
		t.Fatalf("refused removal changed roles: %v", roles)
	}
	if err := c.RemoveMember(ctx, "D", ByName("cara"), RoleCustodian); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing twice: %v", err)
	}
}

func TestFreezes(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	if _, err := c.ActiveFreeze(ctx, FreezeUser, "rita"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fresh catalog has a freeze: %v", err)
	}
	f, err := c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "rita", Reason: "incident 1", FrozenBy: "admin", FrozenAt: t0})
	if err != nil || f.ID == 0 || f.LiftedAt != nil {
		t.Fatalf("freeze: %+v %v", f, err)
	}
	if _, err := c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "rita", Reason: "again", FrozenBy: "admin", FrozenAt: t0}); !errors.Is(err, ErrExists) {
		t.Fatalf("second freeze: %v", err)
	}
	if _, err := c.PutFreeze(ctx, Freeze{Kind: "host", Name: "x", Reason: "r", FrozenBy: "admin", FrozenAt: t0}); err == nil {
		t.Fatal("bad kind accepted")
	}
	// A dataset and a user of the same name are distinct freezes.
	if _, err := c.ActiveFreeze(ctx, FreezeDataset, "rita"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("user freeze counted for a dataset: %v", err)
	}
	if a, err := c.ActiveFreeze(ctx, FreezeUser, "rita"); err != nil || a.Reason != "incident 1" {
		t.Fatalf("active: %+v %v", a, err)
	}
	l, err := c.LiftFreeze(ctx, FreezeUser, ByName("rita"), "admin", "resolved", t0.Add(time.Hour))
	if err != nil || l.LiftedAt == nil || l.LiftReason != "resolved" {
		t.Fatalf("lift: %+v %v", l, err)
	}
	if _, err := c.LiftFreeze(ctx, FreezeUser, ByName("rita"), "admin", "again", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second lift: %v", err)
	}
	if _, err := c.ActiveFreeze(ctx, FreezeUser, "rita"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lifted freeze still active: %v", err)
	}
	// Frozen again: history keeps both.
	c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "rita", Reason: "incident 2", FrozenBy: "admin", FrozenAt: t0})
	if cur, _ := c.Freezes(ctx, false); len(cur) != 1 || cur[0].Reason != "incident 2" {
		t.Fatalf("in force: %+v", cur)
	}
	if all, _ := c.Freezes(ctx, true); len(all) != 2 {
		t.Fatalf("history: %+v", all)
	}
}

// TestPing: a catalog that can answer pings, a closed one does not.
func TestPing(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	c.Close()
	if err := c.Ping(ctx); err == nil {
		t.Fatal("Ping of a closed catalog succeeded")
	}
}

// TestClock: the catalog's clock reads the database's time on PostgreSQL
// (here on this machine, so it agrees with time.Now) and this machine's
// on SQLite, and does not run backwards between two reads.
func TestClock(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	before := time.Now()
	a, err := c.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Location() != time.UTC || b.Before(a) || a.Before(before.Add(-time.Minute)) || a.After(time.Now().Add(time.Minute)) {
		t.Fatalf("catalog clock read %v then %v around %v", a, b, before)
	}
}

// TestCommitAndComplete: the last segment's commit and the completion
// happen together or not at all.
func TestCommitAndComplete(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	if err := mkUpload(t, c, "D", "u1", "a.vcf", 3); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitSegment(ctx, "u1", seg(0), t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Segment 1 is still missing: committing 2 with the completion fails
	// and records nothing.
	if _, err := c.CommitAndComplete(ctx, "u1", seg(2), "s", "m", []byte("{}"), t0); !errors.Is(err, ErrState) {
		t.Fatalf("commit and complete with a segment missing: %v", err)
	}
	u, _ := c.Upload(ctx, "u1")
	if segs, _ := c.Segments(ctx, u.File.ID); len(segs) != 1 {
		t.Fatalf("a failed commit and complete left %d segments, want 1", len(segs))
	}
	if _, err := c.CommitAndComplete(ctx, "u1", seg(3), "s", "m", []byte("{}"), t0); !errors.Is(err, ErrState) {
		t.Fatalf("out-of-range segment: %v", err)
	}
	if err := c.CommitSegment(ctx, "u1", seg(1), t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f, err := c.CommitAndComplete(ctx, "u1", seg(2), "s", "m", []byte("{}"), t0)
	if err != nil || f.State != FileAvailable {
		t.Fatalf("commit and complete: %+v %v", f, err)
	}
	if segs, _ := c.Segments(ctx, u.File.ID); len(segs) != 3 || segs[2].Index != 2 {
		t.Fatalf("segments after commit and complete: %+v", segs)
	}
	if _, err := c.CommitAndComplete(ctx, "u1", seg(2), "s", "m", []byte("{}"), t0); !errors.Is(err, ErrState) {
		t.Fatalf("second commit and complete: %v", err)
	}
}

// TestCleanFinal: a session cleaned after every presigned URL had expired
// is marked done for good and left out of later reads; one cleaned inside
// the window is not, until a later clean-up comes after it. Sessions
// cleaned before the mark existed are marked by the first read.
func TestCleanFinal(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	for _, id := range []string{"u1", "u2", "u3"} {
		if err := mkUpload(t, c, "D", id, id+".vcf", 1); err != nil {
			t.Fatal(err)
		}
		if err := c.EndUpload(ctx, id, UploadAborted, t0); err != nil {
			t.Fatal(err)
		}
	}
	final := func() []string {
		ids, err := c.ids(ctx, `SELECT id FROM uploads WHERE clean_final = 1 ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	c.MarkCleaned(ctx, "u1", t0.Add(time.Minute), 10*time.Minute)    // inside the 10-minute window
	c.MarkCleaned(ctx, "u2", t0.Add(11*time.Minute), 10*time.Minute) // after it
	if got := final(); !slices.Equal(got, []string{"u2"}) {
		t.Fatalf("final after the clean-ups: %v, want [u2]", got)
	}
	todo, err := c.UploadsToClean(ctx, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(todo) != 2 || todo[0].ID != "u1" || todo[1].ID != "u3" {
		t.Fatalf("to clean: %+v, want u1 (cleaned too early) and u3 (never)", todo)
	}
	if got := final(); !slices.Equal(got, []string{"u2"}) {
		t.Fatalf("final: %v, want [u2]", got)
	}
	c.MarkCleaned(ctx, "u1", t0.Add(20*time.Minute), 10*time.Minute)
	c.MarkCleaned(ctx, "u3", t0.Add(20*time.Minute), 10*time.Minute)
	if todo, _ = c.UploadsToClean(ctx, 10*time.Minute); len(todo) != 0 {
		t.Fatalf("still to clean: %+v", todo)
	}
	if got := final(); !slices.Equal(got, []string{"u1", "u2", "u3"}) {
		t.Fatalf("final: %v, want all three", got)
	}
	// A session cleaned for good before the column existed: the first
	// read of a new process marks it.
	if err := mkUpload(t, c, "D", "u5", "u5.vcf", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.EndUpload(ctx, "u5", UploadAborted, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.db.ExecContext(ctx, `UPDATE uploads SET cleaned_at = ?, clean_final = 0 WHERE id = 'u5'`, ts(t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	c.cleanFinalSwept.Store(false)
	if todo, _ = c.UploadsToClean(ctx, 10*time.Minute); len(todo) != 0 {
		t.Fatalf("to clean: %+v", todo)
	}
	if got := final(); !slices.Contains(got, "u5") {
		t.Fatalf("a session cleaned for good before the mark is not marked: %v", got)
	}
	// An open session is never final, whatever its columns say.
	if err := mkUpload(t, c, "D", "u4", "u4.vcf", 1); err != nil {
		t.Fatal(err)
	}
	c.UploadsToClean(ctx, 10*time.Minute)
	if got := final(); slices.Contains(got, "u4") {
		t.Fatalf("an open session marked final: %v", got)
	}
}
