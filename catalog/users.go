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
