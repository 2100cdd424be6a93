package api

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Scrub endpoints (admin only):
//
//	POST   /v1/scrubs          ScrubRequest -> ScrubRun (202; 409 while another runs)
//	GET    /v1/scrubs                       -> []ScrubRun (recent, newest first; no findings)
//	GET    /v1/scrubs/{id}                  -> ScrubRun (progress, summary, findings)
//	DELETE /v1/scrubs/{id}                  -> ScrubRun (cancel a running scrub)

// ScrubRequest starts a scrub. With neither Dataset nor File every
// available file is scrubbed; File needs Dataset.
type ScrubRequest struct {
	Dataset string `json:"dataset,omitempty"`
	File    string `json:"file,omitempty"` // a file name in Dataset
	// Deep reads every piece and checks its hash; otherwise only existence
	// and size are checked (no piece body is read).
	Deep bool `json:"deep,omitempty"`
	// Repair rebuilds bad pieces from parity and updates the manifest.
	Repair bool `json:"repair,omitempty"`
	// RateBytesPerSec bounds the read rate of a deep scrub (of each dozod
	// checking one of its shards); 0 = no limit.
	RateBytesPerSec int64 `json:"rate_bytes_per_sec,omitempty"`
}

// Scrub run states.
const (
	ScrubRunning   = "running"
	ScrubDone      = "done"
	ScrubFailed    = "failed"
	ScrubCancelled = "cancelled"
)

// Finding kinds and actions.
const (
	FindingMissing     = "missing"
	FindingSize        = "size"
	FindingHash        = "hash"
	FindingUnreachable = "unreachable"

	ActionFound         = "found"         // reported only (no --repair)
	ActionRepaired      = "repaired"      // rebuilt and stored
	ActionDeferred      = "deferred"      // could not be repaired now (see Detail)
	ActionUnrecoverable = "unrecoverable" // its segment lost more than m pieces
)

// ScrubFinding is one bad piece.
type ScrubFinding struct {
	Dataset string `json:"dataset"`
	FileID  string `json:"file_id"`
	File    string `json:"file"` // name
	Segment int    `json:"segment"`
	Piece   int    `json:"piece"`
	Target  string `json:"target"`
	Kind    string `json:"kind"`
	Action  string `json:"action"`
	// MovedTo is the target a repaired piece now lives on when it is not
	// its old one.
	MovedTo string `json:"moved_to,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// ScrubUnrecoverable is a segment with more than m lost pieces; its file is
// marked damaged.
type ScrubUnrecoverable struct {
	Dataset string `json:"dataset"`
	FileID  string `json:"file_id"`
	File    string `json:"file"`
	Segment int    `json:"segment"`
	Pieces  []int  `json:"pieces"`
}

// ScrubSummary counts a run's work and findings.
type ScrubSummary struct {
	Files         int   `json:"files"`      // in the run
	FilesDone     int   `json:"files_done"` // checked so far
	PiecesTotal   int64 `json:"pieces_total"`
	BytesTotal    int64 `json:"bytes_total"`
	Segments      int64 `json:"segments"` // checked
	Pieces        int64 `json:"pieces"`   // checked
	Bytes         int64 `json:"bytes"`    // piece bytes read (deep) or size-checked (light)
	Found         int   `json:"found"`    // bad pieces
	Missing       int   `json:"missing"`
	Size          int   `json:"size"`
	Hash          int   `json:"hash"`
	Unreachable   int   `json:"unreachable"`
	Repaired      int   `json:"repaired"`
	Deferred      int   `json:"deferred"`
	Unrecoverable int   `json:"unrecoverable"` // segments
	DamagedFiles  int   `json:"damaged_files"`
	FileErrors    int   `json:"file_errors"` // files that could not be scrubbed (see Errors)
	// Seconds is the run's duration so far; BytesPerSec its throughput.
	Seconds     float64 `json:"seconds"`
	BytesPerSec float64 `json:"bytes_per_sec"`
}

// ScrubRun is one scrub run.
type ScrubRun struct {
	ID        string     `json:"id"`
	State     string     `json:"state"`
	Trigger   string     `json:"trigger"` // "manual" or "scheduled"
	StartedBy string     `json:"started_by"`
	Dataset   string     `json:"dataset,omitempty"`
	File      string     `json:"file,omitempty"`
	Deep      bool       `json:"deep"`
	Repair    bool       `json:"repair"`
	Rate      int64      `json:"rate_bytes_per_sec,omitempty"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	Error     string     `json:"error,omitempty"`
	// Current is the file being checked (running runs).
	Current string       `json:"current,omitempty"`
	Summary ScrubSummary `json:"summary"`
	// Findings (GET /v1/scrubs/{id} only) are at most MaxScrubFindings;
	// FindingsTruncated says more were found (Summary counts them all).
	Findings          []ScrubFinding       `json:"findings,omitempty"`
	FindingsTruncated bool                 `json:"findings_truncated,omitempty"`
	Unrecoverable     []ScrubUnrecoverable `json:"unrecoverable,omitempty"`
	// Errors are files that could not be scrubbed, one line each.
	Errors []string `json:"errors,omitempty"`
	// Shards are the parts of a run cut into shards, each a job any dozod
	// takes (none for a run in one job).
	Shards []ScrubShard `json:"shards,omitempty"`
}

// ScrubShard is one part of a run's files, checked by one job.
type ScrubShard struct {
	Shard     int    `json:"shard"` // from 1
	Of        int    `json:"of"`
	Job       string `json:"job,omitempty"`   // its job's id ("" if its record is gone)
	State     string `json:"state,omitempty"` // its job's state (JobQueued, ...)
	Files     int    `json:"files"`
	FilesDone int    `json:"files_done"`
	// Owner is the dozod running it, or the one that finished it.
	Owner    string `json:"owner,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
}

// MaxScrubFindings bounds the findings one ScrubRun carries.
const MaxScrubFindings = 10000

// ParseRate parses a byte rate: "200MiB/s", "200MiB", "1.5GB/s", "0" (no
// limit). Units: B, KiB, MiB, GiB, TiB (binary) and kB, MB, GB, TB
// (decimal); case is ignored.
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "/s")
	if t == "" {
		return 0, errors.New("empty rate")
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult, t = u.mult, strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("bad rate %q: want bytes per second like 200MiB/s, 1GB/s or 0 for no limit", s)
	}
	return int64(f * mult), nil
}
