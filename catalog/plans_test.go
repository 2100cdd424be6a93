package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLookupsUseIndexes: what the catalog runs over the tables that grow
// with use (files, uploads, segments, jobs, grants, audit) finds its rows
// by index. Each call below runs on a catalog whose statements are
// recorded, and SQLite's plan of every statement it sent must not read a
// whole growing table, but for the plan lines the call names (a read of
// the newest rows in index order that stops at its LIMIT, or a filter no
// index can serve). The catalog runs no ANALYZE, so these are the plans
// SQLite makes in use whatever the tables hold. PostgreSQL plans by its
// statistics (BenchmarkLookups measures the same calls on both).
func TestLookupsUseIndexes(t *testing.T) {
	path := store(t)
	c := openAt(t, path)
	if c.Backend() != SQLite {
		t.Skip("query plans are checked on SQLite")
	}
	ctx := context.Background()
	mkDataset(t, c, "D")
	mkDataset(t, c, "D2")
	for i, ds := range []string{"D", "D2"} {
		id := fmt.Sprint("u", i)
		if err := mkUpload(t, c, ds, id, "a.vcf", 1); err != nil {
			t.Fatal(err)
		}
		if err := c.CommitSegment(ctx, id, seg(0), t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CompleteUpload(ctx, id, "sha", "md5", []byte(`{}`), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.InsertJob(ctx, Job{ID: "j1", Kind: "scrub", DatasetID: "D", Params: []byte(`{}`), RequestedBy: "dozod", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	rec := recordStatements(t, c, path)

	for _, call := range []struct {
		name  string
		run   func() error
		allow []string // plan lines this call may have
		want  string   // a plan line one of its statements must have
	}{
		{name: "file list", run: func() error { _, err := c.Files(ctx, "D"); return err }},
		{name: "files completed since", run: func() error { _, err := c.FilesCompletedSince(ctx, "D", t0); return err }},
		{name: "file key ids", run: func() error { _, err := c.FileKeyIDs(ctx, "D"); return err }},
		{name: "all files", run: func() error { _, err := c.AllFiles(ctx, "D"); return err }},
		{name: "scrub one file", run: func() error { _, err := c.ScrubCandidates(ctx, "D", "a.vcf"); return err }},
		{name: "scrub dataset", run: func() error { _, err := c.ScrubCandidates(ctx, "D", ""); return err }},
		{name: "scrub all", run: func() error { _, err := c.ScrubCandidates(ctx, "", ""); return err },
			// Every live file, by dataset and name as the index has them.
			allow: []string{"SCAN f USING INDEX files_live_name"}},
		{name: "upload", run: func() error {
			if err := mkUpload(t, c, "D", "u9", "b.vcf", 1); err != nil {
				return err
			}
			if _, err := c.OpenUploadByName(ctx, "D", "b.vcf"); err != nil {
				return err
			}
			if err := c.CommitSegment(ctx, "u9", seg(0), t0, t0.Add(time.Hour)); err != nil {
				return err
			}
			if _, err := c.Segments(ctx, "f-u9"); err != nil {
				return err
			}
			if _, err := c.Segment(ctx, "f-u9", 0); err != nil {
				return err
			}
			if _, err := c.CompleteUpload(ctx, "u9", "sha", "md5", []byte(`{}`), t0); err != nil {
				return err
			}
			_, err := c.AvailableFile(ctx, "D", "b.vcf")
			return err
		}},
		{name: "expired uploads", run: func() error { _, err := c.ExpiredUploads(ctx, t0); return err }},
		{name: "uploads to clean", run: func() error { _, err := c.UploadsToClean(ctx, time.Hour); return err },
			// The ended sessions not final yet: not every session
			// ever ended (uploads_state).
			want: "SEARCH u USING INDEX uploads_to_clean (clean_final=? AND state=?)"},
		{name: "deletion", run: func() error { _, err := c.StartDeletion(ctx, "D2", "sam", t0); return err }},
		{name: "audit file filter", run: func() error {
			if _, err := c.AuditRecords(ctx, AuditFilter{File: "a.vcf"}); err != nil {
				return err
			}
			_, err := c.AuditRecords(ctx, AuditFilter{Dataset: "D", File: "a.vcf"})
			return err
		},
			// The records are matched by their object's end, which no
			// index holds; they are read newest first up to the limit.
			allow: []string{"SCAN audit"}},
		{name: "jobs of a kind", run: func() error {
			if _, err := c.Jobs(ctx, JobFilter{Kind: "scrub", Limit: 16}); err != nil {
				return err
			}
			_, err := c.Jobs(ctx, JobFilter{Kind: "scrub", DatasetIDs: []string{"D"}, Limit: 16})
			return err
		}},
		{name: "newest jobs", run: func() error { _, err := c.Jobs(ctx, JobFilter{}); return err },
			// The newest, in index order, up to the limit.
			allow: []string{"SCAN jobs USING INDEX jobs_created"}},
		{name: "job claim", run: func() error {
			_, err := c.ClaimJob(ctx, "dozod-1", []string{"scrub"}, "", t0, t0.Add(time.Minute))
			return err
		},
			// The candidates are the unfinished jobs, not every job of
			// the kind kept (jobs_kind).
			want: "SEARCH jobs USING INDEX jobs_state (state=?)"},
		{name: "job prune", run: func() error { _, err := c.PruneJobs(ctx, t0); return err }},
	} {
		stmts := rec.during(func() {
			if err := call.run(); err != nil {
				t.Fatalf("%s: %v", call.name, err)
			}
		})
		if len(stmts) == 0 {
			t.Fatalf("%s: no statement recorded", call.name)
		}
		wanted := call.want == ""
		for _, q := range stmts {
			for _, line := range queryPlan(t, c, q) {
				if scansGrowingTable(line) && !slices.Contains(call.allow, line) {
					t.Errorf("%s: %s\n\tin %s", call.name, line, strings.Join(strings.Fields(q), " "))
				}
				wanted = wanted || line == call.want
			}
		}
		if !wanted {
			t.Errorf("%s: no plan has %q", call.name, call.want)
		}
	}
}

// growingTables are the tables (and the aliases the catalog gives them)
// whose rows grow with use.
var growingTables = []string{"files", "f", "uploads", "u", "segments", "jobs", "grants", "g", "audit"}

// scansGrowingTable reports whether a plan line reads every row of a
// growing table (in whatever order, with or without an index).
func scansGrowingTable(line string) bool {
	rest, ok := strings.CutPrefix(line, "SCAN ")
	if !ok {
		return false
	}
	name, _, _ := strings.Cut(rest, " ")
	return slices.Contains(growingTables, name)
}

// queryPlan is SQLite's plan of q, one detail per line.
func queryPlan(t *testing.T, c *Catalog, q string) []string {
	t.Helper()
	rows, err := c.db.Query(`EXPLAIN QUERY PLAN `+q, make([]any, strings.Count(q, "?"))...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}

// statementRecorder keeps the texts of the statements a catalog sends.
type statementRecorder struct {
	mu    sync.Mutex
	on    bool
	stmts []string
}

func (r *statementRecorder) add(q string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on && !slices.Contains(r.stmts, q) {
		r.stmts = append(r.stmts, q)
	}
}

// during returns the statements sent while fn ran.
func (r *statementRecorder) during(fn func()) []string {
	r.mu.Lock()
	r.on, r.stmts = true, nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.stmts
}

// recordStatements gives c, a SQLite catalog at path, connections that
// record what they run.
func recordStatements(t *testing.T, c *Catalog, path string) *statementRecorder {
	t.Helper()
	conn, err := newSQLiteConnector(sqliteDSN(path), c.queries)
	if err != nil {
		t.Fatal(err)
	}
	rec := &statementRecorder{}
	old := c.db
	c.db = sql.OpenDB(recordingConnector{conn, rec})
	t.Cleanup(func() { old.Close() })
	return rec
}

type recordingConnector struct {
	driver.Connector
	rec *statementRecorder
}

func (c recordingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &recordingConn{conn.(*stmtConn), c.rec}, nil
}

type recordingConn struct {
	*stmtConn
	rec *statementRecorder
}

func (c *recordingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.rec.add(q)
	return c.stmtConn.QueryContext(ctx, q, args)
}

func (c *recordingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.rec.add(q)
	return c.stmtConn.ExecContext(ctx, q, args)
}

// TestLookupIndexesMigration: migration 13 adds its indexes to a catalog
// that has rows, which keeps them and answers as before.
func TestLookupIndexesMigration(t *testing.T) {
	ctx := context.Background()
	path := store(t)
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mkDataset(t, c, "D")
	if err := mkUpload(t, c, "D", "u1", "a.vcf", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.InsertJob(ctx, Job{ID: "j1", Kind: "scrub", DatasetID: "D", Params: []byte(`{}`), RequestedBy: "dozod", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	indexes := []string{"files_dataset", "files_name", "jobs_created", "jobs_kind"}
	has := func(c *Catalog) []string {
		q := `SELECT name FROM sqlite_master WHERE type = 'index' AND name IN (?, ?, ?, ?) ORDER BY name`
		if c.Backend() == Postgres {
			q = `SELECT indexname FROM pg_indexes WHERE indexname IN (?, ?, ?, ?) ORDER BY indexname`
		}
		names, err := c.ids(ctx, q, "files_dataset", "files_name", "jobs_created", "jobs_kind")
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if got := has(c); !slices.Equal(got, indexes) {
		t.Fatalf("a new catalog has indexes %v, want %v", got, indexes)
	}
	// A catalog of version 12: without them.
	for _, ix := range indexes {
		if _, err := c.db.ExecContext(ctx, `DROP INDEX `+ix); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = 13`); err != nil {
		t.Fatal(err)
	}
	c.Close()

	c = openAt(t, path)
	if v, err := c.Version(ctx); err != nil || v != len(migrations) {
		t.Fatalf("version %d, %v", v, err)
	}
	if got := has(c); !slices.Equal(got, indexes) {
		t.Fatalf("after the migration: indexes %v, want %v", got, indexes)
	}
	if fs, err := c.AllFiles(ctx, "D"); err != nil || len(fs) != 1 || fs[0].Name != "a.vcf" {
		t.Fatalf("files after the migration: %+v, %v", fs, err)
	}
	if js, err := c.Jobs(ctx, JobFilter{Kind: "scrub"}); err != nil || len(js) != 1 || js[0].ID != "j1" {
		t.Fatalf("jobs after the migration: %+v, %v", js, err)
	}
}
