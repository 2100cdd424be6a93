package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Freeze kinds.
const (
	FreezeUser    = "user"
	FreezeDataset = "dataset"
)

// Freeze is one incident freeze of a user or a dataset. A freeze is in
// force until LiftedAt is set; rows are never deleted.
type Freeze struct {
	ID         int64
	Kind       string // FreezeUser or FreezeDataset
	Name       string // user name or dataset id
	Reason     string
	FrozenBy   string
	FrozenAt   time.Time
	LiftedAt   *time.Time
	LiftedBy   string
	LiftReason string
	// EntityID is the Vault entity a user freeze is bound to; "" for a
	// dataset, or for a user not seen yet until their first login.
	EntityID string
}

const freezeCols = `id, kind, name, reason, frozen_by, frozen_at, lifted_at, lifted_by, lift_reason, entity_id`

func scanFreeze(s rowScanner) (*Freeze, error) {
	var f Freeze
	var at int64
	var lifted sql.NullInt64
	if err := s.Scan(&f.ID, &f.Kind, &f.Name, &f.Reason, &f.FrozenBy, &at, &lifted, &f.LiftedBy, &f.LiftReason, &f.EntityID); err != nil {
		return nil, err
	}
	f.FrozenAt = fromTS(at)
	f.LiftedAt = fromNullTS(lifted)
	return &f, nil
}

func checkKind(kind string) error {
	if kind != FreezeUser && kind != FreezeDataset {
		return fmt.Errorf("catalog: freeze kind %q: want %s or %s", kind, FreezeUser, FreezeDataset)
	}
	return nil
}

// PutFreeze puts a freeze in force; ErrExists if one already is for the
// same user or dataset.
func (c *Catalog) PutFreeze(ctx context.Context, f Freeze) (*Freeze, error) {
	if err := checkKind(f.Kind); err != nil {
		return nil, err
	}
	var out *Freeze
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO freezes(kind, name, reason, frozen_by, frozen_at, entity_id) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			f.Kind, f.Name, f.Reason, f.FrozenBy, ts(f.FrozenAt), f.EntityID).Scan(&id)
		if isConstraint(err) {
			return fmt.Errorf("%s %s is already frozen: %w", f.Kind, f.Name, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("catalog: freeze: %w", err)
		}
		out, err = scanFreeze(tx.QueryRowContext(ctx, `SELECT `+freezeCols+` FROM freezes WHERE id = ?`, id))
		return err
	})
	return out, err
}

// LiftFreeze ends the freeze in force on kind/target and returns it;
// ErrNotFound if none is. For a user, every freeze in force that may be
// theirs is lifted (Principal.names: by name or by entity, so one made
// under a name the account has since changed too); the newest is
// returned. A dataset's target is its id, as Name.
func (c *Catalog) LiftFreeze(ctx context.Context, kind string, target Principal, by, reason string, now time.Time) (*Freeze, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if kind == FreezeDataset {
		target.EntityID = ""
	}
	who, whoArgs := target.names("freezes", "name")
	var out *Freeze
	err := c.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+freezeCols+` FROM freezes
			WHERE kind = ? AND `+who+` AND lifted_at IS NULL ORDER BY id DESC`, append([]any{kind}, whoArgs...)...)
		if err != nil {
			return fmt.Errorf("catalog: unfreeze: %w", err)
		}
		var fs []*Freeze
		for rows.Next() {
			f, err := scanFreeze(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("catalog: unfreeze: %w", err)
			}
			fs = append(fs, f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("catalog: unfreeze: %w", err)
		}
		if len(fs) == 0 {
			return notFound(sql.ErrNoRows, "freeze of "+kind+" "+target.Name)
		}
		for _, f := range fs {
			if _, err := tx.ExecContext(ctx, `UPDATE freezes SET lifted_at = ?, lifted_by = ?, lift_reason = ? WHERE id = ?`,
				ts(now), by, reason, f.ID); err != nil {
				return fmt.Errorf("catalog: unfreeze: %w", err)
			}
		}
		f := fs[0]
		t := now.UTC()
		f.LiftedAt, f.LiftedBy, f.LiftReason = &t, by, reason
		out = f
		return nil
	})
	return out, err
}

// ActiveFreeze returns the freeze in force on kind/name, or ErrNotFound.
// dozod asks on every request (no cache), so a freeze takes effect at the
// next request.
func (c *Catalog) ActiveFreeze(ctx context.Context, kind, name string) (*Freeze, error) {
	f, err := scanFreeze(c.db.QueryRowContext(ctx, `SELECT `+freezeCols+` FROM freezes
		WHERE kind = ? AND name = ? AND lifted_at IS NULL`, kind, name))
	if err != nil {
		return nil, notFound(err, "freeze of "+kind+" "+name)
	}
	return f, nil
}

// UserFreeze returns a freeze in force on user, or ErrNotFound: one bound
// to the user's entity, whatever name it was made under, or one of the
// user's name that no entity holds yet (Principal.holds). dozod asks on
// every request, like ActiveFreeze.
func (c *Catalog) UserFreeze(ctx context.Context, user Principal) (*Freeze, error) {
	who, whoArgs := user.holds("freezes", "name")
	f, err := scanFreeze(c.db.QueryRowContext(ctx, `SELECT `+freezeCols+` FROM freezes
		WHERE kind = 'user' AND `+who+` AND lifted_at IS NULL ORDER BY id DESC LIMIT 1`, whoArgs...))
	if err != nil {
		return nil, notFound(err, "freeze of user "+user.Name)
	}
	return f, nil
}

// Freezes lists freezes in force, or every freeze ever with all, oldest
// first.
func (c *Catalog) Freezes(ctx context.Context, all bool) ([]Freeze, error) {
	return queryAll(ctx, c, "freezes", scanFreeze, `SELECT `+freezeCols+` FROM freezes
		WHERE ? OR lifted_at IS NULL ORDER BY id`, all)
}
