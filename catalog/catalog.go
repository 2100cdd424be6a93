// Package catalog is dozod's record of datasets, files, upload sessions,
// registered recipients, grants and the audit log, kept in an embedded
// SQLite database (modernc.org/sqlite, pure Go) or in PostgreSQL (pgx),
// behind the same API and from the same migrations (dialect.go).
//
// The catalog is the only place a file becomes available, and it does so in
// one transaction that first checks every segment of the file was committed:
// a partial file is never listed. Grants are never deleted: revoking or
// superseding a grant stamps the row, so the history stays reviewable
// (NBDC: a register of users with history).
//
// All SQL lives in this package; callers use the typed API.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Errors callers branch on (test with errors.Is).
var (
	ErrNotFound = errors.New("catalog: not found")
	ErrExists   = errors.New("catalog: already exists")
	// ErrNameTaken: an available or uploading file already has this name
	// in the dataset.
	ErrNameTaken = errors.New("catalog: file name in use")
	// ErrState: the object is not in a state that allows the change (an
	// upload that is no longer open, a file with missing segments).
	ErrState = errors.New("catalog: invalid state")
)

// Catalog is an open catalog database. It is safe for concurrent use.
type Catalog struct {
	db *sql.DB
	d  *dialect

	// auditMu guards auditQ, the records waiting for the audit committer;
	// nil while none is running (AppendAudit).
	auditMu sync.Mutex
	auditQ  *auditQueue

	// queries counts the statements sent to the database (Queries).
	queries *atomic.Int64

	// cleanFinalSwept: UploadsToClean has marked the sessions cleaned for
	// good before MarkCleaned marked them itself.
	cleanFinalSwept atomic.Bool
}

// Queries is how many SQL statements this catalog has sent to its
// database since it was opened, on either backend (tests and benchmarks
// count what a request costs with it).
func (c *Catalog) Queries() int64 { return c.queries.Load() }

// Open opens the catalog at location (see ParseLocation: a SQLite file,
// created with mode 0600 if missing, or a PostgreSQL URL) and applies
// pending migrations.
//
// SQLite: foreign keys are enforced, the journal is WAL, writers wait up
// to busy_timeout for each other, and transactions take the write lock
// when they begin (no lock-upgrade deadlocks). PostgreSQL: transactions
// are SERIALIZABLE and run again when a concurrent one wins.
func Open(ctx context.Context, location string) (*Catalog, error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	var c *Catalog
	queries := new(atomic.Int64)
	switch loc.Backend {
	case Postgres:
		db, err := openPostgres(loc.URL, queries)
		if err != nil {
			return nil, err
		}
		c = &Catalog{db: db, d: postgresDialect, queries: queries}
	default:
		db, err := openSQLite(loc.Path, queries)
		if err != nil {
			return nil, err
		}
		c = &Catalog{db: db, d: sqliteDialect, queries: queries}
	}
	if err := c.migrate(ctx); err != nil {
		c.db.Close()
		return nil, err
	}
	return c, nil
}

func openSQLite(path string, queries *atomic.Int64) (*sql.DB, error) {
	if path != ":memory:" {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		f.Close()
	}
	// Each connection keeps its prepared statements (stmtcache.go).
	conn, err := newSQLiteConnector(sqliteDSN(path), queries)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	db := sql.OpenDB(conn)
	if path == ":memory:" {
		// Every connection to ":memory:" is a new empty database.
		db.SetMaxOpenConns(1)
	}
	// Keep the connections concurrent requests opened: a new SQLite
	// connection opens the file, runs the pragmas and parses the schema,
	// which cost more than the request itself under load.
	db.SetMaxIdleConns(sqliteIdleConns)
	return db, nil
}

// sqliteDSN names the SQLite file at path with the settings Open
// documents.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// sqliteIdleConns is how many idle SQLite connections are kept: as many
// as requests that commonly run at once (64 clients), so that a burst does
// not close connections it opened only to open them again (measured: a
// tenth of dozod's CPU at 64 clients with 16 kept).
const sqliteIdleConns = 64

// Backend names the catalog's backend: SQLite or Postgres.
func (c *Catalog) Backend() string { return c.d.name }

// Ping reads the database (on either backend), to tell whether the
// catalog can answer.
func (c *Catalog) Ping(ctx context.Context) error {
	var n int
	if err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM datasets WHERE 1 = 0`).Scan(&n); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	return nil
}

// Close closes the database.
func (c *Catalog) Close() error { return c.db.Close() }

// maxTxAttempts bounds how often a transaction that lost to a concurrent
// one is run again (PostgreSQL only; SQLite writers wait for each other).
const maxTxAttempts = 10

// tx runs fn in a transaction, committing when fn returns nil. fn may run
// more than once (PostgreSQL, when a concurrent transaction won): it must
// only touch the database and variables it sets afresh on each run.
func (c *Catalog) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return c.retry(ctx, func() error { return c.tx1(ctx, c.d.txOptions, 0, fn) })
}

// lockedTx is tx for changes that must never run concurrently with
// another holding the same key (appending to the audit chain, migrating):
// on PostgreSQL it first takes an advisory lock held until the end of the
// transaction, and every statement after it sees what committed before.
func (c *Catalog) lockedTx(ctx context.Context, key int64, fn func(*sql.Tx) error) error {
	return c.retry(ctx, func() error { return c.tx1(ctx, c.d.lockOptions, key, fn) })
}

func (c *Catalog) retry(ctx context.Context, run func() error) error {
	for attempt := 1; ; attempt++ {
		err := run()
		if err == nil || attempt == maxTxAttempts || !c.d.retry(err) {
			return err
		}
		// Back off a little, with jitter, so the contenders spread out.
		wait := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (c *Catalog) tx1(ctx context.Context, opts *sql.TxOptions, lockKey int64, fn func(*sql.Tx) error) error {
	tx, err := c.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("catalog: begin: %w", err)
	}
	if lockKey != 0 {
		if err := c.d.lockTx(ctx, tx, lockKey); err != nil {
			tx.Rollback()
			return fmt.Errorf("catalog: lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: commit: %w", err)
	}
	return nil
}

// Times are stored as Unix nanoseconds (UTC), so SQL can compare them.
func ts(t time.Time) int64 { return t.UTC().UnixNano() }

func fromTS(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromNullTS(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromTS(n.Int64)
	return &t
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("catalog: %s: %w", what, err)
}

// rowScanner is what *sql.Row and *sql.Rows share.
type rowScanner interface{ Scan(...any) error }

// queryAll runs query and scans every row with scan; what names the
// result in errors.
func queryAll[T any](ctx context.Context, c *Catalog, what string, scan func(rowScanner) (*T, error), query string, args ...any) ([]T, error) {
	rows, err := c.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: %s: %w", what, err)
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}
