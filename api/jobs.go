package api

import (
	"encoding/json"
	"time"
)

// Job endpoints (an admin sees every job; a custodian the jobs of their
// datasets; anyone else none):
//
//	GET    /v1/jobs       ?dataset=&kind=&state=&limit= -> []Job (newest first)
//	GET    /v1/jobs/{id}                                -> Job
//	DELETE /v1/jobs/{id}                                -> Job (cancel: a queued job ends at once,
//	                                                       a running one stops at its next step)

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Job is one long-running job of dozod: a key rotation, a dataset
// deletion, an upload expiry round, a scrub.
type Job struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Dataset string `json:"dataset,omitempty"`
	State   string `json:"state"`

	Progress JobProgress `json:"progress"`

	// Owner is the dozod replica running the job, until LeaseUntil unless
	// it renews; another replica takes the job over after that.
	Owner      string     `json:"owner,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	Attempts   int        `json:"attempts"`

	RequestedBy     string          `json:"requested_by"`
	CreatedAt       time.Time       `json:"created_at"`
	StartedAt       *time.Time      `json:"started_at,omitempty"`
	EndedAt         *time.Time      `json:"ended_at,omitempty"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
	Error           string          `json:"error,omitempty"`
	Params          json.RawMessage `json:"params,omitempty"`
	Result          json.RawMessage `json:"result,omitempty"`
}

// JobProgress is how far a job got: Done of Total units (Total 0:
// unknown) and a short note.
type JobProgress struct {
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Note  string `json:"note,omitempty"`
}

// Finished reports whether the job has ended.
func (j *Job) Finished() bool {
	return j.State == JobDone || j.State == JobFailed || j.State == JobCancelled
}
