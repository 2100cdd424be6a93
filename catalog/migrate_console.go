package catalog

// migrationConsoleSessions keeps the web console's sessions in the
// catalog, so that every dozod replica behind one name knows every
// session. A row is keyed by the SHA-256 of the browser's cookie id and
// holds the session's Vault token only sealed with a key derived from that
// id: the catalog (or a copy of it) alone neither names a cookie nor opens
// a token.
const migrationConsoleSessions = `
CREATE TABLE console_sessions (
	id_hash    BLOB PRIMARY KEY,
	"user"     TEXT NOT NULL,
	sealed     BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	seen_at    INTEGER NOT NULL
);
CREATE INDEX console_sessions_seen ON console_sessions(seen_at);
`
