package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PendingSignIn is a console single sign-on between the button and the
// provider's callback. As with ConsoleSession the catalog sees neither
// the cookie id nor what the row holds: the broker stores the id's
// SHA-256 and the rest sealed under a key derived from the id.
type PendingSignIn struct {
	IDHash    []byte
	Sealed    []byte
	CreatedAt time.Time
}

// CreatePendingSignIn stores a new pending sign-in. Those created before
// staleBefore are deleted first; if limit remain, the oldest go until
// there is room, so the table stays bounded whatever browsers do.
func (c *Catalog) CreatePendingSignIn(ctx context.Context, p PendingSignIn, staleBefore time.Time, limit int) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_signins WHERE created_at < ?`, ts(staleBefore)); err != nil {
			return fmt.Errorf("catalog: pending sign-ins: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_signins`).Scan(&n); err != nil {
			return fmt.Errorf("catalog: pending sign-ins: %w", err)
		}
		if limit > 0 && n >= limit {
			if _, err := tx.ExecContext(ctx, `DELETE FROM console_signins WHERE id_hash IN
				(SELECT id_hash FROM console_signins ORDER BY created_at LIMIT ?)`, n-limit+1); err != nil {
				return fmt.Errorf("catalog: pending sign-ins: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO console_signins(id_hash, sealed, created_at) VALUES (?, ?, ?)`,
			p.IDHash, p.Sealed, ts(p.CreatedAt))
		if isConstraint(err) {
			return fmt.Errorf("pending sign-in: %w", ErrExists)
		}
		if err != nil {
			return fmt.Errorf("catalog: pending sign-in: %w", err)
		}
		return nil
	})
}

// PendingSignIn returns the pending sign-in stored under idHash, or
// ErrNotFound. Reading it does not use it up (TakePendingSignIn does).
func (c *Catalog) PendingSignIn(ctx context.Context, idHash []byte) (*PendingSignIn, error) {
	var p PendingSignIn
	var created int64
	err := c.db.QueryRowContext(ctx, `SELECT id_hash, sealed, created_at FROM console_signins WHERE id_hash = ?`, idHash).
		Scan(&p.IDHash, &p.Sealed, &created)
	if err != nil {
		return nil, notFound(err, "pending sign-in")
	}
	p.CreatedAt = fromTS(created)
	return &p, nil
}

// TakePendingSignIn removes the pending sign-in stored under idHash and
// reports whether this call removed it: of any number of callers, on any
// number of dozods, at most one gets true for a row.
func (c *Catalog) TakePendingSignIn(ctx context.Context, idHash []byte) (bool, error) {
	res, err := c.db.ExecContext(ctx, `DELETE FROM console_signins WHERE id_hash = ?`, idHash)
	if err != nil {
		return false, fmt.Errorf("catalog: pending sign-in: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("catalog: pending sign-in: %w", err)
	}
	return n == 1, nil
}

// CountPendingSignIns returns how many pending sign-ins are stored,
// expired or not.
func (c *Catalog) CountPendingSignIns(ctx context.Context) (int, error) {
	var n int
	if err := c.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_signins`).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: pending sign-ins: %w", err)
	}
	return n, nil
}
