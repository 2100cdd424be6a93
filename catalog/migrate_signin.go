package catalog

// migrationPendingSignIns keeps the console's single sign-ons between the
// button and the provider's callback in the catalog, so the callback may
// reach any dozod replica. A row is keyed by the SHA-256 of the browser's
// cookie id and holds the provider's state, the client nonce and the page
// to return to only sealed with a key derived from that id.
const migrationPendingSignIns = `
CREATE TABLE console_signins (
	id_hash    BLOB PRIMARY KEY,
	sealed     BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX console_signins_created ON console_signins(created_at);
`
