package catalog

import (
	"context"
	"fmt"
	"time"
)

// Now is the catalog's clock: the database server's on PostgreSQL, this
// machine's on SQLite (a SQLite file is opened only by processes on the
// machine that holds it). Every dozod sharing a catalog reads the same
// clock here, so a time several dozods must agree on (a periodic
// round's slot) is taken from it rather than from each dozod's own.
func (c *Catalog) Now(ctx context.Context) (time.Time, error) {
	if c.d.name != Postgres {
		return time.Now().UTC(), nil
	}
	var us int64
	if err := c.db.QueryRowContext(ctx, `SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)`).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("catalog: reading the clock: %w", err)
	}
	return time.UnixMicro(us).UTC(), nil
}
