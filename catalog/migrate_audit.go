package catalog

const migrationAudit = `SELECT 1;`
