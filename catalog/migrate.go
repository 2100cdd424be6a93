package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each in its own transaction, and
// recorded in schema_migrations by version (index+1). Never edit a
// released migration; append a new one. They are written for SQLite, in
// SQL PostgreSQL shares but for the types, which dialect.schema rewrites
// (INTEGER is 64-bit, BLOB is BYTEA, AUTOINCREMENT an identity); "user",
// a reserved word in PostgreSQL, is quoted (for SQLite the same column).
var migrations = []string{
	migrationInitial,
	migrationAccess,           // 2: migrate_access.go
	migrationAudit,            // 3: migrate_audit.go
	migrationScrub,            // 4: migrate_scrub.go
	migrationLifecycle,        // 5: migrate_lifecycle.go
	migrationAuditAnchors,     // 6: migrate_audit.go
	migrationPrincipals,       // 7: migrate_principals.go
	migrationConsoleSessions,  // 8: migrate_console.go
	migrationJobs,             // 9: migrate_jobs.go
	migrationKeyGeneration,    // 10: migrate_keygen.go
	migrationPendingSignIns,   // 11: migrate_signin.go
	migrationGrantsGeneration, // 12: migrate_grantgen.go
	migrationLookupIndexes,    // 13: migrate_lookup.go
	migrationCleanFinal,       // 14: migrate_clean.go
}

// migrationInitial is the first schema.
const migrationInitial = `
CREATE TABLE users (
	name       TEXT PRIMARY KEY,
	recipient  TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
);
CREATE TABLE datasets (
	id                 TEXT PRIMARY KEY,
	title              TEXT NOT NULL,
	k                  INTEGER NOT NULL CHECK (k >= 1),
	m                  INTEGER NOT NULL CHECK (m >= 0),
	plain_segment_size INTEGER NOT NULL CHECK (plain_segment_size > 0),
	segment_size       INTEGER NOT NULL CHECK (segment_size > 0),
	transit_key        TEXT NOT NULL,
	created_by         TEXT NOT NULL,
	created_at         INTEGER NOT NULL
);
-- Per-dataset roles: custodian (manages grants), submitter (uploads).
CREATE TABLE members (
	dataset_id TEXT NOT NULL REFERENCES datasets(id),
	"user"     TEXT NOT NULL,
	role       TEXT NOT NULL CHECK (role IN ('custodian', 'submitter')),
	added_by   TEXT NOT NULL,
	added_at   INTEGER NOT NULL,
	PRIMARY KEY (dataset_id, "user", role)
);
CREATE TABLE files (
	id            TEXT PRIMARY KEY,
	dataset_id    TEXT NOT NULL REFERENCES datasets(id),
	name          TEXT NOT NULL,
	size          INTEGER NOT NULL CHECK (size >= 0),
	stored_size   INTEGER NOT NULL CHECK (stored_size >= 0),
	hash_alg      TEXT NOT NULL,
	state         TEXT NOT NULL CHECK (state IN ('uploading', 'available', 'damaged', 'aborted')),
	header_object BLOB NOT NULL,
	manifest      BLOB,
	sha256        TEXT NOT NULL DEFAULT '',
	md5           TEXT NOT NULL DEFAULT '',
	created_by    TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	available_at  INTEGER
);
-- One live (uploading or available) file per name in a dataset.
CREATE UNIQUE INDEX files_live_name ON files(dataset_id, name)
	WHERE state IN ('uploading', 'available', 'damaged');
CREATE TABLE uploads (
	id          TEXT PRIMARY KEY,
	file_id     TEXT NOT NULL UNIQUE REFERENCES files(id),
	segments    INTEGER NOT NULL CHECK (segments >= 1),
	targets     TEXT NOT NULL, -- JSON [{"id":..,"domain":..}], fixed at begin
	state       TEXT NOT NULL CHECK (state IN ('open', 'complete', 'aborted', 'expired')),
	created_by  TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	ended_at    INTEGER,
	cleaned_at  INTEGER
);
CREATE INDEX uploads_state ON uploads(state, expires_at);
CREATE TABLE segments (
	file_id      TEXT NOT NULL REFERENCES files(id),
	idx          INTEGER NOT NULL CHECK (idx >= 0),
	meta         TEXT NOT NULL, -- JSON storage.SegmentMeta
	committed_at INTEGER NOT NULL,
	PRIMARY KEY (file_id, idx)
);
-- Grants are never deleted. revoked_at/by mark a revocation;
-- superseded_by marks a row replaced by a newer grant (an extension).
CREATE TABLE grants (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	dataset_id    TEXT NOT NULL REFERENCES datasets(id),
	"user"        TEXT NOT NULL,
	until         TEXT NOT NULL, -- YYYY-MM-DD, inclusive, UTC
	granted_by    TEXT NOT NULL,
	granted_at    INTEGER NOT NULL,
	revoked_at    INTEGER,
	revoked_by    TEXT NOT NULL DEFAULT '',
	superseded_by INTEGER REFERENCES grants(id)
);
CREATE INDEX grants_user ON grants(dataset_id, "user");
`

// SchemaVersion is the version a fully migrated catalog has.
var SchemaVersion = len(migrations)

// migrate applies the pending migrations, each in its own transaction
// under the migration lock: dozods starting together on one PostgreSQL
// catalog apply each migration once, the others wait and skip it.
func (c *Catalog) migrate(ctx context.Context) error {
	err := c.lockedTx(ctx, lockMigrate, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, c.d.schema(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at INTEGER NOT NULL)`))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: migrations table: %w", err)
	}
	for i, m := range migrations {
		v := i + 1
		err := c.lockedTx(ctx, lockMigrate, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, c.d.schema(m)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, ts(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("catalog: migration %d: %w", v, err)
		}
	}
	// A catalog written by a newer dozod must not be used by an older one.
	var maxV int
	if err := c.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&maxV); err != nil {
		return fmt.Errorf("catalog: schema version: %w", err)
	}
	if maxV > SchemaVersion {
		return fmt.Errorf("catalog: schema version %d is newer than this dozod supports (%d)", maxV, SchemaVersion)
	}
	return nil
}

// Version returns the highest applied migration.
func (c *Catalog) Version(ctx context.Context) (int, error) {
	var v int
	err := c.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
