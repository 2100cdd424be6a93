package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ConsoleSession is one web console login as the catalog keeps it. The
// catalog never sees the cookie id or the Vault token in the clear: the
// broker stores the id's SHA-256 and the token sealed under a key derived
// from the id.
type ConsoleSession struct {
	IDHash    []byte
	User      string
	Sealed    []byte
	CreatedAt time.Time
	SeenAt    time.Time
}

const consoleSessionCols = `id_hash, "user", sealed, created_at, seen_at`

func scanConsoleSession(s rowScanner) (*ConsoleSession, error) {
	var cs ConsoleSession
	var created, seen int64
	if err := s.Scan(&cs.IDHash, &cs.User, &cs.Sealed, &created, &seen); err != nil {
		return nil, err
	}
	cs.CreatedAt, cs.SeenAt = fromTS(created), fromTS(seen)
	return &cs, nil
}

// CreateConsoleSession stores a new session. Sessions seen before
// idleBefore or created before oldBefore are deleted first; if limit
// sessions remain, the least recently seen go until there is room, so
// the table stays bounded whatever browsers do.
func (c *Catalog) CreateConsoleSession(ctx context.Context, cs ConsoleSession, idleBefore, oldBefore time.Time, limit int) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE seen_at < ? OR created_at < ?`,
			ts(idleBefore), ts(oldBefore)); err != nil {
			return fmt.Errorf("catalog: console sessions: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_sessions`).Scan(&n); err != nil {
			return fmt.Errorf("catalog: console sessions: %w", err)
		}
		if limit > 0 && n >= limit {
			if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash IN
				(SELECT id_hash FROM console_sessions ORDER BY seen_at LIMIT ?)`, n-limit+1); err != nil {
				return fmt.Errorf("catalog: console sessions: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO console_sessions(`+consoleSessionCols+`) VALUES (?, ?, ?, ?, ?)`,
			cs.IDHash, cs.User, cs.Sealed, ts(cs.CreatedAt), ts(cs.SeenAt))
		if isConstraint(err) {
			return fmt.Errorf("console session: %w", ErrExists)
		}
		if err != nil {
			return fmt.Errorf("catalog: console session: %w", err)
		}
		return nil
	})
}

// ConsoleSession returns the session stored under idHash, or ErrNotFound.
func (c *Catalog) ConsoleSession(ctx context.Context, idHash []byte) (*ConsoleSession, error) {
	cs, err := scanConsoleSession(c.db.QueryRowContext(ctx, `SELECT `+consoleSessionCols+` FROM console_sessions WHERE id_hash = ?`, idHash))
	if err != nil {
		return nil, notFound(err, "console session")
	}
	return cs, nil
}

// TouchConsoleSession records activity on a session: seen_at only moves
// forward, so replicas racing with each other never make a session older.
func (c *Catalog) TouchConsoleSession(ctx context.Context, idHash []byte, seen time.Time) error {
	if _, err := c.db.ExecContext(ctx, `UPDATE console_sessions SET seen_at = ? WHERE id_hash = ? AND seen_at < ?`,
		ts(seen), idHash, ts(seen)); err != nil {
		return fmt.Errorf("catalog: console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession removes the session stored under idHash; removing
// one that is not there is not an error (a logout may race an expiry).
func (c *Catalog) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	if _, err := c.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("catalog: console session: %w", err)
	}
	return nil
}

// CountConsoleSessions returns how many sessions are stored, live or not.
func (c *Catalog) CountConsoleSessions(ctx context.Context) (int, error) {
	var n int
	if err := c.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_sessions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: console sessions: %w", err)
	}
	return n, nil
}
