package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The lookup benchmarks time the catalog's reads (and a deletion's
// start) over a catalog of realistic size: a dataset of 50,000 files
// beside 200 datasets of 50, an upload and two segments per file, grants,
// 100,000 audit records and 30,000 jobs kept. The per-dataset calls ask
// about a small dataset, whose answer is small: what they cost beyond
// that is rows read that are not its own.
func BenchmarkSQLiteLookups(b *testing.B)   { benchmarkLookups(b) }
func BenchmarkPostgresLookups(b *testing.B) { benchmarkLookups(b) }

func benchmarkLookups(b *testing.B) {
	if onPostgres(b) {
		if _, err := postgresURL(); err != nil {
			b.Skip(err)
		}
	}
	ctx := context.Background()
	c, err := Open(ctx, store(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := fillLookupCatalog(ctx, c); err != nil {
		b.Fatal(err)
	}
	const ds, name = "DS007", "s-0007-0031.vcf"
	deleted, swept := 0, false
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"Files", func() error { _, err := c.Files(ctx, ds); return err }},
		{"FilesCompletedSince", func() error { _, err := c.FilesCompletedSince(ctx, ds, t0); return err }},
		{"AllFiles", func() error { _, err := c.AllFiles(ctx, ds); return err }},
		{"ScrubCandidates/file", func() error { _, err := c.ScrubCandidates(ctx, ds, name); return err }},
		{"ScrubCandidates/dataset", func() error { _, err := c.ScrubCandidates(ctx, ds, ""); return err }},
		{"ScrubCandidates/all", func() error { _, err := c.ScrubCandidates(ctx, "", ""); return err }},
		{"AuditRecords/file-in-dataset", func() error {
			_, err := c.AuditRecords(ctx, AuditFilter{Dataset: ds, File: name})
			return err
		}},
		{"AuditRecords/file", func() error { _, err := c.AuditRecords(ctx, AuditFilter{File: name}); return err }},
		{"UploadsToClean", func() error {
			if !swept {
				// The steady state: a reaper pass has run and the
				// database has caught up (PostgreSQL's autovacuum).
				b.StopTimer()
				swept = true
				if _, err := c.UploadsToClean(ctx, time.Hour); err != nil {
					return err
				}
				if c.Backend() == Postgres {
					if _, err := c.db.ExecContext(ctx, `VACUUM ANALYZE uploads`); err != nil {
						return err
					}
				}
				b.StartTimer()
			}
			_, err := c.UploadsToClean(ctx, time.Hour)
			return err
		}},
		{"Jobs/kind", func() error { _, err := c.Jobs(ctx, JobFilter{Kind: "scrub", Limit: 16}); return err }},
		{"Jobs/newest", func() error { _, err := c.Jobs(ctx, JobFilter{}); return err }},
		{"ClaimJob/none-due", func() error {
			_, err := c.ClaimJob(ctx, "dozod-1", []string{"expire-uploads", "scrub", "rotate-key", "delete-dataset"}, "", t0, t0.Add(time.Minute))
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return fmt.Errorf("claimed a job: %v", err)
		}},
		{"StartDeletion", func() error {
			id := fmt.Sprintf("DEL%06d", deleted)
			deleted++
			b.StopTimer()
			if err := c.CreateDataset(ctx, Dataset{ID: id, Title: "t", K: 4, M: 2, PlainSegmentSize: 1 << 20,
				SegmentSize: 1<<20 + 256, TransitKey: "dozo-ds-" + id, CreatedBy: "sam", CreatedAt: t0}); err != nil {
				return err
			}
			b.StartTimer()
			_, err := c.StartDeletion(ctx, id, "sam", t0)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillLookupCatalog fills c as benchmarkLookups describes.
func fillLookupCatalog(ctx context.Context, c *Catalog) error {
	datasets := []string{"BIG"}
	for i := range 200 {
		datasets = append(datasets, fmt.Sprintf("DS%03d", i))
	}
	for _, id := range datasets {
		if err := c.CreateDataset(ctx, Dataset{ID: id, Title: "t", K: 4, M: 2, PlainSegmentSize: 1 << 20,
			SegmentSize: 1<<20 + 256, TransitKey: "dozo-ds-" + id, CreatedBy: "sam", CreatedAt: t0}); err != nil {
			return err
		}
	}
	var files, uploads, segments, grants, members, audits, jobs [][]any
	at := ts(t0)
	addFile := func(ds, id, name string) {
		state, ustate := FileAvailable, UploadComplete
		if len(files)%10 == 9 { // an abandoned upload
			state, ustate, name = FileAborted, UploadAborted, name+".part"
		}
		files = append(files, []any{id, ds, name, 1 << 30, 1<<30 + 1<<14, "blake3", state, []byte("hdr"), []byte("{}"), "sha", "md5", "sam", at, at})
		cleaned := at
		if ustate == UploadAborted { // its pieces deleted a day later: done for good
			cleaned = ts(t0.Add(24 * time.Hour))
		}
		uploads = append(uploads, []any{"u-" + id, id, 2, `[{"id":"s1-a","domain":"s1"}]`, ustate, "sam", at, at, at, cleaned})
		for i := range 2 {
			segments = append(segments, []any{id, i, `{"index":0}`, at})
		}
	}
	for i := range 50000 {
		addFile("BIG", fmt.Sprintf("f-big-%05d", i), fmt.Sprintf("b-%05d.vcf", i))
	}
	for d := range 200 {
		ds := fmt.Sprintf("DS%03d", d)
		for i := range 50 {
			addFile(ds, fmt.Sprintf("f-%03d-%02d", d, i), fmt.Sprintf("s-%04d-%04d.vcf", d, i))
		}
		for i := range 10 {
			grants = append(grants, []any{ds, fmt.Sprintf("user%02d", i), "2026-12-31", "sam", at})
		}
		members = append(members, []any{ds, "cora", "custodian", "sam", at}, []any{ds, "rita", "submitter", "sam", at})
	}
	for i := range 100000 {
		ds := datasets[i%len(datasets)]
		f := files[(i*7)%len(files)]
		audits = append(audits, []any{i + 1, at + int64(i), "user01", "file.fetch", "file/" + f[0].(string), ds, "ok", 200, "192.0.2.1:5555", "req", "", "prev", "hash"})
	}
	for i := range 30000 {
		kind, ds := "expire-uploads", ""
		if i%8 == 0 {
			kind, ds = "scrub", datasets[i%len(datasets)]
		}
		jobs = append(jobs, []any{fmt.Sprintf("job-%06d", i), kind, ds, "{}", JobDone, "dozod", at + int64(i), at + int64(i)})
	}
	for _, t := range []struct {
		table string
		cols  string
		rows  [][]any
	}{
		{"files", "id, dataset_id, name, size, stored_size, hash_alg, state, header_object, manifest, sha256, md5, created_by, created_at, available_at", files},
		{"uploads", "id, file_id, segments, targets, state, created_by, created_at, expires_at, ended_at, cleaned_at", uploads},
		{"segments", "file_id, idx, meta, committed_at", segments},
		{"grants", `dataset_id, "user", until, granted_by, granted_at`, grants},
		{"members", `dataset_id, "user", role, added_by, added_at`, members},
		{"audit", "seq, time, actor, action, object, dataset, result, status, source, request_id, detail, prev_hash, hash", audits},
		{"jobs", "id, kind, dataset_id, params, state, requested_by, created_at, ended_at", jobs},
	} {
		if err := insertRows(ctx, c, t.table, t.cols, t.rows); err != nil {
			return err
		}
	}
	if c.Backend() == Postgres {
		// What autovacuum would have done by the time a catalog is this
		// large: the planner's statistics.
		_, err := c.db.ExecContext(ctx, `ANALYZE`)
		return err
	}
	return nil
}

// insertRows inserts rows into table in one transaction, many rows a
// statement.
func insertRows(ctx context.Context, c *Catalog, table, cols string, rows [][]any) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	const per = 200
	for len(rows) > 0 {
		n := min(per, len(rows))
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(rows[0])), ", ") + ")"
		q := `INSERT INTO ` + table + `(` + cols + `) VALUES ` + strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
		var args []any
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("filling %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return tx.Commit()
}
