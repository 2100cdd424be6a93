// Package scrub checks that every piece of every file is present (light)
// and intact (deep), and with repair rebuilds bad pieces from parity and
// re-signs the file's manifest.
//
// A run is recorded in the catalog with its files; each finished file is
// recorded as it ends, so a run interrupted by a restart continues where
// it stopped. Every run executes as a job of package jobs (kind "scrub",
// one unfinished at a time by its lock key), which leases it to one dozod,
// resumes it after a restart and hands it over when its dozod dies. A run
// of several files may be cut into shards (shards.go), each a job any
// dozod takes, so several dozods check one run at once. A Runner executes
// one run (or shard) and nothing else; a Scheduler records runs with their
// jobs, starts scheduled ones (once across dozods), and its job handlers
// record how runs end.
//
// The package depends on narrow views only: the catalog calls it makes
// (Catalog), the storage targets, the MAC calls of the key service (Keys),
// and an audit event sink. It returns plain errors; the HTTP shell turns
// them into answers.
package scrub

import (
	"context"
	"log/slog"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
)

// Catalog is the catalog a scrub reads and records runs in;
// *catalog.Catalog implements it.
type Catalog interface {
	// Runs and their files.
	ScrubCandidates(ctx context.Context, datasetID, name string) ([]catalog.ScrubCandidate, error)
	CreateScrubRunJob(ctx context.Context, r catalog.ScrubRun, files []catalog.ScrubCandidate, j catalog.Job, shards ...catalog.Job) error
	ScrubRun(ctx context.Context, id string) (*catalog.ScrubRun, error)
	RunningScrub(ctx context.Context) (*catalog.ScrubRun, error)
	Job(ctx context.Context, id string) (*catalog.Job, error)
	UnfinishedJob(ctx context.Context, lockKey string) (*catalog.Job, error)
	LastScrubStart(ctx context.Context, trigger string, deepOnly bool) (time.Time, error)
	ScrubFiles(ctx context.Context, runID string) ([]catalog.ScrubFile, error)
	ScrubFileRange(ctx context.Context, runID string, from, to int) ([]catalog.ScrubFile, error)
	FinishScrubFile(ctx context.Context, runID string, seq int, result []byte, now time.Time) error
	EndScrubRun(ctx context.Context, id, state, errMsg string, now time.Time) error

	// The files checked, and what repair changes.
	File(ctx context.Context, id string) (*catalog.File, error)
	Dataset(ctx context.Context, id string) (*catalog.Dataset, error)
	ReplaceManifest(ctx context.Context, fileID string, old, manifest []byte, changed []storage.SegmentMeta) error
	MarkFileDamaged(ctx context.Context, fileID string) error
}

// Keys is the part of the key service a scrub uses: MACs under a
// dataset's Transit key, to verify manifests and sign repaired ones.
type Keys interface {
	HMAC(ctx context.Context, name string, data []byte) (string, error)
	VerifyHMAC(ctx context.Context, name string, data []byte, mac string) error
}

// Event is one audit event a scrub reports: a run resumed or ended, a file
// repaired or found damaged. Result is "ok" or "error".
type Event struct {
	Actor, Action, Object, Result, Detail string
}

// Options are a scrub's dependencies and scheduled-run settings.
type Options struct {
	Catalog Catalog
	Keys    Keys
	// Targets are every storage target, in the order repaired manifests
	// are copied to them.
	Targets []storage.Target
	// Record writes an audit event; an error is logged, and the scrub goes
	// on (as for every background event).
	Record func(ctx context.Context, e Event) error
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()

	// Scheduled runs: a light run every LightInterval, a deep one every
	// DeepInterval (0: never), with Repair and a read Rate in bytes/s
	// (0: no limit).
	LightInterval, DeepInterval time.Duration
	Repair                      bool
	Rate                        int64
	// Shards is how many shards a run of several files is cut into, each
	// a job any dozod takes (one at a time per dozod); 0 or 1: a run is
	// one job. At most MaxShards.
	Shards int
	// Tick is how often the scheduler looks for due runs, and for a
	// running run to settle with its job (default a minute). A scheduled
	// run's id is its slot's (SlotID).
	Tick time.Duration
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Record == nil {
		o.Record = func(context.Context, Event) error { return nil }
	}
	if o.Tick <= 0 {
		o.Tick = time.Minute
	}
}

// record writes an audit event, logging one that cannot be written.
func (o *Options) record(ctx context.Context, actor, action, object, result, detail string) {
	if err := o.Record(ctx, Event{Actor: actor, Action: action, Object: object, Result: result, Detail: detail}); err != nil {
		o.Logger.Error("audit event not recorded", "actor", actor, "action", action, "object", object, "result", result, "detail", detail, "error", err)
	}
}
