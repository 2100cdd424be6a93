package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SetRecipient records user's age recipient (public key), replacing any
// earlier one. The caller validates the recipient.
func (c *Catalog) SetRecipient(ctx context.Context, user, recipient string, now time.Time) error {
	_, err := c.db.ExecContext(ctx, `INSERT INTO users(name, recipient, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET recipient = excluded.recipient, updated_at = excluded.updated_at`,
		user, recipient, ts(now))
	if err != nil {
		return fmt.Errorf("catalog: set recipient: %w", err)
	}
	return nil
}

// Recipient returns user's registered recipient, or "" if none.
func (c *Catalog) Recipient(ctx context.Context, user string) (string, error) {
	var r string
	err := c.db.QueryRowContext(ctx, `SELECT recipient FROM users WHERE name = ?`, user).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("catalog: recipient: %w", err)
	}
	return r, nil
}

// User is someone dozod has seen authenticate: the login name, the auth
// mount of that login and its Vault identity entity. A user who only
// registered a key before dozod recorded logins has no mount, entity or
// times until the next request.
type User struct {
	Name      string
	Mount     string
	EntityID  string
	FirstSeen time.Time // zero if not recorded
	LastSeen  time.Time
}

// SeenUser records that name authenticated at now by a login on mount,
// as Vault entity entityID, and binds to that entity the grants, dataset
// roles and freezes made for the name that no entity holds yet (made
// before the user's first login: "pending first login"). Rows already
// bound to an entity keep it: a name that another entity uses later does
// not take them over, nor the key the name's earlier holder registered
// (it is cleared: the new person registers their own). All in one
// transaction.
func (c *Catalog) SeenUser(ctx context.Context, name, mount, entityID string, now time.Time) error {
	if name == "" || entityID == "" {
		return fmt.Errorf("catalog: seen user: name and entity id are required")
	}
	return c.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO users(name, updated_at, mount, entity_id, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(name) DO UPDATE SET mount = excluded.mount, entity_id = excluded.entity_id,
				first_seen = coalesce(users.first_seen, excluded.first_seen), last_seen = excluded.last_seen,
				recipient = CASE WHEN users.entity_id <> '' AND users.entity_id <> excluded.entity_id THEN '' ELSE users.recipient END`,
			name, ts(now), mount, entityID, ts(now), ts(now)); err != nil {
			return fmt.Errorf("catalog: seen user: %w", err)
		}
		grants, err := tx.ExecContext(ctx, `UPDATE grants SET entity_id = ? WHERE "user" = ? AND entity_id = ''`, entityID, name)
		if err != nil {
			return fmt.Errorf("catalog: bind pending rows: %w", err)
		}
		for _, q := range []string{
			`UPDATE members SET entity_id = ? WHERE "user" = ? AND entity_id = ''`,
			`UPDATE freezes SET entity_id = ? WHERE kind = 'user' AND name = ? AND entity_id = ''`,
		} {
			if _, err := tx.ExecContext(ctx, q, entityID, name); err != nil {
				return fmt.Errorf("catalog: bind pending rows: %w", err)
			}
		}
		if n, _ := grants.RowsAffected(); n > 0 {
			// A bound grant is no longer held by another entity logging
			// in with the name: their warnings change.
			return bumpGrantsGeneration(ctx, tx)
		}
		return nil
	})
}

const userCols = `name, mount, entity_id, first_seen, last_seen`

func scanUser(s rowScanner) (*User, error) {
	var u User
	var first, last sql.NullInt64
	if err := s.Scan(&u.Name, &u.Mount, &u.EntityID, &first, &last); err != nil {
		return nil, err
	}
	if first.Valid {
		u.FirstSeen = fromTS(first.Int64)
	}
	if last.Valid {
		u.LastSeen = fromTS(last.Int64)
	}
	return &u, nil
}

// KnownUser returns the user dozod knows by name (seen authenticating, or
// registered a key), or ErrNotFound.
func (c *Catalog) KnownUser(ctx context.Context, name string) (*User, error) {
	u, err := scanUser(c.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if err != nil {
		return nil, notFound(err, "user "+name)
	}
	return u, nil
}

// Users returns every user dozod knows, by name.
func (c *Catalog) Users(ctx context.Context) ([]User, error) {
	return queryAll(ctx, c, "users", scanUser, `SELECT `+userCols+` FROM users ORDER BY name`)
}

// Principal is who a grant, a dataset role or a user freeze is for: the
// login name and, once known, the Vault identity entity (the person).
//
// A row bound to an entity (entity_id set) is the entity's, whatever name
// it logs in with: a renamed account, or the same person by LDAP and by
// OIDC with different names, keeps it, and a name that someone else uses
// later does not take it over. A row without one (made before its user's
// first login) is the name's. A Principal without an EntityID (an
// identity source without entities) matches rows by name alone.
type Principal struct {
	Name     string
	EntityID string
}

// ByName is the principal of a name alone.
func ByName(name string) Principal { return Principal{Name: name} }

// holds returns the condition that the row of table alias t (its "user"
// column is userCol) belongs to p, and its arguments: rows bound to p's
// entity, and rows of p's name that no entity holds. Use it wherever a
// row gives p access.
func (p Principal) holds(t, userCol string) (string, []any) {
	if p.EntityID == "" {
		return t + `.` + userCol + ` = ?`, []any{p.Name}
	}
	return `((` + t + `.entity_id <> '' AND ` + t + `.entity_id = ?) OR (` + t + `.entity_id = '' AND ` + t + `.` + userCol + ` = ?))`,
		[]any{p.EntityID, p.Name}
}

// names returns the condition that the row of table alias t is p's by
// name or by entity, whichever, and its arguments. Use it for changes
// that only reduce access (a revocation, a role removed) or that an
// administrator aims at a person (lifting a freeze): every row that may
// be p's is included.
func (p Principal) names(t, userCol string) (string, []any) {
	if p.EntityID == "" {
		return t + `.` + userCol + ` = ?`, []any{p.Name}
	}
	return `(` + t + `.` + userCol + ` = ? OR ` + t + `.entity_id = ?)`, []any{p.Name, p.EntityID}
}
