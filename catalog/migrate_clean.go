package catalog

// migrationCleanFinal (14) lets the reaper's read of ended upload sessions
// skip those it is done with for good. Upload rows are kept, so without it
// every aborted or expired session ever made was read on every pass.
// clean_final is set once a session's pieces were deleted after every URL
// presigned for it had expired (MarkCleaned, and for sessions cleaned
// before this column, UploadsToClean); uploads_to_clean finds
// the ended sessions not final yet. (Not a partial index: without
// statistics SQLite would prefer uploads_state, which has every ended
// session, to one.)
const migrationCleanFinal = `
ALTER TABLE uploads ADD COLUMN clean_final INTEGER NOT NULL DEFAULT 0;
CREATE INDEX uploads_to_clean ON uploads(clean_final, state, ended_at);
`
