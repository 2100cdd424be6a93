package catalog

// migrationJobs (9) records long-running jobs (key rotation, dataset
// deletion, upload expiry, scrubs): what to do, who runs it and until
// when (owner, lease_until), how far it got and how it ended. A job is
// claimed by one dozod at a time: only a queued job, or a running one
// whose lease has expired, can be claimed (ClaimJob). lock_key names what
// a job must have to itself (a dataset, for rotation and deletion); the
// partial unique index allows one unfinished job per key, whatever any
// dozod believes. "owner" is quoted only for readability; it is not
// reserved in either dialect.
const migrationJobs = `
CREATE TABLE jobs (
	id               TEXT PRIMARY KEY,
	kind             TEXT NOT NULL,
	dataset_id       TEXT NOT NULL DEFAULT '',
	lock_key         TEXT NOT NULL DEFAULT '',
	params           TEXT NOT NULL DEFAULT '{}', -- JSON
	state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
	progress_done    INTEGER NOT NULL DEFAULT 0 CHECK (progress_done >= 0),
	progress_total   INTEGER NOT NULL DEFAULT 0 CHECK (progress_total >= 0),
	progress_note    TEXT NOT NULL DEFAULT '',
	"owner"          TEXT NOT NULL DEFAULT '',
	lease_until      INTEGER,
	attempts         INTEGER NOT NULL DEFAULT 0,
	requested_by     TEXT NOT NULL,
	created_at       INTEGER NOT NULL,
	started_at       INTEGER,
	ended_at         INTEGER,
	cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
	error            TEXT NOT NULL DEFAULT '',
	result           TEXT -- JSON, once done
);
CREATE INDEX jobs_state ON jobs(state, created_at);
CREATE INDEX jobs_dataset ON jobs(dataset_id, created_at);
CREATE UNIQUE INDEX jobs_one_unfinished ON jobs(lock_key)
	WHERE lock_key <> '' AND state IN ('queued', 'running');
`
