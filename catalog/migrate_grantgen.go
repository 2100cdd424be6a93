package catalog

// migrationGrantsGeneration (version 12) counts the changes that can
// change anyone's "your grant ends soon" warnings (see GrantsGeneration).
// The table holds at most one row and starts empty (generation 0), so a
// fresh catalog is still an empty destination for Copy, which carries
// the row like any other.
const migrationGrantsGeneration = `
CREATE TABLE grants_generation (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  INTEGER NOT NULL
);
`
