package catalog

// migrationScrub (4) records scrub runs (issue 5). A run lists its files
// up front (scrub_files, in order) and stamps each as it finishes, so a run
// interrupted by a restart continues where it stopped. The partial unique
// index allows one running scrub at a time, whatever dozod believes.
// scrub_files.file_id has no foreign key: a scrub record must never stand
// in the way of deleting a file.
const migrationScrub = `
CREATE TABLE scrub_runs (
	id         TEXT PRIMARY KEY,
	trigger    TEXT NOT NULL CHECK (trigger IN ('manual', 'scheduled')),
	started_by TEXT NOT NULL,
	dataset_id TEXT NOT NULL DEFAULT '',
	file_name  TEXT NOT NULL DEFAULT '',
	deep       INTEGER NOT NULL CHECK (deep IN (0, 1)),
	repair     INTEGER NOT NULL CHECK (repair IN (0, 1)),
	rate       INTEGER NOT NULL DEFAULT 0 CHECK (rate >= 0),
	state      TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),
	started_at INTEGER NOT NULL,
	ended_at   INTEGER,
	error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX scrub_runs_started ON scrub_runs(started_at);
CREATE UNIQUE INDEX scrub_runs_one_running ON scrub_runs(state) WHERE state = 'running';
CREATE TABLE scrub_files (
	run_id  TEXT NOT NULL REFERENCES scrub_runs(id),
	seq     INTEGER NOT NULL CHECK (seq >= 0),
	file_id TEXT NOT NULL,
	pieces  INTEGER NOT NULL CHECK (pieces >= 0),
	bytes   INTEGER NOT NULL CHECK (bytes >= 0),
	done_at INTEGER,
	result  TEXT NOT NULL DEFAULT '', -- JSON, once done
	PRIMARY KEY (run_id, seq)
);
`
