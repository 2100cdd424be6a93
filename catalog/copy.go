package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/dozo-vault/dozo/audit"
)

// copyOrder lists the tables in an order their foreign keys allow, each
// with the order its rows are read in where that matters: a superseded
// grant refers to the later grant that replaced it, so grants go newest
// first. Tables a later migration adds are copied after these, by name.
var copyOrder = []struct{ table, orderBy string }{
	{"users", ""}, {"datasets", ""}, {"members", ""}, {"files", ""}, {"uploads", ""}, {"segments", ""},
	{"grants", "id DESC"}, {"freezes", "id"}, {"audit", "seq"}, {"audit_anchors", "seq"}, {"key_rotations", "id"},
	{"deletions", ""}, {"deleted_objects", ""}, {"scrub_runs", ""}, {"scrub_files", ""},
}

// TableCount is the number of rows of one table.
type TableCount struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

// CopyReport says what Copy copied and what it checked on the copy.
type CopyReport struct {
	Tables       []TableCount `json:"tables"`
	AuditRecords uint64       `json:"audit_records"`
	AuditHead    string       `json:"audit_head"` // hash of the last record ("" without records)
}

// Copy copies every row of src into dst, which must be an empty catalog
// (freshly opened, so migrated) of the same schema version, on either
// backend: this is how a single-node site moves its SQLite catalog to
// PostgreSQL. src is read in one snapshot and dst written in one
// transaction, so dst gets all of it or nothing. Rows keep their keys
// (grant and freeze ids, audit seqs) and bytes, so the audit chain is the
// same chain: the copy commits only if its chain verifies and ends in the
// source's last hash and every table holds as many rows as were read;
// otherwise dst is left empty. Stop dozod before copying: changes made
// meanwhile are not copied.
func Copy(ctx context.Context, dst, src *Catalog) (*CopyReport, error) {
	sv, err := src.Version(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: copy: source version: %w", err)
	}
	dv, err := dst.Version(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: copy: destination version: %w", err)
	}
	if sv != dv {
		return nil, fmt.Errorf("catalog: copy: source schema version %d, destination %d", sv, dv)
	}
	stx, err := src.db.BeginTx(ctx, src.d.snapshot)
	if err != nil {
		return nil, fmt.Errorf("catalog: copy: %w", err)
	}
	defer stx.Rollback()
	tables, err := tableNames(ctx, stx, src.d)
	if err != nil {
		return nil, err
	}
	plan := copyPlan(tables)
	rep := &CopyReport{}
	var srcHead string
	if err := stx.QueryRowContext(ctx, `SELECT hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&srcHead); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("catalog: copy: source audit head: %w", err)
	}
	err = dst.lockedTx(ctx, lockAudit, func(dtx *sql.Tx) error {
		rep.Tables = rep.Tables[:0]
		have, err := tableNames(ctx, dtx, dst.d)
		if err != nil {
			return err
		}
		for _, p := range plan {
			if !slices.Contains(have, p.table) {
				return fmt.Errorf("catalog: copy: the destination has no table %s", p.table)
			}
			var n int64
			if err := dtx.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(p.table)).Scan(&n); err != nil {
				return fmt.Errorf("catalog: copy: %w", err)
			}
			if n > 0 {
				return fmt.Errorf("catalog: copy: the destination is not empty (%s has %d rows)", p.table, n)
			}
		}
		for _, p := range plan {
			n, err := copyTable(ctx, dtx, stx, p.table, p.orderBy)
			if err != nil {
				return err
			}
			rep.Tables = append(rep.Tables, TableCount{p.table, n})
		}
		if err := dst.moveIdentities(ctx, dtx); err != nil {
			return err
		}
		return checkCopy(ctx, dtx, stx, rep, srcHead)
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// checkCopy checks the copy (tx) before it commits: every table has the
// source's (src) row count, and the audit chain verifies and ends in the
// source's last hash.
func checkCopy(ctx context.Context, tx, src *sql.Tx, rep *CopyReport, srcHead string) error {
	for _, tc := range rep.Tables {
		var n, want int64
		q := `SELECT count(*) FROM ` + quoteIdent(tc.Table)
		if err := tx.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("catalog: copy: counting %s: %w", tc.Table, err)
		}
		if err := src.QueryRowContext(ctx, q).Scan(&want); err != nil {
			return fmt.Errorf("catalog: copy: counting the source's %s: %w", tc.Table, err)
		}
		if n != want || n != tc.Rows {
			return fmt.Errorf("catalog: copy: %s has %d rows, the source %d", tc.Table, n, want)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("catalog: copy: reading the audit chain: %w", err)
	}
	defer rows.Close()
	v := audit.NewVerifier()
	var head string
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("catalog: copy: reading the audit chain: %w", err)
		}
		v.Add(r)
		head = r.Hash
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: copy: reading the audit chain: %w", err)
	}
	res := v.Result()
	if !res.OK {
		return fmt.Errorf("catalog: copy: the copied audit chain does not verify: record %d %s", res.BadSeq, res.Kind)
	}
	if head != srcHead {
		return fmt.Errorf("catalog: copy: the copied audit chain ends in %q, the source's in %q", head, srcHead)
	}
	rep.AuditRecords, rep.AuditHead = uint64(res.Records), head
	return nil
}

// copyPlan orders tables for copying: copyOrder's first, then any other
// by name, never schema_migrations (each catalog has its own).
func copyPlan(tables []string) []struct{ table, orderBy string } {
	var plan []struct{ table, orderBy string }
	known := map[string]bool{"schema_migrations": true}
	for _, p := range copyOrder {
		known[p.table] = true
		if slices.Contains(tables, p.table) {
			plan = append(plan, p)
		}
	}
	for _, t := range tables {
		if !known[t] {
			plan = append(plan, struct{ table, orderBy string }{t, ""})
		}
	}
	return plan
}

func tableNames(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, d *dialect) ([]string, error) {
	rows, err := q.QueryContext(ctx, d.tables)
	if err != nil {
		return nil, fmt.Errorf("catalog: tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("catalog: tables: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// copyTable inserts every row of table from src into dst, column by
// column as named in src, and returns the number of rows.
func copyTable(ctx context.Context, dst, src *sql.Tx, table, orderBy string) (int64, error) {
	q := `SELECT * FROM ` + quoteIdent(table)
	if orderBy != "" {
		q += ` ORDER BY ` + orderBy
	}
	rows, err := src.QueryContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("catalog: copy: reading %s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, fmt.Errorf("catalog: copy: %s: %w", table, err)
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = quoteIdent(c)
	}
	ins, err := dst.PrepareContext(ctx, `INSERT INTO `+quoteIdent(table)+` (`+strings.Join(quoted, ", ")+`) VALUES (`+
		strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")+`)`)
	if err != nil {
		return 0, fmt.Errorf("catalog: copy: %s: %w", table, err)
	}
	defer ins.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, fmt.Errorf("catalog: copy: reading %s: %w", table, err)
		}
		if _, err := ins.ExecContext(ctx, vals...); err != nil {
			return n, fmt.Errorf("catalog: copy: writing %s: %w", table, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("catalog: copy: reading %s: %w", table, err)
	}
	return n, nil
}

// moveIdentities sets each identity column's sequence past the largest
// key copied, so the next row inserted gets a fresh key.
func (c *Catalog) moveIdentities(ctx context.Context, tx *sql.Tx) error {
	if c.d.identities == "" {
		return nil
	}
	rows, err := tx.QueryContext(ctx, c.d.identities)
	if err != nil {
		return fmt.Errorf("catalog: copy: identity columns: %w", err)
	}
	var ids [][2]string
	for rows.Next() {
		var t, col string
		if err := rows.Scan(&t, &col); err != nil {
			rows.Close()
			return fmt.Errorf("catalog: copy: identity columns: %w", err)
		}
		ids = append(ids, [2]string{t, col})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: copy: identity columns: %w", err)
	}
	for _, id := range ids {
		t, col := quoteIdent(id[0]), quoteIdent(id[1])
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max(`+col+`), 0) + 1, false) FROM `+t,
			t, id[1]); err != nil {
			return fmt.Errorf("catalog: copy: moving the sequence of %s.%s: %w", id[0], id[1], err)
		}
	}
	return nil
}

// quoteIdent quotes a table or column name read from the schema.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Backup writes a consistent copy of a SQLite catalog to path, a new file
// (mode 0600), while dozod keeps running (VACUUM INTO: one read
// transaction, the copy compacted). An existing file is never
// overwritten. A PostgreSQL catalog is backed up with pg_dump instead.
func (c *Catalog) Backup(ctx context.Context, path string) error {
	if c.d != sqliteDialect {
		return fmt.Errorf("catalog: backup: a %s catalog is backed up with its own tools (pg_dump), not by dozod", c.d.name)
	}
	if path == "" {
		return errors.New("catalog: backup: no file named")
	}
	// Create it first so it has our mode and cannot be a file someone
	// else placed (VACUUM INTO accepts an empty existing file).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("catalog: backup: %w", err)
	}
	f.Close()
	if _, err := c.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("catalog: backup: %w", err)
	}
	return nil
}
