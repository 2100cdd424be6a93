package catalog

const migrationScrub = `SELECT 1;`
