package catalog

// migrationLookupIndexes (13) adds the indexes that lookups over a
// growing table lacked, each of which read every row before:
//
//   - files_dataset: every file of a dataset in any state, by name (a
//     deletion's report and the uploads it ends; files_live_name holds
//     only live files);
//   - files_name: the files of a name across datasets (the audit list's
//     file filter);
//   - jobs_kind and jobs_created: the newest jobs of a kind (the reaper's
//     retry back-off, every pass) and of all kinds (the job list), which
//     sorted every job kept.
const migrationLookupIndexes = `
CREATE INDEX files_dataset ON files(dataset_id, name, id);
CREATE INDEX files_name ON files(name);
CREATE INDEX jobs_kind ON jobs(kind, created_at, id);
CREATE INDEX jobs_created ON jobs(created_at, id);
`
