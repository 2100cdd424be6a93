// Package catalog is dozod's record of datasets, files, upload sessions,
// registered recipients and grants, kept in an embedded SQLite database
// (modernc.org/sqlite, pure Go).
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
	"net/url"
	"os"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
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
}

// Open opens (creating if needed, mode 0600) the catalog at path and
// applies pending migrations. Foreign keys are enforced, the journal is
// WAL, writers wait up to busy_timeout for each other, and transactions
// take the write lock when they begin (no lock-upgrade deadlocks).
func Open(ctx context.Context, path string) (*Catalog, error) {
	if path == "" {
		return nil, errors.New("catalog: empty path")
	}
	if path != ":memory:" {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		f.Close()
	}
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if path == ":memory:" {
		// Every connection to ":memory:" is a new empty database.
		db.SetMaxOpenConns(1)
	}
	c := &Catalog{db: db}
	if err := c.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the database.
func (c *Catalog) Close() error { return c.db.Close() }

// tx runs fn in a transaction, committing when fn returns nil.
func (c *Catalog) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: begin: %w", err)
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
