package catalog

// migrationKeyGeneration counts the retirements of each dataset key's old
// versions. Every dozod sharing the catalog reads it with the dataset, so
// a replica that memoised MACs under versions another replica retired
// notices on its next read of the dataset and verifies afresh.
const migrationKeyGeneration = `
ALTER TABLE datasets ADD COLUMN key_generation INTEGER NOT NULL DEFAULT 0;
`
