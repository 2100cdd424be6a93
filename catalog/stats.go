package catalog

import (
	"context"
	"fmt"
)

// StateCount is the number and plaintext bytes of files in one state.
type StateCount struct {
	State string
	Files int64
	Bytes int64
}

// Stats are catalog totals for dozod's metrics.
type Stats struct {
	Datasets int64
	States   []StateCount // every file state, in a fixed order, zeros included
}

// FileStats counts datasets and files by state. The states are the fixed
// set of the files table's CHECK constraint, so they are safe as metric
// label values.
func (c *Catalog) FileStats(ctx context.Context) (*Stats, error) {
	st := &Stats{}
	if err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM datasets`).Scan(&st.Datasets); err != nil {
		return nil, fmt.Errorf("catalog: stats: %w", err)
	}
	rows, err := c.db.QueryContext(ctx, `SELECT state, count(*), coalesce(sum(size), 0) FROM files GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("catalog: stats: %w", err)
	}
	defer rows.Close()
	got := map[string]StateCount{}
	for rows.Next() {
		var sc StateCount
		if err := rows.Scan(&sc.State, &sc.Files, &sc.Bytes); err != nil {
			return nil, fmt.Errorf("catalog: stats: %w", err)
		}
		got[sc.State] = sc
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: stats: %w", err)
	}
	for _, s := range []string{FileUploading, FileAvailable, FileDamaged, FileAborted} {
		sc := got[s]
		sc.State = s
		st.States = append(st.States, sc)
	}
	return st, nil
}
