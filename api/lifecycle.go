package api

import "time"

// Dataset lifecycle endpoints (the dataset's custodian or an admin):
//
//	POST /v1/datasets/{ds}/rotate-key                       -> RotateKeyResponse
//	POST /v1/datasets/{ds}/delete    DeleteDatasetRequest   -> DeletionStatus
//	POST /v1/datasets/{ds}/undelete                         -> DeletionStatus
//	GET  /v1/datasets/{ds}/deletion-report                  -> DeletionReport
//
// Rules (matrix rows in broker/matrix_test.go): dataset.rotate-key and
// dataset.delete: custodian or admin, refused (409) on a dataset an
// administrator froze; dataset.undelete and dataset.deletion-report:
// custodian or admin, also when frozen. The first delete schedules the
// deletion (202): the dataset is hidden from everyone at once (404 for
// all but its custodians and admins, who get 409 saying when it runs) and
// the deletion runs when the grace period ends, by dozod itself or at a
// delete repeated from then on (200, with the report). undelete cancels a
// deletion that has not begun to run.
// Both POSTs that change data are resumable: repeating one after an
// interruption continues where it stopped.
//
// What they achieve, precisely: rotate-key makes new uploads and new
// header wraps use a new key version and retires the old versions, so the
// stored headers open only under the new one; it does not re-encrypt
// payloads, and it cannot take back a file key a grantee already obtained.
// delete destroys the dataset key in Vault and the stored objects; copies
// grantees already fetched (plaintext or file keys) and Vault backups or
// snapshots taken before the key was destroyed are outside its reach.

// RotateKeyResponse reports a finished key rotation.
type RotateKeyResponse struct {
	Dataset string `json:"dataset"`
	Key     string `json:"key"` // the Transit key name (never key material)
	// FromVersion is the newest version before the rotation; ToVersion the
	// version every header and manifest is now under, and the new
	// min_decryption_version.
	FromVersion int  `json:"from_version"`
	ToVersion   int  `json:"to_version"`
	Files       int  `json:"files"`     // files whose headers are in use
	Rewrapped   int  `json:"rewrapped"` // headers/manifests rewritten by this rotation (all runs)
	Resumed     bool `json:"resumed"`
	// AbortedUploads are uploads begun in the instant between the rotation
	// and the raise of min_decryption_version whose header could no longer
	// be rewrapped; their owners must upload again.
	AbortedUploads []string  `json:"aborted_uploads,omitempty"`
	StartedAt      time.Time `json:"started_at"`
	FinishedAt     time.Time `json:"finished_at"`
}

// DeleteDatasetRequest confirms a deletion: Confirm must repeat the
// dataset id.
type DeleteDatasetRequest struct {
	Confirm string `json:"confirm"`
}

// Deletion states.
const (
	// DeletionScheduled: the dataset is hidden; the deletion runs from
	// RunsAt on and can be cancelled until then.
	DeletionScheduled = "scheduled"
	// DeletionRunning: a run began and was interrupted; repeat the delete
	// (or let dozod) finish it. It can no longer be cancelled.
	DeletionRunning = "running"
	// DeletionComplete: every object and the key are gone; Report is set.
	DeletionComplete = "complete"
	// DeletionCancelled: the deletion was cancelled and the dataset is
	// visible again, as it was (undelete's answer).
	DeletionCancelled = "cancelled"
)

// DeletionStatus is where a dataset's deletion stands.
type DeletionStatus struct {
	Dataset string `json:"dataset"`
	State   string `json:"state"` // a Deletion* constant
	// ScheduledBy asked for the deletion at ScheduledAt, when the dataset
	// was hidden; it runs from RunsAt on (the end of the grace period).
	ScheduledBy string          `json:"scheduled_by"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	RunsAt      time.Time       `json:"runs_at"`
	Report      *DeletionReport `json:"report,omitempty"` // when complete
}

// DeletionReport is the evidence of a dataset's deletion, meant to be
// attached to the NBDC data-use termination report.
type DeletionReport struct {
	Dataset string `json:"dataset"`
	Title   string `json:"title"`
	Status  string `json:"status"` // "complete"
	// StartedBy asked for the deletion at StartedAt (the dataset was hidden
	// then); after the grace period it ran from RunStartedAt.
	StartedBy    string    `json:"started_by"`
	StartedAt    time.Time `json:"started_at"`
	RunStartedAt time.Time `json:"run_started_at"`
	// FinishedBy ran the deletion to its end (the same person unless it
	// was resumed by someone else).
	FinishedBy string          `json:"finished_by"`
	FinishedAt time.Time       `json:"finished_at"`
	Files      []DeletedFile   `json:"files"`
	Objects    []DeletedObject `json:"objects"`
	Targets    []string        `json:"targets"` // every target that was purged
	Key        DestroyedKey    `json:"key"`
	// Statement is the plain-language summary for the termination report:
	// what was destroyed, and what a deletion cannot reach.
	Statement string `json:"statement"`
}

// DeletedFile is one file of a deleted dataset.
type DeletedFile struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	MD5    string `json:"md5,omitempty"`
	State  string `json:"state"` // at deletion: available, damaged, or aborted (never completed)
}

// DeletedObject is one object version removed from storage.
type DeletedObject struct {
	Target       string    `json:"target"`
	Key          string    `json:"key"`
	VersionID    string    `json:"version_id,omitempty"`
	Size         int64     `json:"size"`
	DeleteMarker bool      `json:"delete_marker,omitempty"`
	DeletedAt    time.Time `json:"deleted_at"`
}

// DestroyedKey describes the Transit key that was destroyed.
type DestroyedKey struct {
	Name        string    `json:"name"`
	Versions    int       `json:"versions"` // versions 1..Versions all destroyed
	DestroyedAt time.Time `json:"destroyed_at"`
}
