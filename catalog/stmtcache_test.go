package catalog

import (
	"context"
	"strings"
	"testing"
)

// TestStatementCache: on one connection a statement runs again after it
// failed; on SQLite it runs from the cache (the same prepared statement),
// runs while its own rows are still open, and sees a schema change made
// under it.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	conn, err := c.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) error {
		_, err := conn.ExecContext(ctx, q, args...)
		return err
	}
	count := func() (n int) {
		t.Helper()
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE x > ?`, 0).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := exec(`CREATE TEMPORARY TABLE t (x INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	const ins = `INSERT INTO t(x) VALUES (?)`
	if err := exec(ins, 1); err != nil {
		t.Fatal(err)
	}
	if err := exec(ins, 1); err == nil || !isConstraint(err) {
		t.Fatalf("duplicate insert: %v", err)
	}
	if err := exec(ins, 2); err != nil {
		t.Fatalf("insert after a failed one: %v", err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows", n)
	}

	if c.Backend() != SQLite {
		return // pgx runs one query at a time on a connection
	}
	// The same text while its rows are open.
	rows, err := conn.QueryContext(ctx, `SELECT x FROM t WHERE x > ? ORDER BY x`, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for rows.Next() {
		var x, inner int
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx, `SELECT x FROM t WHERE x > ? ORDER BY x`, x).Scan(&inner); err != nil && x != 2 {
			t.Fatalf("inner query at %d: %v", x, err)
		}
		got = append(got, x)
	}
	if err := rows.Close(); err != nil || len(got) != 2 {
		t.Fatalf("outer rows %v, %v", got, err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows after the nested queries", n)
	}

	var cached *cachedStmt
	conn.Raw(func(dc any) error {
		cached = dc.(*stmtConn).stmts[`SELECT count(*) FROM t WHERE x > ?`]
		return nil
	})
	count()
	conn.Raw(func(dc any) error {
		if cached == nil || dc.(*stmtConn).stmts[`SELECT count(*) FROM t WHERE x > ?`] != cached {
			t.Errorf("the statement was not kept")
		}
		return nil
	})
	const all = `SELECT * FROM t ORDER BY x`
	cols := func() int {
		rows, err := conn.QueryContext(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cs, _ := rows.Columns()
		return len(cs)
	}
	long := `SELECT count(*) FROM t WHERE x > ?` + strings.Repeat(" ", maxCachedStmtLen)
	if err := conn.QueryRowContext(ctx, long, 0).Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	conn.Raw(func(dc any) error {
		if dc.(*stmtConn).stmts[long] != nil {
			t.Errorf("a statement longer than %d bytes was kept", maxCachedStmtLen)
		}
		return nil
	})
	if n := cols(); n != 1 {
		t.Fatalf("%d columns", n)
	}
	if err := exec(`ALTER TABLE t ADD COLUMN y INTEGER DEFAULT 7`); err != nil {
		t.Fatal(err)
	}
	if n := cols(); n != 2 {
		t.Errorf("after ALTER TABLE the cached statement gives %d columns", n)
	}
}
