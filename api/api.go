// Package api holds the JSON types of kurad's HTTP API (version 1), shared
// by the broker and the client. Paths are under /v1.
//
// Every request carries the caller's Vault token as
// "Authorization: Bearer <token>". Errors are JSON Error bodies with a
// non-2xx status. A caller without access to a dataset gets 404 for
// everything in it, exactly as for a dataset that does not exist.
//
//	GET    /v1/health                                   -> Health (no auth)
//	GET    /v1/whoami                                   -> User
//	PUT    /v1/me/recipient        RecipientRequest     -> User
//	POST   /v1/datasets            CreateDatasetRequest -> Dataset
//	GET    /v1/datasets                                 -> []Dataset (those the caller may see)
//	GET    /v1/datasets/{ds}                            -> Dataset
//	GET    /v1/datasets/{ds}/files                      -> []File
//	POST   /v1/datasets/{ds}/uploads  BeginUploadRequest -> Upload
//	GET    /v1/uploads/{upload}                         -> Upload (with committed segments)
//	POST   /v1/uploads/{upload}/presign  PresignRequest -> PresignResponse  (PUT URL for one piece)
//	PUT    /v1/uploads/{upload}/segments/{n}  storage.SegmentMeta -> Upload
//	POST   /v1/uploads/{upload}/complete CompleteUploadRequest -> File
//	DELETE /v1/uploads/{upload}                         -> 204 (abort; pieces deleted)
//	POST   /v1/datasets/{ds}/files/{name}/fetch         -> FetchResponse (header for the caller's recipient)
//	POST   /v1/fetches/{file}/presign  PresignRequest   -> PresignResponse  (GET URL for one piece)
//	PUT    /v1/datasets/{ds}/grants/{user}  GrantRequest -> Grant
//	DELETE /v1/datasets/{ds}/grants/{user}              -> Grant (revoked)
//	GET    /v1/datasets/{ds}/grants                     -> []Grant
package api

import (
	"time"

	"github.com/ddbj/kura/storage"
)

// MaxBodyBytes bounds every request body kurad reads.
const MaxBodyBytes = 1 << 20

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`          // one line: what failed and why
	Hint  string `json:"hint,omitempty"` // what to do about it
	// RequestID ties the response to kurad's log and audit record.
	RequestID string `json:"request_id,omitempty"`
}

type Health struct {
	Status  string `json:"status"` // "ok"
	Version string `json:"version"`
}

type User struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles,omitempty"`     // global roles: "admin", "submitter"
	Recipient string   `json:"recipient,omitempty"` // registered age recipient
	TokenTTL  int64    `json:"token_ttl_seconds,omitempty"`
}

type RecipientRequest struct {
	// Recipient is an age X25519 ("age1...") or ML-KEM-768+X25519 hybrid
	// ("age1pq1...") public key.
	Recipient string `json:"recipient"`
}

type CreateDatasetRequest struct {
	ID               string `json:"id"`
	Title            string `json:"title"`
	K                int    `json:"k,omitempty"`                  // default 4
	M                int    `json:"m,omitempty"`                  // default 2
	PlainSegmentSize int64  `json:"plain_segment_size,omitempty"` // default 64 MiB
}

type Dataset struct {
	ID               string    `json:"id"`
	Title            string    `json:"title"`
	K                int       `json:"k"`
	M                int       `json:"m"`
	PlainSegmentSize int64     `json:"plain_segment_size"`
	TransitKey       string    `json:"transit_key"`
	CreatedBy        string    `json:"created_by"`
	CreatedAt        time.Time `json:"created_at"`
	Files            int       `json:"files"`
	Bytes            int64     `json:"bytes"`
	// Access is the caller's relation to the dataset: "custodian",
	// "submitter", "grantee" or "admin".
	Access []string `json:"access,omitempty"`
}

// File states.
const (
	FileUploading = "uploading"
	FileAvailable = "available"
	FileDamaged   = "damaged"
)

type File struct {
	ID        string    `json:"id"`
	Dataset   string    `json:"dataset"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"` // plaintext bytes
	SHA256    string    `json:"sha256,omitempty"`
	MD5       string    `json:"md5,omitempty"`
	State     string    `json:"state"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

type BeginUploadRequest struct {
	Name string `json:"name"` // shown to users only; never part of an object key
	Size int64  `json:"size"` // plaintext bytes
	// FileKey (16 bytes) and Nonce (16 bytes), base64, made by the client.
	// kurad wraps the file key with the dataset's Transit key, bound to
	// the new file id, and keeps only the wrapped form.
	FileKey string `json:"file_key"`
	Nonce   string `json:"nonce"`
	// HashAlg is the piece hash the client computes: "blake3" (default,
	// storage.DefaultHashAlg) or "sha256". It goes into the manifest.
	HashAlg string `json:"hash_alg,omitempty"`
}

type Target struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
}

type Upload struct {
	ID               string `json:"id"`
	FileID           string `json:"file_id"`
	Dataset          string `json:"dataset"`
	Name             string `json:"name"`
	Size             int64  `json:"size"`
	K                int    `json:"k"`
	M                int    `json:"m"`
	SegmentSize      int64  `json:"segment_size"`       // stored bytes per full segment
	PlainSegmentSize int64  `json:"plain_segment_size"` // plaintext bytes per full segment
	Segments         int    `json:"segments"`           // total the file needs
	// Targets in the order kurad places pieces with storage.Place; the
	// client derives the same placement from them.
	Targets   []Target              `json:"targets"`
	Committed []storage.SegmentMeta `json:"committed,omitempty"`
	ExpiresAt time.Time             `json:"expires_at"`
	State     string                `json:"state"`    // "open", "complete", "aborted", "expired"
	HashAlg   string                `json:"hash_alg"` // piece hash algorithm, as in the manifest
}

type PresignRequest struct {
	Target string `json:"target"`
	Key    string `json:"key"` // a piece key of this upload's or fetch's file
}

type PresignResponse struct {
	URL       string    `json:"url"`
	Method    string    `json:"method"` // "PUT" or "GET"
	ExpiresAt time.Time `json:"expires_at"`
}

type CompleteUploadRequest struct {
	SHA256 string `json:"sha256"` // hex, of the plaintext
	MD5    string `json:"md5"`    // hex, of the plaintext
}

type FetchResponse struct {
	File     File              `json:"file"`
	Manifest *storage.Manifest `json:"manifest"`
	// HeaderObject (base64) is the age header wrapped for the caller's
	// registered recipient, followed by the payload nonce.
	HeaderObject string   `json:"header_object"`
	Targets      []Target `json:"targets"`
}

type GrantRequest struct {
	Until string `json:"until"` // YYYY-MM-DD, inclusive, in UTC
}

type Grant struct {
	Dataset   string     `json:"dataset"`
	User      string     `json:"user"`
	Until     time.Time  `json:"until"`
	GrantedBy string     `json:"granted_by"`
	GrantedAt time.Time  `json:"granted_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	Active    bool       `json:"active"`
}
