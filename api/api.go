// Package api holds dozod's HTTP API (version 1), shared by the broker and
// the client: the route table (Routes, in routes.go: each route's method,
// path, audit action, login, authorisation rule and body types) and the
// JSON types. docs/api.md is generated from the table.
//
// Every request needing a login carries the caller's Vault token as
// "Authorization: Bearer <token>". Errors are JSON Error bodies with a
// non-2xx status. A caller without access to a dataset gets 404 for
// everything in it, exactly as for a dataset that does not exist. For a
// dataset hidden by a deletion, its custodians, the admins and the
// uploader of a session on it are told its state instead: 409 while the
// deletion is scheduled or running, 410 once it ran. While Vault is
// unavailable every request needing a login gets 503 "Vault is
// unavailable; try again later". Any answer to a logged-in user may carry
// WarningHeader lines (grants of theirs ending within 30 days with no
// next period booked).
//
// Who may call what is each route's Rule, tested cell by cell in
// broker/matrix_test.go. Roles: admin (dozod's `admins`), custodian and
// submitter (per dataset; a dataset's creator holds both), grantee (an
// active grant: not revoked, not superseded, from <= today <= until, UTC).
// A frozen user is refused everything but health and whoami; a frozen
// dataset refuses file lists, fetches, presigns, uploads and new grants
// (revoke, show and grant lists stay allowed: they reduce or review
// access).
package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

// WarningHeader is the response header dozod adds to any answer to a
// logged-in user, one line per notice: a grant of theirs that ends within
// 30 days with no next period booked.
const WarningHeader = "Dozo-Warning"

// MaxBodyBytes bounds every request body dozod reads.
const MaxBodyBytes = 1 << 20

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`          // one line: what failed and why
	Hint  string `json:"hint,omitempty"` // what to do about it
	// RequestID ties the response to dozod's log and audit record.
	RequestID string `json:"request_id,omitempty"`
}

// Health is GET /v1/health (no token needed): dozod answers, and how the
// parts it depends on were at their last check. Status is "ok"; "degraded"
// when some storage targets are down (dozod still serves); "unavailable"
// when Vault or the catalog is down, while dozod refuses every request.
// Ready is false then, and GET /v1/health?ready=1 answers 503: the
// readiness check for a load balancer.
type Health struct {
	Status  string            `json:"status"`
	Version string            `json:"version"`
	Ready   bool              `json:"ready"`
	Vault   *DependencyHealth `json:"vault,omitempty"`
	Catalog *DependencyHealth `json:"catalog,omitempty"`
	Targets *TargetsHealth    `json:"targets,omitempty"`
}

// DependencyHealth is one dependency at its last check.
type DependencyHealth struct {
	State     string    `json:"state"`               // "up", "down", or "unknown" (not checked yet)
	Since     time.Time `json:"since,omitzero"`      // when State began
	CheckedAt time.Time `json:"checked_at,omitzero"` // the last check
}

// TargetsHealth sums up the storage targets; operators see each one with
// GET /v1/targets.
type TargetsHealth struct {
	State     string    `json:"state"` // "up" (all), "degraded" (some), "down" (none)
	Up        int       `json:"up"`
	Total     int       `json:"total"`
	CheckedAt time.Time `json:"checked_at,omitzero"` // the last probe
}

type User struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles,omitempty"`     // global roles: "admin", "submitter"
	Recipient string   `json:"recipient,omitempty"` // registered age recipient
	TokenTTL  int64    `json:"token_ttl_seconds,omitempty"`
	// Frozen: an administrator froze this account; everything but whoami
	// is refused until it is lifted.
	Frozen bool `json:"frozen,omitempty"`
	// Mount is the Vault auth mount of the login ("userpass", "ldap");
	// EntityID the Vault identity entity (the person behind the login).
	Mount    string `json:"mount,omitempty"`
	EntityID string `json:"entity_id,omitempty"`
	// Groups are the Vault identity groups dozod maps to roles that the
	// user is in.
	Groups []string `json:"groups,omitempty"`
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
	PlainSegmentSize int64  `json:"plain_segment_size,omitempty"` // default 32 MiB (filestore.DefaultPlainSegmentSize)
	// NBDC metadata. AccessLevel defaults to controlled-type1; NBDCID
	// (JGAD + 6 digits) defaults to ID when ID has that form; PolicyID is
	// JGAP + 6 digits; MaxUseDays (1..366) defaults to 365.
	AccessLevel string `json:"access_level,omitempty"`
	NBDCID      string `json:"nbdc_id,omitempty"`
	PolicyID    string `json:"policy_id,omitempty"`
	MaxUseDays  int    `json:"max_use_days,omitempty"`
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
	AccessLevel      string    `json:"access_level"`
	NBDCID           string    `json:"nbdc_id,omitempty"`
	PolicyID         string    `json:"policy_id,omitempty"`
	MaxUseDays       int       `json:"max_use_days"`
	// Frozen: an administrator froze the dataset; no reads, uploads or
	// new grants until it is lifted.
	Frozen bool `json:"frozen,omitempty"`
	// Access is the caller's relation to the dataset: "custodian",
	// "submitter", "grantee" or "admin".
	Access []string `json:"access,omitempty"`
	// Custodians are the user names of the dataset's custodians, whom a
	// grantee asks for a grant or an extension (dataset show only). dozo
	// keeps no contact details: the names are Vault user names.
	Custodians []string `json:"custodians,omitempty"`
}

// MaxDatasetIDLen is the longest dataset id: its Vault Transit key,
// "dozo-ds-" and the id, must fit Vault's 128-character key names.
const MaxDatasetIDLen = 120

// TransitKeyName returns the Vault Transit key a dataset is created with.
func TransitKeyName(datasetID string) string { return "dozo-ds-" + datasetID }

// ValidateDatasetID is the one dataset id rule, checked by the client
// before it asks and by dozod when it is asked: a storage id
// (storage.ValidateID) of at most MaxDatasetIDLen characters without "..",
// so that its Transit key name is a valid Vault key name.
func ValidateDatasetID(id string) error {
	if storage.ValidateID(id) != nil || len(id) > MaxDatasetIDLen || strings.Contains(id, "..") {
		return fmt.Errorf(`bad dataset id %q: use 1-%d of A-Z a-z 0-9 . _ - (not starting with . or -, no "..")`, id, MaxDatasetIDLen)
	}
	return nil
}

// File states.
const (
	FileUploading = "uploading"
	FileAvailable = "available"
	FileDamaged   = "damaged"
	FileAborted   = "aborted" // an upload given up: never listed, shown in upload sessions
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
	// dozod wraps the file key with the dataset's Transit key, bound to
	// the new file id, and keeps only the wrapped form.
	FileKey string `json:"file_key"`
	Nonce   string `json:"nonce"`
	// HashAlg is the piece hash the client computes: "blake3" (default,
	// storage.DefaultHashAlg) or "sha256". It goes into the manifest.
	HashAlg string `json:"hash_alg,omitempty"`
	// PresignSegments, when above 0, asks for PUT URLs of every piece of
	// the first PresignSegments segments with the answer (Upload.Presigned),
	// so a small file needs no presign batch of its own. It is cut to the
	// segments the file has and to the whole segments MaxPresignBatch
	// pieces hold, since the caller learns the layout only from the
	// answer; each piece passes the checks of the presign batch.
	PresignSegments int `json:"presign_segments,omitempty"`
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
	// Targets are the storage targets of the upload, fixed at its begin.
	Targets []Target `json:"targets"`
	// Placement is where each segment's pieces go: row s % len(Placement)
	// lists the IDs of the targets (among Targets) of segment s's pieces,
	// in piece order, data then parity. dozod presigns and commits a piece
	// only on its place.
	Placement [][]string            `json:"placement"`
	Committed []storage.SegmentMeta `json:"committed,omitempty"`
	ExpiresAt time.Time             `json:"expires_at"`
	State     string                `json:"state"`    // "open", "complete", "aborted", "expired"
	HashAlg   string                `json:"hash_alg"` // piece hash algorithm, as in the manifest
	// Presigned, when the begin asked for it (PresignSegments), holds PUT
	// URLs of every piece of segments 0..len(Presigned)/(K+M)-1: segment
	// by segment, piece by piece, each for the target Placement puts it
	// on, as a presign batch of those pieces in that order would answer.
	Presigned []PresignResponse `json:"presigned,omitempty"`
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
	// Commit, if set, commits one segment (typically the last) before the
	// upload completes, exactly as PUT /v1/uploads/{upload}/segments/{n}
	// with n = Commit.Index would: a segment that call refuses is refused
	// with the same error, and nothing completes. A repeat of a complete
	// that succeeded returns the file, as without it.
	Commit *storage.SegmentMeta `json:"commit,omitempty"`
}

type FetchResponse struct {
	File File `json:"file"`
	// Manifest is the head of the file's signed manifest (storage.Manifest
	// Head: ids, layout, size, hash algorithm, the whole manifest's MAC),
	// without segment entries, so the answer does not grow with the file.
	// The entries come with each fetch presign batch (FetchBatchResponse),
	// from the same manifest, whose MAC dozod verified.
	Manifest *storage.Manifest `json:"manifest"`
	// HeaderObject (base64) is the age header wrapped for the caller's
	// registered recipient, followed by the payload nonce.
	HeaderObject string   `json:"header_object"`
	Targets      []Target `json:"targets"`
	// Batch answers the fetch's optional body (a FetchBatchRequest): the
	// first presign batch, as POST /v1/fetches/{file}/presign-batch gives
	// it, so a small file needs no batch call of its own. Its Count is cut
	// to the segments from First on the file has and to the whole
	// segments MaxPresignBatch pieces hold, since the caller learns the
	// layout only from this answer.
	Batch *FetchBatchResponse `json:"batch,omitempty"`
}

// GrantRequest records one use period of the NBDC user register. A user
// with a current grant gets a new row that supersedes it (an extension);
// the old row stays in the history. A period starting after the user's
// running grant ends (From at least its Until + 1 day) is booked ahead
// instead: the running grant stays in force and the new one is
// GrantScheduled until its first day. One that overlaps it is refused.
type GrantRequest struct {
	From  string `json:"from,omitempty"` // YYYY-MM-DD (UTC), first day; default today
	Until string `json:"until"`          // YYYY-MM-DD, inclusive, in UTC
	// ApplicationID is the NBDC data-use application (J-DU + 6 digits);
	// required on controlled-access datasets.
	ApplicationID string `json:"application_id,omitempty"`
	Institution   string `json:"institution"` // required: a new institution needs a new grant
	Reason        string `json:"reason,omitempty"`
	// AllowUnknown grants to a user name dozod has not seen log in (and
	// so cannot check): someone who has not logged in yet. The grant is
	// Pending until that user's first request.
	AllowUnknown bool `json:"allow_unknown,omitempty"`
}

// Grant states.
const (
	GrantActive = "active"
	GrantFuture = "future" // from is after today
	// GrantScheduled is a future grant booked to follow the user's running
	// grant: it starts, with no action, the day after that one ends.
	GrantScheduled  = "scheduled"
	GrantExpired    = "expired" // until is before today
	GrantRevoked    = "revoked"
	GrantSuperseded = "superseded" // replaced by a later row (an extension)
)

// Grant is one row of the register.
type Grant struct {
	ID            int64      `json:"id"`
	Dataset       string     `json:"dataset"`
	User          string     `json:"user"`
	From          string     `json:"from"`  // YYYY-MM-DD
	Until         time.Time  `json:"until"` // the last day, 00:00 UTC
	ApplicationID string     `json:"application_id,omitempty"`
	Institution   string     `json:"institution,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	GrantedBy     string     `json:"granted_by"`
	GrantedAt     time.Time  `json:"granted_at"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokedBy     string     `json:"revoked_by,omitempty"`
	RevokeReason  string     `json:"revoke_reason,omitempty"`
	SupersededBy  int64      `json:"superseded_by,omitempty"`
	Follows       int64      `json:"follows,omitempty"` // the running grant a scheduled one follows
	State         string     `json:"state"`
	Active        bool       `json:"active"`
	// Pending: made with AllowUnknown for a user who has not logged in
	// since; it is bound to the user's identity at their first request.
	Pending bool `json:"pending,omitempty"`
	// LoginName is the name the grantee last logged in with, when it is
	// not User (a renamed account, or another login of the same person).
	LoginName string `json:"login_name,omitempty"`
}
