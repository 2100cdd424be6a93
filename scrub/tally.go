package scrub

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
)

// Result is the tally of a run's finished files.
type Result struct {
	// Summary counts files, pieces and findings; Seconds and BytesPerSec
	// are left to the caller, who knows the run's times.
	Summary api.ScrubSummary `json:"summary"`
	// Findings are at most api.MaxScrubFindings (when asked for);
	// FindingsTruncated says more were found (Summary counts them all).
	Findings          []api.ScrubFinding       `json:"findings,omitempty"`
	FindingsTruncated bool                     `json:"findings_truncated,omitempty"`
	Unrecoverable     []api.ScrubUnrecoverable `json:"unrecoverable,omitempty"`
	// Errors are the files that could not be scrubbed, one line each.
	Errors []string `json:"errors,omitempty"`
}

// Tally adds up the FileResults the catalog holds for a run's files;
// withFindings keeps the findings too. A result that does not decode is an
// error, not a file skipped.
func Tally(files []catalog.ScrubFile, withFindings bool) (Result, error) {
	var out Result
	sm := &out.Summary
	sm.Files = len(files)
	for _, f := range files {
		sm.PiecesTotal += f.Pieces
		sm.BytesTotal += f.Bytes
		if f.DoneAt == nil {
			continue
		}
		sm.FilesDone++
		var res FileResult
		if err := json.Unmarshal(f.Result, &res); err != nil {
			return Result{}, fmt.Errorf("file %s: %w", f.FileID, err)
		}
		sm.Segments += res.Segments
		sm.Pieces += res.Pieces
		sm.Bytes += res.Bytes
		if res.Error != "" {
			sm.FileErrors++
			out.Errors = append(out.Errors, fmt.Sprintf("%s/%s (%s): %s", res.Dataset, res.Name, res.FileID, res.Error))
		}
		if res.Damaged {
			sm.DamagedFiles++
		}
		sm.Unrecoverable += len(res.Unrecoverable)
		out.Unrecoverable = append(out.Unrecoverable, res.Unrecoverable...)
		for _, fd := range res.Findings {
			sm.Found++
			switch fd.Kind {
			case api.FindingMissing:
				sm.Missing++
			case api.FindingSize:
				sm.Size++
			case api.FindingHash:
				sm.Hash++
			case api.FindingUnreachable:
				sm.Unreachable++
			}
			switch fd.Action {
			case api.ActionRepaired:
				sm.Repaired++
			case api.ActionDeferred:
				sm.Deferred++
			}
			if withFindings {
				if len(out.Findings) < api.MaxScrubFindings {
					out.Findings = append(out.Findings, fd)
				} else {
					out.FindingsTruncated = true
				}
			}
		}
	}
	return out, nil
}

// Describe says in one line what a run covers, for audit events and logs.
func Describe(r catalog.ScrubRun) string {
	mode := "light"
	if r.Deep {
		mode = "deep"
	}
	if r.Repair {
		mode += " repair"
	}
	scope := "all datasets"
	if r.DatasetID != "" {
		scope = "dataset " + r.DatasetID
		if r.FileName != "" {
			scope += " file " + r.FileName
		}
	}
	if r.Rate > 0 {
		scope += fmt.Sprintf(", rate %d B/s", r.Rate)
	}
	return r.Trigger + " " + mode + " scrub of " + scope
}

// counters are a Runner's totals since it was made, for metrics.
type counters struct {
	mu            sync.Mutex
	runs          int64
	pieces, bytes int64
	found         map[string]int64 // by kind
	repaired      int64
	unrecoverable int64
	lastEnd       time.Time
	lastState     string
}

func (t *counters) countFile(res *FileResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pieces += res.Pieces
	t.bytes += res.Bytes
	for _, f := range res.Findings {
		t.found[f.Kind]++
		if f.Action == api.ActionRepaired {
			t.repaired++
		}
	}
	t.unrecoverable += int64(len(res.Unrecoverable))
}

func (t *counters) countEnd(state string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runs++
	t.lastEnd, t.lastState = at, state
}

// Snapshot is a read-only view of scrub progress and findings for the
// metrics endpoint. It holds counts only, no file names or keys.
type Snapshot struct {
	Running      bool
	RunID        string
	Deep, Repair bool
	FilesTotal   int
	FilesDone    int
	// Pieces and bytes checked by the running run's current file so far
	// are included in the totals below.
	PiecesChecked int64 // running run
	BytesChecked  int64 // running run

	// Since dozod started:
	RunsCompleted      int64
	PiecesCheckedTotal int64
	BytesCheckedTotal  int64
	FindingsTotal      map[string]int64 // by kind: missing, size, hash, unreachable
	RepairedTotal      int64
	UnrecoverableTotal int64 // segments
	LastRunEnd         time.Time
	LastRunState       string
}
