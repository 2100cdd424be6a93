package catalog

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync/atomic"

	"modernc.org/sqlite"
)

// Prepared statements. The catalog's queries are constant strings run
// again and again (every request reads the caller's freezes, the dataset
// and its roles). On SQLite, parsing and planning a statement
// (sqlite3_prepare) costs more than running it, and modernc's driver
// prepares a one-shot query afresh on every call; so each SQLite
// connection keeps the statements it has run, keyed by their text, and
// runs them again from there. On PostgreSQL pgx does the same itself: its
// default query mode prepares each statement once per connection and
// keeps it in a per-connection cache (pgx.ConnConfig's
// DefaultQueryExecMode, QueryExecModeCacheStatement, 512 statements).
//
// A cached statement is used by one query at a time: while the rows of a
// query are open (a transaction may run another query meanwhile), the same
// text runs as a one-shot statement. A statement that failed is dropped,
// so a broken one is never reused. SQLite prepares a statement again by
// itself when the schema changed under it (sqlite3_prepare_v2).

// maxCachedStmts bounds one connection's statements; texts past it run
// one-shot. The catalog has fewer distinct statements than this.
const maxCachedStmts = 512

// maxCachedStmtLen: longer texts run one-shot. They are the multi-row
// statements (an audit batch of many records, a copy), one text per row
// count, whose parse is small beside their work; kept, they would fill
// the cache.
const maxCachedStmtLen = 4096

// sqliteConnector opens SQLite connections that keep their statements
// and count what they run.
type sqliteConnector struct {
	driver.Connector
	queries *atomic.Int64
}

func newSQLiteConnector(dsn string, queries *atomic.Int64) (driver.Connector, error) {
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sqliteConnector{base, queries}, nil
}

func (c sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteDriverConn)
	if !ok {
		conn.Close()
		return nil, errors.New("catalog: the sqlite driver's connection lacks the expected methods")
	}
	return &stmtConn{inner: inner, queries: c.queries, stmts: map[string]*cachedStmt{}}, nil
}

// sqliteDriverConn is what modernc's connection implements and stmtConn
// passes on.
type sqliteDriverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.SessionResetter
	driver.Validator
	driver.Pinger
}

// stmtConn is a SQLite connection with its statement cache. database/sql
// never uses one connection from two goroutines at once (a query and its
// rows' Close included), so the cache needs no lock.
type stmtConn struct {
	inner   sqliteDriverConn
	queries *atomic.Int64
	stmts   map[string]*cachedStmt
}

type cachedStmt struct {
	st   driver.Stmt
	busy bool // its rows are open
}

// stmt returns the cached statement for q, preparing it on first use, or
// nil when q must run one-shot (the statement is busy or the cache full).
func (c *stmtConn) stmt(ctx context.Context, q string) (*cachedStmt, error) {
	if s, ok := c.stmts[q]; ok {
		if s.busy {
			return nil, nil
		}
		return s, nil
	}
	if len(c.stmts) >= maxCachedStmts || len(q) > maxCachedStmtLen {
		return nil, nil
	}
	st, err := c.inner.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s := &cachedStmt{st: st}
	c.stmts[q] = s
	return s, nil
}

// drop forgets q's statement after a failure.
func (c *stmtConn) drop(q string, s *cachedStmt) {
	if c.stmts[q] == s {
		delete(c.stmts, q)
	}
	s.st.Close()
}

func (c *stmtConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.queries.Add(1)
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.inner.QueryContext(ctx, q, args)
	}
	rows, err := s.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.drop(q, s)
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, s: s}, nil
}

func (c *stmtConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.queries.Add(1)
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.inner.ExecContext(ctx, q, args)
	}
	r, err := s.st.(driver.StmtExecContext).ExecContext(ctx, args)
	if err != nil {
		c.drop(q, s)
		return nil, err
	}
	return r, nil
}

func (c *stmtConn) Close() error {
	for q, s := range c.stmts {
		s.st.Close()
		delete(c.stmts, q)
	}
	return c.inner.Close()
}

func (c *stmtConn) Prepare(q string) (driver.Stmt, error) { return c.inner.Prepare(q) }
func (c *stmtConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, q)
}
func (c *stmtConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *stmtConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}
func (c *stmtConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }
func (c *stmtConn) IsValid() bool                          { return c.inner.IsValid() }
func (c *stmtConn) Ping(ctx context.Context) error         { return c.inner.Ping(ctx) }

// Unwrap is the driver's own connection (the driver's Limit looks for it).
func (c *stmtConn) Unwrap() driver.Conn { return c.inner }

// cachedRows frees its statement for the next query when closed (the
// driver resets it then, keeping it prepared).
type cachedRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}
