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
	// Follows is the id of the user's grant this one was booked to follow
	// (a running grant that ends before this one starts and stays in
	// force until then), or 0. Derived, not stored: see PutGrant.
	Follows int64
	// EntityID is the Vault identity entity the grant is bound to, ""
	// while its user has not logged in (a grant made before the user's
	// first login: see Pending).
	EntityID string
	// LoginName is the name the bound entity last logged in with: User
	// unless the account was renamed or the person logs in under another
	// name too. Derived, not stored.
	LoginName string
}

// Pending reports whether the grant awaits its user's first login: it was
// made for a name dozod had not seen, and no entity is bound to it yet.
func (g *Grant) Pending() bool { return g.EntityID == "" }

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

// grantCols reads a row of the grants table (not aliased) and derives
// Follows: the newest earlier row of the same user and dataset still in
// the register (not superseded, not revoked) that ends before this row
// starts (the same user: by name, or by entity for a renamed account);
// and LoginName.
var grantCols = `id, dataset_id, "user", valid_from, until, application_id, institution, reason,
	granted_by, granted_at, revoked_at, revoked_by, revoke_reason, coalesce(superseded_by, 0),
	coalesce((SELECT p.id FROM grants p WHERE p.dataset_id = grants.dataset_id AND ` + sameUser("p") + `
		AND p.id < grants.id AND p.superseded_by IS NULL AND p.revoked_at IS NULL AND p.until < grants.valid_from
		ORDER BY p.id DESC LIMIT 1), 0), entity_id,
	coalesce((SELECT u.name FROM users u WHERE grants.entity_id <> '' AND u.entity_id = grants.entity_id
		ORDER BY coalesce(u.last_seen, 0) DESC, u.name LIMIT 1), "user")`

// sameUser is the condition that grants row alias a is of the same user
// as the (unaliased) grants row: both bound to one entity, or neither
// bound and of one name.
func sameUser(a string) string {
	return `((grants.entity_id <> '' AND ` + a + `.entity_id = grants.entity_id) OR (grants.entity_id = '' AND ` + a + `.entity_id = '' AND ` + a + `."user" = grants."user"))`
}

func scanGrant(s rowScanner) (*Grant, error) {
	var g Grant
	var granted int64
	var revoked sql.NullInt64
	if err := s.Scan(&g.ID, &g.DatasetID, &g.User, &g.From, &g.Until, &g.ApplicationID, &g.Institution, &g.Reason,
		&g.GrantedBy, &granted, &revoked, &g.RevokedBy, &g.RevokeReason, &g.SupersededBy, &g.Follows, &g.EntityID, &g.LoginName); err != nil {
		return nil, err
	}
	g.GrantedAt = fromTS(granted)
	g.RevokedAt = fromNullTS(revoked)
	return &g, nil
}

// PutGrant records a grant of the dataset to g.User for g.From..g.Until.
// The user's rows in the register are superseded (kept, marked), so an
// extension or a new grant after a revocation leaves the earlier rows in
// the history, with one exception: a grant booked to follow a running
// one. A row that is not revoked, has not ended (its Until is on or after
// the day of g.GrantedAt) and ends before g.From stays in force until its
// last day, and g starts after it with no action (the next fiscal year's
// grant booked ahead). The caller checks who may grant, the date bounds,
// and that g does not overlap a running grant it must not cut short.
func (c *Catalog) PutGrant(ctx context.Context, g Grant) (*Grant, error) {
	if _, err := time.Parse(DateLayout, g.Until); err != nil {
		return nil, fmt.Errorf("catalog: grant until %q: %w", g.Until, err)
	}
	if g.From != "" {
		if _, err := time.Parse(DateLayout, g.From); err != nil || g.From > g.Until {
			return nil, fmt.Errorf("catalog: grant from %q: not a date on or before until %s", g.From, g.Until)
		}
	}
	today := g.GrantedAt.UTC().Format(DateLayout)
	var out *Grant
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO grants(dataset_id, "user", valid_from, until, application_id, institution, reason, granted_by, granted_at, entity_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			g.DatasetID, g.User, g.From, g.Until, g.ApplicationID, g.Institution, g.Reason, g.GrantedBy, ts(g.GrantedAt), g.EntityID).Scan(&id)
		if err != nil {
			return fmt.Errorf("catalog: put grant: %w", err)
		}
		// The user's previous rows, whatever their state (a revoked one
		// keeps its revocation), are replaced, except a running or
		// scheduled row that ends before g starts.
		who, whoArgs := Principal{g.User, g.EntityID}.holds("grants", `"user"`)
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET superseded_by = ?
			WHERE dataset_id = ? AND `+who+` AND id != ? AND superseded_by IS NULL
				AND NOT (revoked_at IS NULL AND until >= ? AND until < ?)`,
			append(append([]any{id, g.DatasetID}, whoArgs...), id, today, g.From)...); err != nil {
			return fmt.Errorf("catalog: supersede grant: %w", err)
		}
		out, err = scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
		if err != nil {
			return err
		}
		return bumpGrantsGeneration(ctx, tx)
	})
	return out, err
}

// RevokeGrant revokes the user's grants in the register with a reason
// and returns the newest it revoked; ErrNotFound if there is none. Every
// row not yet ended (running or scheduled) is revoked, so a revocation
// also cancels a grant booked ahead; with none, the user's last ended row
// is (a revocation on record after expiry). The user's rows are those of
// the name and those of the entity (Principal.names): a revocation only
// reduces access, so it takes every row that may be theirs.
func (c *Catalog) RevokeGrant(ctx context.Context, datasetID string, user Principal, by, reason string, now time.Time) (*Grant, error) {
	today := now.UTC().Format(DateLayout)
	who, whoArgs := user.names("grants", `"user"`)
	var out *Grant
	err := c.tx(ctx, func(tx *sql.Tx) error {
		gs, err := queryTx(ctx, tx, `SELECT `+grantCols+` FROM grants
			WHERE dataset_id = ? AND `+who+` AND revoked_at IS NULL AND superseded_by IS NULL
			ORDER BY id DESC`, append([]any{datasetID}, whoArgs...)...)
		if err != nil {
			return err
		}
		var ids []int64
		for _, g := range gs {
			if g.Until >= today {
				ids = append(ids, g.ID)
			}
		}
		if len(ids) == 0 && len(gs) > 0 {
			ids = []int64{gs[0].ID}
		}
		if len(ids) == 0 {
			return notFound(sql.ErrNoRows, "grant of "+datasetID+" to "+user.Name)
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE grants SET revoked_at = ?, revoked_by = ?, revoke_reason = ? WHERE id = ?`,
				ts(now), by, reason, id); err != nil {
				return fmt.Errorf("catalog: revoke grant: %w", err)
			}
		}
		for i := range gs {
			if gs[i].ID == ids[0] {
				out = &gs[i]
			}
		}
		t := now.UTC()
		out.RevokedAt, out.RevokedBy, out.RevokeReason = &t, by, reason
		return bumpGrantsGeneration(ctx, tx)
	})
	return out, err
}

// queryTx reads grant rows inside a transaction.
func queryTx(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]Grant, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: grants: %w", err)
		}
		out = append(out, *g)
	}
	return out, rows.Err()
}

// ExpiringGrants returns user's running grants (all users' when user's
// name is "") whose last day is between today and last, both included, and that
// nothing follows: no grant is booked to start after them. Those are the
// grants whose holders lose access unless someone acts. Grants on deleted
// datasets are left out: such a dataset is hidden from its grantees.
func (c *Catalog) ExpiringGrants(ctx context.Context, user Principal, today, last string) ([]Grant, error) {
	who, args := "", []any{today, today, last}
	if user.Name != "" {
		cond, whoArgs := user.holds("grants", `"user"`)
		who, args = `AND `+cond, append(args, whoArgs...)
	}
	return queryAll(ctx, c, "expiring grants", scanGrant, `SELECT `+grantCols+` FROM grants
		WHERE valid_from <= ? AND until >= ? AND until <= ? `+who+`
			AND revoked_at IS NULL AND superseded_by IS NULL
			AND dataset_id IN (SELECT id FROM datasets WHERE deleted_at IS NULL)
			AND NOT EXISTS (SELECT 1 FROM grants n WHERE n.dataset_id = grants.dataset_id AND `+sameUser("n")+`
				AND n.id > grants.id AND n.superseded_by IS NULL AND n.revoked_at IS NULL AND n.valid_from > grants.until)
		ORDER BY until, dataset_id, "user"`, args...)
}

// ActiveGrant returns the user's grant on the dataset that is active on
// today, or ErrNotFound. The user's grants are those Principal.holds.
func (c *Catalog) ActiveGrant(ctx context.Context, datasetID string, user Principal, today string) (*Grant, error) {
	who, whoArgs := user.holds("grants", `"user"`)
	g, err := scanGrant(c.db.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE dataset_id = ? AND `+who+` AND revoked_at IS NULL AND superseded_by IS NULL
			AND valid_from <= ? AND until >= ?
		ORDER BY id DESC LIMIT 1`, append(append([]any{datasetID}, whoArgs...), today, today)...))
	if err != nil {
		return nil, notFound(err, "active grant of "+datasetID+" to "+user.Name)
	}
	return g, nil
}

// LatestGrant returns the user's most recent grant row on the dataset in
// whatever state, or ErrNotFound if the user never held one. dozod uses it
// to tell a former grantee why access ends (expired, revoked, not yet
// started) instead of pretending the dataset does not exist.
func (c *Catalog) LatestGrant(ctx context.Context, datasetID string, user Principal) (*Grant, error) {
	who, whoArgs := user.holds("grants", `"user"`)
	g, err := scanGrant(c.db.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE dataset_id = ? AND `+who+` ORDER BY id DESC LIMIT 1`, append([]any{datasetID}, whoArgs...)...))
	if err != nil {
		return nil, notFound(err, "grant of "+datasetID+" to "+user.Name)
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
// custodian of and viewer's own — not on a dataset hidden by a deletion,
// which a grantee may no longer see. history as in Grants.
func (c *Catalog) VisibleGrants(ctx context.Context, viewer Principal, all, history bool) ([]Grant, error) {
	own, ownArgs := viewer.holds("grants", `"user"`)
	cust, custArgs := viewer.holds("m", `"user"`)
	args := append(append(append([]any{all}, ownArgs...), custArgs...), history)
	return queryAll(ctx, c, "grants", scanGrant, `SELECT `+grantCols+` FROM grants
		WHERE (? OR (`+own+` AND dataset_id IN (SELECT id FROM datasets WHERE deleted_at IS NULL))
				OR dataset_id IN (SELECT m.dataset_id FROM members m WHERE `+cust+` AND m.role = 'custodian'))
			AND (? OR superseded_by IS NULL)
		ORDER BY dataset_id, id`, args...)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
