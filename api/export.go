package api

// The CSV exports of the grant register and the audit log (dozo grants
// --csv, dozo audit list --csv) have these column rows. They are a format
// registers and scripts read, like the JSON of the API: the names are
// English in every language the command speaks, and a change to them is a
// change of format.
var (
	// GrantCSVHeader: one row per grant period, as the NBDC user register
	// wants it.
	GrantCSVHeader = []string{"id", "dataset", "user", "application_id", "institution", "from", "until", "state",
		"granted_by", "granted_at", "reason", "revoked_by", "revoked_at", "revoke_reason", "superseded_by", "pending_first_login", "login_name"}
	// AuditCSVHeader: one row per audit record.
	AuditCSVHeader = []string{"seq", "time", "user", "action", "dataset", "file", "file_size", "object", "result", "status",
		"source", "request_id", "detail", "hash"}
)
