package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DateLayout is the format of Grant.Until and of "today" arguments.
const DateLayout = "2006-01-02"

// Grant is one grant row. Rows are never deleted: a revocation sets
// RevokedAt/RevokedBy, an extension adds a row and sets SupersededBy on the
// old one.
type Grant struct {
	ID           int64
	DatasetID    string
	User         string
	Until        string // YYYY-MM-DD, inclusive, UTC
	GrantedBy    string
	GrantedAt    time.Time
	RevokedAt    *time.Time
	RevokedBy    string
	SupersededBy int64 // 0 if current
}

// ActiveOn reports whether the grant allows access on day today
// (YYYY-MM-DD): not revoked, not superseded, and Until >= today. The
// comparison is on the fixed-width date strings, which order as dates.
func (g *Grant) ActiveOn(today string) bool {
	return g.RevokedAt == nil && g.SupersededBy == 0 && g.Until >= today
}

const grantCols = `id, dataset_id, user, until, granted_by, granted_at, revoked_at, revoked_by, coalesce(superseded_by, 0)`

func scanGrant(s rowScanner) (*Grant, error) {
	var g Grant
	var granted int64
	var revoked sql.NullInt64
	if err := s.Scan(&g.ID, &g.DatasetID, &g.User, &g.Until, &g.GrantedBy, &granted, &revoked, &g.RevokedBy, &g.SupersededBy); err != nil {
		return nil, err
	}
	g.GrantedAt = fromTS(granted)
	g.RevokedAt = fromNullTS(revoked)
	return &g, nil
}

// PutGrant records a grant of the dataset to g.User until g.Until. A
// current grant of the same user is superseded (kept, marked), so an
// extension leaves the earlier period in the history. The caller checks
// who may grant and the date bounds.
func (c *Catalog) PutGrant(ctx context.Context, g Grant) (*Grant, error) {
	if _, err := time.Parse(DateLayout, g.Until); err != nil {
		return nil, fmt.Errorf("catalog: grant until %q: %w", g.Until, err)
	}
	var out *Grant
	err := c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO grants(dataset_id, user, until, granted_by, granted_at) VALUES (?, ?, ?, ?, ?)`,
			g.DatasetID, g.User, g.Until, g.GrantedBy, ts(g.GrantedAt))
		if err != nil {
			return fmt.Errorf("catalog: put grant: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET superseded_by = ?
			WHERE dataset_id = ? AND user = ? AND id != ? AND revoked_at IS NULL AND superseded_by IS NULL`,
			id, g.DatasetID, g.User, id); err != nil {
			return fmt.Errorf("catalog: supersede grant: %w", err)
		}
		out, err = scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
		return err
	})
	return out, err
}

// RevokeGrant revokes the user's current grant (expired or not) and returns
// it; ErrNotFound if there is none.
func (c *Catalog) RevokeGrant(ctx context.Context, datasetID, user, by string, now time.Time) (*Grant, error) {
	var out *Grant
	err := c.tx(ctx, func(tx *sql.Tx) error {
		g, err := scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants
			WHERE dataset_id = ? AND user = ? AND revoked_at IS NULL AND superseded_by IS NULL
			ORDER BY id DESC LIMIT 1`, datasetID, user))
		if err != nil {
			return notFound(err, "grant of "+datasetID+" to "+user)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET revoked_at = ?, revoked_by = ? WHERE id = ?`, ts(now), by, g.ID); err != nil {
			return fmt.Errorf("catalog: revoke grant: %w", err)
		}
		t := now.UTC()
		g.RevokedAt, g.RevokedBy = &t, by
		out = g
		return nil
	})
	return out, err
}

// ActiveGrant returns the user's grant on the dataset that is active on
// today, or ErrNotFound.
func (c *Catalog) ActiveGrant(ctx context.Context, datasetID, user, today string) (*Grant, error) {
	g, err := scanGrant(c.db.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE dataset_id = ? AND user = ? AND revoked_at IS NULL AND superseded_by IS NULL AND until >= ?
		ORDER BY id DESC LIMIT 1`, datasetID, user, today))
	if err != nil {
		return nil, notFound(err, "active grant of "+datasetID+" to "+user)
	}
	return g, nil
}

// Grants returns the dataset's grant history, oldest first.
func (c *Catalog) Grants(ctx context.Context, datasetID string) ([]Grant, error) {
	return queryAll(ctx, c, "grants", scanGrant, `SELECT `+grantCols+` FROM grants WHERE dataset_id = ? ORDER BY id`, datasetID)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
