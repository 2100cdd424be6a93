package api

import "github.com/dozo-vault/dozo/audit"

// Audit endpoints (admin; a dataset's custodian may list its records):
//
//	GET  /v1/audit?dataset=&user=&since=&until=&action=&exclude_action=&result=&file=&limit=
//	                                             -> []AuditEntry (oldest first; the newest `limit`)
//	GET  /v1/audit/verify?anchor_seq=&anchor_hash= -> AuditVerifyResponse (anchor: a record known from an earlier export)
//	GET  /v1/audit/export                        -> JSON lines, one AuditRecord each, the whole chain
//	POST /v1/fetches/{file}/done  FetchDoneRequest -> 204 (the client's report that a fetch finished)
//
// since and until are RFC 3339 or YYYY-MM-DD (UTC; until is exclusive);
// action and exclude_action are comma-separated action names; result is
// ok, refused, error or client-reported; file is a file name (its
// fetches, presigns, uploads and refusals). limit defaults to 100, at
// most 10000.

// AuditRecord is one record of dozod's hash-chained audit log.
type AuditRecord = audit.Record

// AuditEntry is a record as the list shows it: the record exactly as
// chained (it verifies as it is), and the name and size of the file it
// concerns, looked up in the catalog when listed (File and FileSize are
// not part of the record).
type AuditEntry struct {
	audit.Record
	File     string `json:"file,omitempty"`
	FileSize int64  `json:"file_size,omitempty"` // plaintext bytes, as the catalog holds the file now
}

// AuditVerifyResponse is the verdict on the whole chain: ok, the number of
// records checked, and on failure the first bad record and why.
type AuditVerifyResponse = audit.Result

// ActionFetchDone is the audit action of a client's report that a fetch
// finished; its result is audit.ResultClientReported.
const ActionFetchDone = "file.fetch.done"

// FetchDoneRequest is the body of POST /v1/fetches/{file}/done: what the
// client says it fetched. dozod records it as told (result
// client-reported) after checking it is plausible.
type FetchDoneRequest struct {
	Bytes     int64 `json:"bytes"`      // plaintext bytes written by this run
	Verified  bool  `json:"verified"`   // the whole file's SHA-256 and MD5 matched the catalog
	ElapsedMS int64 `json:"elapsed_ms"` // how long the run took
}

// PresignActions are the audit actions of presigned URLs: many per
// transfer, hidden from the reading view of the log unless asked for.
var PresignActions = []string{"upload.presign", "upload.presign-batch", "fetch.presign", "fetch.presign-batch"}
