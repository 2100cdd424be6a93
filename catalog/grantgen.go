package catalog

import (
	"context"
	"database/sql"
	"fmt"
)

// The grants generation is a catalog-wide counter that every change
// which can change someone's expiring grants (ExpiringGrants) raises in
// its own transaction: a grant put, scheduled or revoked, a dataset
// hidden by a deletion or restored, a pending grant bound to its user's
// entity. A dozod that keeps users' grant warnings keys them by it, so a
// change made by any dozod sharing the catalog is seen by every other at
// the user's next request. Access reads it with the request's checks, at
// no extra statement.

// generationCol is the current generation as a scalar subquery (0 before
// any change).
const generationCol = `coalesce((SELECT gg.n FROM grants_generation gg WHERE gg.id = 1), 0)`

// bumpGrantsGeneration raises the grants generation inside tx. Call it
// late in the transaction: the row is a lock every such change takes,
// held until the commit.
func bumpGrantsGeneration(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO grants_generation(id, n) VALUES (1, 1)
		ON CONFLICT(id) DO UPDATE SET n = grants_generation.n + 1`); err != nil {
		return fmt.Errorf("catalog: grants generation: %w", err)
	}
	return nil
}

// GrantsGeneration returns the grants generation: it differs from an
// earlier answer (or AccessView.GrantsGeneration) whenever a change that
// can change someone's expiring grants committed in between. Read it
// before the grants it is to stand for: an answer read after a change
// then has a newer generation than its key, which costs a recomputation,
// never a stale answer.
func (c *Catalog) GrantsGeneration(ctx context.Context) (int64, error) {
	var n int64
	if err := c.db.QueryRowContext(ctx, `SELECT `+generationCol).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: grants generation: %w", err)
	}
	return n, nil
}
