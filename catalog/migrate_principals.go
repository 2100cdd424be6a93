package catalog

// migrationPrincipals (version 7) records the users dozod has seen
// authenticate (their login mount, Vault identity entity and when they
// were first and last seen), so that a grant, a dataset role or a freeze
// names someone who exists; and binds grants, members and freezes to the
// Vault entity of their user (entity_id, empty while the user has not logged
// in yet: a row made for a name nobody has used, "pending first login").
// Rows from before this migration are bound at their user's next request.
const migrationPrincipals = `
ALTER TABLE users ADD COLUMN mount TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN entity_id TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN first_seen INTEGER;
ALTER TABLE users ADD COLUMN last_seen INTEGER;
CREATE INDEX users_entity ON users(entity_id);
ALTER TABLE grants ADD COLUMN entity_id TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN entity_id TEXT NOT NULL DEFAULT '';
ALTER TABLE freezes ADD COLUMN entity_id TEXT NOT NULL DEFAULT '';
CREATE INDEX grants_entity ON grants(entity_id);
CREATE INDEX members_entity ON members(entity_id);
`
