package catalog

// migrationAudit adds the hash-chained audit log and the tables that make
// key rotation and dataset deletion resumable and reportable.
const migrationAudit = `
-- One row per audit record; seq is assigned in the appending transaction
-- (last seq + 1), so the chain order is the seq order. hash =
-- SHA-256(prev_hash || canonical(record)), see package audit.
CREATE TABLE audit (
	seq        INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	object     TEXT NOT NULL,
	dataset    TEXT NOT NULL DEFAULT '',
	result     TEXT NOT NULL,
	status     INTEGER NOT NULL,
	source     TEXT NOT NULL,
	request_id TEXT NOT NULL,
	detail     TEXT NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL
);
CREATE INDEX audit_dataset ON audit(dataset, seq);
CREATE INDEX audit_actor ON audit(actor, seq);
CREATE INDEX audit_time ON audit(time);

-- A deleted dataset keeps its row (and so its grants, files and audit
-- history) but is invisible to every other query.
ALTER TABLE datasets ADD COLUMN deleted_at INTEGER;

-- Key rotations: target_version is the Transit key version every header
-- and manifest of the dataset must be under before min_decryption_version
-- is raised. A row without finished_at is a rotation to resume.
CREATE TABLE key_rotations (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	dataset_id     TEXT NOT NULL REFERENCES datasets(id),
	target_version INTEGER NOT NULL,
	started_by     TEXT NOT NULL,
	started_at     INTEGER NOT NULL,
	rewrapped      INTEGER NOT NULL DEFAULT 0,
	finished_at    INTEGER
);
CREATE UNIQUE INDEX key_rotations_open ON key_rotations(dataset_id) WHERE finished_at IS NULL;

-- Dataset deletions (crypto-shredding): one row per dataset, with every
-- object removed, so an interrupted deletion resumes and the report lists
-- everything.
CREATE TABLE deletions (
	dataset_id    TEXT PRIMARY KEY REFERENCES datasets(id),
	started_by    TEXT NOT NULL,
	started_at    INTEGER NOT NULL,
	key_name      TEXT NOT NULL DEFAULT '',
	key_versions  INTEGER NOT NULL DEFAULT 0,
	key_destroyed_at INTEGER,
	finished_at   INTEGER,
	report        BLOB
);
CREATE TABLE deleted_objects (
	dataset_id TEXT NOT NULL REFERENCES datasets(id),
	target     TEXT NOT NULL,
	key        TEXT NOT NULL,
	version_id TEXT NOT NULL,
	size       INTEGER NOT NULL,
	delete_marker INTEGER NOT NULL DEFAULT 0,
	deleted_at INTEGER NOT NULL,
	PRIMARY KEY (dataset_id, target, key, version_id)
);
`

// migrationAuditAnchors adds the anchors of the audit chain: its head
// (seq, hash) at a time, with the Transit HMAC that dozod's audit key
// made of it (package audit, StoredAnchor). An anchor is written once per
// head; two replicas anchoring the same head write the same row.
const migrationAuditAnchors = `
CREATE TABLE audit_anchors (
	seq  INTEGER PRIMARY KEY,
	hash TEXT NOT NULL,
	mac  TEXT NOT NULL,
	time INTEGER NOT NULL
);
`
