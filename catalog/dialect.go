package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The catalog's SQL is written once, in the subset SQLite and PostgreSQL
// share: ? placeholders (numbered $1, $2, ... on the way to PostgreSQL),
// ON CONFLICT, RETURNING, CASE instead of two-argument max, "user" quoted.
// What cannot be shared is in the dialect below: the types of the
// migrations' DDL, advisory locks, the isolation of transactions, error
// codes and the list of tables.

// Backends.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Location is a parsed catalog setting: a SQLite file or a PostgreSQL URL.
type Location struct {
	Backend string // SQLite or Postgres
	Path    string // SQLite: the file (or ":memory:")
	URL     string // PostgreSQL: the connection URL as given
}

// ParseLocation reads dozod's catalog setting: "sqlite:///abs/path" or
// "sqlite://rel/path" (a SQLite file), a bare path (the same, as configs
// before PostgreSQL said it), or "postgres://..." / "postgresql://..."
// (a PostgreSQL database; libpq's PG* environment variables and
// ~/.pgpass fill what the URL leaves out).
func ParseLocation(s string) (Location, error) {
	switch {
	case s == "":
		return Location{}, errors.New("catalog: empty location")
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := pgx.ParseConfig(s); err != nil {
			return Location{}, badURL(s, err)
		}
		return Location{Backend: Postgres, URL: s}, nil
	case strings.HasPrefix(s, "sqlite://"):
		s = strings.TrimPrefix(s, "sqlite://")
		if s == "" {
			return Location{}, errors.New("catalog: sqlite:// names no file")
		}
	case strings.Contains(s, "://"):
		return Location{}, fmt.Errorf("catalog: %q: want sqlite:///path, postgres://... or a file path", Redact(s))
	}
	// The path becomes part of a file: URI with query parameters, so it
	// must not carry its own.
	if strings.ContainsAny(s, "?#") {
		return Location{}, fmt.Errorf("catalog: sqlite path %q: ? and # are not allowed", s)
	}
	return Location{Backend: SQLite, Path: s}, nil
}

// badURL reports an unparsable PostgreSQL URL without repeating it (or
// pgx's message, which quotes it): it may carry a password.
func badURL(s string, err error) error {
	msg := "not a valid connection URL"
	if inner := errors.Unwrap(err); inner != nil && !strings.Contains(inner.Error(), s) {
		msg += " (" + inner.Error() + ")"
	}
	return fmt.Errorf("catalog: postgres URL %s: %s", Redact(s), msg)
}

// HasPassword reports whether the catalog setting carries a password,
// which must then not come from a configuration file.
func HasPassword(s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return false
	}
	if _, ok := u.User.Password(); ok {
		return true
	}
	return u.Query().Has("password")
}

// Redact returns a location fit for messages and logs: any password is
// replaced by "xxxxx".
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		if strings.Contains(s, "://") {
			return "(unparsable URL)"
		}
		return s
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// dialect is what differs between the backends.
type dialect struct {
	name string
	// schema rewrites a migration, written for SQLite, for this backend.
	schema func(string) string
	// txOptions begin c.tx's transactions.
	txOptions *sql.TxOptions
	// lockTx makes transactions that name the same key run one after the
	// other; the lock is held until the transaction ends.
	lockTx func(ctx context.Context, tx *sql.Tx, key int64) error
	// lockOptions begin lockedTx's transactions.
	lockOptions *sql.TxOptions
	// retry reports whether a transaction failed only because a
	// concurrent one won, so running it again may succeed.
	retry func(error) bool
	// snapshot begins a read-only transaction that sees one moment.
	snapshot *sql.TxOptions
	// tables lists the catalog's tables.
	tables string
	// identities lists the identity columns as (table, column) rows,
	// whose sequences must move past copied rows; "" if the backend moves
	// them itself (SQLite's AUTOINCREMENT does).
	identities string
}

var sqliteDialect = &dialect{
	name:   SQLite,
	schema: func(s string) string { return s },
	// Every SQLite transaction takes the one write lock when it begins
	// (_txlock=immediate): writers are serialised, so there is nothing
	// more to lock and nothing to retry.
	lockTx:   func(context.Context, *sql.Tx, int64) error { return nil },
	retry:    func(error) bool { return false },
	snapshot: &sql.TxOptions{ReadOnly: true}, // BEGIN DEFERRED: a WAL snapshot from the first read
	tables:   `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
}

var (
	pgIdentity = regexp.MustCompile(`\bINTEGER PRIMARY KEY AUTOINCREMENT\b`)
	pgInteger  = regexp.MustCompile(`\bINTEGER\b`)
	pgBlob     = regexp.MustCompile(`\bBLOB\b`)
)

var postgresDialect = &dialect{
	name: Postgres,
	// SQLite's INTEGER is 64 bits (times are Unix nanoseconds), its
	// AUTOINCREMENT key an identity column, its BLOB a BYTEA.
	schema: func(s string) string {
		return mapCode(s, func(code string) string {
			code = pgIdentity.ReplaceAllString(code, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
			code = pgInteger.ReplaceAllString(code, "BIGINT")
			return pgBlob.ReplaceAllString(code, "BYTEA")
		})
	},
	// The catalog's transactions read, check and then write, as they
	// could on SQLite, where writers run one at a time. SERIALIZABLE keeps
	// that true with concurrent writers (another dozod on the same
	// database included): a transaction that would see a result no serial
	// order gives fails with a serialization error and is run again.
	txOptions: &sql.TxOptions{Isolation: sql.LevelSerializable},
	lockTx: func(ctx context.Context, tx *sql.Tx, key int64) error {
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, key)
		return err
	},
	// READ COMMITTED: each statement after the lock sees everything
	// committed before the lock was granted (a SERIALIZABLE snapshot would
	// be taken by the locking statement, before the wait).
	lockOptions: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	retry: func(err error) bool {
		var pe *pgconn.PgError
		// serialization_failure, deadlock_detected
		return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
	},
	snapshot: &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	tables: `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
	identities: `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name`,
}

// Advisory lock keys (PostgreSQL), one per kind of serialised change.
const (
	lockMigrate int64 = 0x646f7a6f_00000001 // "dozo" 1: schema migrations
	lockAudit   int64 = 0x646f7a6f_00000002 // "dozo" 2: the audit chain head
)

// pgMaxConns bounds one dozod's connections, so several dozods stay
// within the server's max_connections (100 by default).
const pgMaxConns = 20

// openPostgres opens a pool of connections that take the catalog's SQL
// as written (? placeholders).
func openPostgres(rawURL string, queries *atomic.Int64) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, badURL(rawURL, err)
	}
	// pgx prepares each statement once per connection and keeps it (its
	// default query mode, QueryExecModeCacheStatement), so the catalog's
	// statements are parsed once per connection, not once per request.
	db := sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg), queries})
	db.SetMaxOpenConns(pgMaxConns)
	// Idle connections are kept up to the bound: a new one is a new
	// server process and an authentication, costlier than most requests.
	db.SetMaxIdleConns(pgMaxConns)
	return db, nil
}

// pgConnector hands out pgConns.
type pgConnector struct {
	driver.Connector
	queries *atomic.Int64
}

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("catalog: unexpected pgx connection type %T", conn)
	}
	return pgConn{sc, c.queries}, nil
}

// pgConn is a pgx connection that numbers ? placeholders: every way a
// query enters it is rebound, the rest is pgx's.
type pgConn struct {
	*stdlib.Conn
	queries *atomic.Int64
}

func (c pgConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }

func (c pgConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(q))
}

func (c pgConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.queries.Add(1)
	return c.Conn.ExecContext(ctx, rebind(q), args)
}

func (c pgConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.queries.Add(1)
	return c.Conn.QueryContext(ctx, rebind(q), args)
}

// rebind numbers the ? placeholders of q ($1, $2, ...).
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	n := 0
	return mapCode(q, func(code string) string {
		var b strings.Builder
		for _, part := range strings.SplitAfter(code, "?") {
			if p, ok := strings.CutSuffix(part, "?"); ok {
				n++
				part = p + "$" + strconv.Itoa(n)
			}
			b.WriteString(part)
		}
		return b.String()
	})
}

// mapCode applies f to the parts of q that are SQL code, in order, and
// leaves string literals, quoted identifiers and -- comments as they are.
func mapCode(q string, f func(string) string) string {
	var b strings.Builder
	start := 0 // of the code not yet mapped
	for i := 0; i < len(q); i++ {
		var end int // of the literal or comment at i
		switch {
		case q[i] == '\'' || q[i] == '"':
			j := strings.IndexByte(q[i+1:], q[i])
			if j < 0 {
				end = len(q)
			} else {
				end = i + j + 2
			}
		case strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				end = len(q)
			} else {
				end = i + j
			}
		default:
			continue
		}
		b.WriteString(f(q[start:i]))
		b.WriteString(q[i:end])
		start, i = end, end-1
	}
	b.WriteString(f(q[start:]))
	return b.String()
}

// isConstraint reports an integrity constraint violation (unique,
// foreign key, check, not null).
func isConstraint(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "23")
	}
	return strings.Contains(err.Error(), "constraint failed")
}

// isCheck reports a CHECK constraint violation.
func isCheck(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23514"
	}
	return strings.Contains(err.Error(), "CHECK constraint")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
