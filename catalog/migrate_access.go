package catalog

const migrationAccess = `SELECT 1;`
