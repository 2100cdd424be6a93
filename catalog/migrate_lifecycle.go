package catalog

// migrationLifecycle (5) gives dataset deletions a grace period. A deletion
// is first scheduled (the dataset is hidden at once, datasets.deleted_at)
// and runs only from runs_at on; run_started_at marks the moment its first
// run began, after which it can no longer be cancelled. Deletions recorded
// before this migration ran at once: both times are their started_at.
const migrationLifecycle = `
ALTER TABLE deletions ADD COLUMN runs_at INTEGER;
ALTER TABLE deletions ADD COLUMN run_started_at INTEGER;
UPDATE deletions SET runs_at = started_at, run_started_at = started_at;
`
