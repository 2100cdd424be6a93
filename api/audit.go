package api

import "github.com/dozo-vault/dozo/audit"

// Audit endpoints (admin; a dataset's custodian may list its records):
//
//	GET /v1/audit?dataset=&user=&since=&limit=  -> []AuditRecord (oldest first; the newest `limit`)
//	GET /v1/audit/verify?anchor_seq=&anchor_hash= -> AuditVerifyResponse (anchor: a record known from an earlier export)
//	GET /v1/audit/export                         -> JSON lines, one AuditRecord each, the whole chain
//
// since is RFC 3339 or YYYY-MM-DD (UTC); limit defaults to 100, at most
// 10000.

// AuditRecord is one record of dozod's hash-chained audit log.
type AuditRecord = audit.Record

// AuditVerifyResponse is the verdict on the whole chain: ok, the number of
// records checked, and on failure the first bad record and why.
type AuditVerifyResponse = audit.Result
