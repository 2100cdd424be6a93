package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DateLayout is the format of Grant.From/Until and of "today" arguments.
const DateLayout = "2006-01-02"

// Grant is one row of the NBDC user register. Rows are never deleted: a
// revocation sets RevokedAt/RevokedBy/RevokeReason, an extension adds a row
// and sets SupersededBy on the old one, so every change stays reviewable.
type Grant struct {
	ID            int64
	DatasetID     string
	User          string
	From          string // YYYY-MM-DD, first day of access (UTC); "" = from the grant's start
	Until         string // YYYY-MM-DD, last day of access (inclusive), UTC: the period lasts Until-From+1 days
	ApplicationID string // NBDC data-use application (J-DU...)
	Institution   string
	Reason        string
	GrantedBy     string
	GrantedAt     time.Time
	RevokedAt     *time.Time
	RevokedBy     string
	RevokeReason  string
	SupersededBy  int64 // 0 if current
}

// Grant states, as State reports them.
const (
	GrantActive     = "active"
	GrantFuture     = "future"
	GrantExpired    = "expired"
	GrantRevoked    = "revoked"
	GrantSuperseded = "superseded"
)

// ActiveOn reports whether the grant allows access on day today
// (YYYY-MM-DD): not revoked, not superseded, and From <= today <= Until.
// The comparison is on the fixed-width date strings, which order as dates
// (and "" orders before every date).
func (g *Grant) ActiveOn(today string) bool { return g.State(today) == GrantActive }

// State is the grant's state on day today. Revoked and superseded win over
// the dates: such a row never grants anything again.
func (g *Grant) State(today string) string {
	switch {
	case g.RevokedAt != nil:
		return GrantRevoked
	case g.SupersededBy != 0:
		return GrantSuperseded
	case g.From > today:
		return GrantFuture
	case g.Until < today:
		return GrantExpired
	}
	return GrantActive
}

const grantCols = `id, dataset_id, "user", valid_from, until, application_id, institution, reason,
	granted_by, granted_at, revoked_at, revoked_by, revoke_reason, coalesce(superseded_by, 0)`

func scanGrant(s rowScanner) (*Grant, error) {
	var g Grant
	var granted int64
	var revoked sql.NullInt64
	if err := s.Scan(&g.ID, &g.DatasetID, &g.User, &g.From, &g.Until, &g.ApplicationID, &g.Institution, &g.Reason,
		&g.GrantedBy, &granted, &revoked, &g.RevokedBy, &g.RevokeReason, &g.SupersededBy); err != nil {
		return nil, err
	}
	g.GrantedAt = fromTS(granted)
	g.RevokedAt = fromNullTS(revoked)
	return &g, nil
}

// PutGrant records a grant of the dataset to g.User for g.From..g.Until.
// The user's current row is superseded (kept, marked), so an extension or
// a new grant after a revocation leaves the earlier rows in the history. The caller checks
// who may grant and the date bounds.
func (c *Catalog) PutGrant(ctx context.Context, g Grant) (*Grant, error) {
	if _, err := time.Parse(DateLayout, g.Until); err != nil {
		return nil, fmt.Errorf("catalog: grant until %q: %w", g.Until, err)
	}
	if g.From != "" {
		if _, err := time.Parse(DateLayout, g.From); err != nil || g.From > g.Until {
			return nil, fmt.Errorf("catalog: grant from %q: not a date on or before until %s", g.From, g.Until)
		}
	}
	var out *Grant
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO grants(dataset_id, "user", valid_from, until, application_id, institution, reason, granted_by, granted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			g.DatasetID, g.User, g.From, g.Until, g.ApplicationID, g.Institution, g.Reason, g.GrantedBy, ts(g.GrantedAt)).Scan(&id)
		if err != nil {
			return fmt.Errorf("catalog: put grant: %w", err)
		}
		// The user's previous row, whatever its state (a revoked one keeps
		// its revocation), is replaced: one current row per user.
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET superseded_by = ?
			WHERE dataset_id = ? AND "user" = ? AND id != ? AND superseded_by IS NULL`,
			id, g.DatasetID, g.User, id); err != nil {
			return fmt.Errorf("catalog: supersede grant: %w", err)
		}
		out, err = scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
		return err
	})
	return out, err
}

// RevokeGrant revokes the user's current grant (active, future or
// expired) with a reason and returns it; ErrNotFound if there is none.
func (c *Catalog) RevokeGrant(ctx context.Context, datasetID, user, by, reason string, now time.Time) (*Grant, error) {
	var out *Grant
	err := c.tx(ctx, func(tx *sql.Tx) error {
		g, err := scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants
			WHERE dataset_id = ? AND "user" = ? AND revoked_at IS NULL AND superseded_by IS NULL
			ORDER BY id DESC LIMIT 1`, datasetID, user))
		if err != nil {
			return notFound(err, "grant of "+datasetID+" to "+user)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET revoked_at = ?, revoked_by = ?, revoke_reason = ? WHERE id = ?`,
			ts(now), by, reason, g.ID); err != nil {
			return fmt.Errorf("catalog: revoke grant: %w", err)
		}
		t := now.UTC()
		g.RevokedAt, g.RevokedBy, g.RevokeReason = &t, by, reason
		out = g
		return nil
	})
	return out, err
}

// ActiveGrant returns the user's grant on the dataset that is active on
// today, or ErrNotFound.
func (c *Catalog) ActiveGrant(ctx context.Context, datasetID, user, today string) (*Grant, error) {
	g, err := scanGrant(c.db.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE dataset_id = ? AND "user" = ? AND revoked_at IS NULL AND superseded_by IS NULL
			AND valid_from <= ? AND until >= ?
		ORDER BY id DESC LIMIT 1`, datasetID, user, today, today))
	if err != nil {
		return nil, notFound(err, "active grant of "+datasetID+" to "+user)
	}
	return g, nil
}

// LatestGrant returns the user's most recent grant row on the dataset in
// whatever state, or ErrNotFound if the user never held one. dozod uses it
// to tell a former grantee why access ends (expired, revoked, not yet
// started) instead of pretending the dataset does not exist.
func (c *Catalog) LatestGrant(ctx context.Context, datasetID, user string) (*Grant, error) {
	g, err := scanGrant(c.db.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE dataset_id = ? AND "user" = ? ORDER BY id DESC LIMIT 1`, datasetID, user))
	if err != nil {
		return nil, notFound(err, "grant of "+datasetID+" to "+user)
	}
	return g, nil
}

// Grants returns the dataset's grant rows, oldest first: every row with
// history, else the current one per user (not superseded: active, future,
// expired or revoked, the last word on that user).
func (c *Catalog) Grants(ctx context.Context, datasetID string, history bool) ([]Grant, error) {
	return queryAll(ctx, c, "grants", scanGrant, `SELECT `+grantCols+` FROM grants
		WHERE dataset_id = ? AND (? OR superseded_by IS NULL) ORDER BY id`, datasetID, history)
}

// VisibleGrants returns the grant rows viewer may review, oldest first:
// all of them when all is set (admins), else those of datasets viewer is
// custodian of and viewer's own. history as in Grants.
func (c *Catalog) VisibleGrants(ctx context.Context, viewer string, all, history bool) ([]Grant, error) {
	return queryAll(ctx, c, "grants", scanGrant, `SELECT `+grantCols+` FROM grants
		WHERE (? OR "user" = ? OR dataset_id IN (SELECT dataset_id FROM members WHERE "user" = ? AND role = 'custodian'))
			AND (? OR superseded_by IS NULL)
		ORDER BY dataset_id, id`, all, viewer, viewer, history)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
