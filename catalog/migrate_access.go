package catalog

// migrationAccess (version 2) adds the NBDC access metadata: a dataset's
// access level, NBDC dataset and policy ids and maximum use period; a
// grant's application id, institution, start day and reasons (the NBDC
// user register); and administrators' incident freezes. Rows of freezes,
// like grants, are never deleted: lifting a freeze stamps the row.
const migrationAccess = `
ALTER TABLE datasets ADD COLUMN access_level TEXT NOT NULL DEFAULT 'controlled-type1'
	CHECK (access_level IN ('unrestricted', 'registered', 'controlled-type1', 'controlled-type2'));
ALTER TABLE datasets ADD COLUMN nbdc_id TEXT NOT NULL DEFAULT '';   -- JGAD...
ALTER TABLE datasets ADD COLUMN policy_id TEXT NOT NULL DEFAULT ''; -- JGAP...
ALTER TABLE datasets ADD COLUMN max_use_days INTEGER NOT NULL DEFAULT 365
	CHECK (max_use_days BETWEEN 1 AND 366);
ALTER TABLE grants ADD COLUMN valid_from TEXT NOT NULL DEFAULT ''; -- YYYY-MM-DD; '' = from the start
ALTER TABLE grants ADD COLUMN application_id TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN institution TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN revoke_reason TEXT NOT NULL DEFAULT '';
CREATE TABLE freezes (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	kind        TEXT NOT NULL CHECK (kind IN ('user', 'dataset')),
	name        TEXT NOT NULL,
	reason      TEXT NOT NULL,
	frozen_by   TEXT NOT NULL,
	frozen_at   INTEGER NOT NULL,
	lifted_at   INTEGER,
	lifted_by   TEXT NOT NULL DEFAULT '',
	lift_reason TEXT NOT NULL DEFAULT ''
);
-- At most one freeze in force per user or dataset.
CREATE UNIQUE INDEX freezes_active ON freezes(kind, name) WHERE lifted_at IS NULL;
`
