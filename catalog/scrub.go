package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

// Scrub run states and triggers.
const (
	ScrubRunning   = "running"
	ScrubDone      = "done"
	ScrubFailed    = "failed"
	ScrubCancelled = "cancelled"

	ScrubManual    = "manual"
	ScrubScheduled = "scheduled"
)

// ScrubRun is one scrub run: what it covers and how it ended.
type ScrubRun struct {
	ID        string
	Trigger   string // ScrubManual or ScrubScheduled
	StartedBy string // user, or "dozod" for scheduled runs
	DatasetID string // "" = every dataset
	FileName  string // "" = every file of the scope
	Deep      bool
	Repair    bool
	Rate      int64 // bytes/s, 0 = unlimited
	State     string
	StartedAt time.Time
	EndedAt   *time.Time
	Error     string
}

// ScrubFile is one file of a run, in run order; Result is the JSON the
// broker stored when the file was done (nil while pending).
type ScrubFile struct {
	Seq    int
	FileID string
	Pieces int64 // pieces to check
	Bytes  int64 // piece bytes to check
	DoneAt *time.Time
	Result []byte
}

// ScrubCandidate is an available file with what a scrub of it costs.
type ScrubCandidate struct {
	FileID, DatasetID, Name string
	Pieces, Bytes           int64
}

// ScrubCandidates lists the available files of datasetID (all datasets
// when empty), or just the one named name, with their piece counts and
// stored piece bytes as the dataset's layout gives them.
func (c *Catalog) ScrubCandidates(ctx context.Context, datasetID, name string) ([]ScrubCandidate, error) {
	q := `SELECT f.id, f.dataset_id, f.name, f.stored_size, d.k, d.m, d.segment_size
		FROM files f JOIN datasets d ON d.id = f.dataset_id WHERE f.state = 'available' AND ` + liveFile + ` AND d.deleted_at IS NULL`
	var args []any
	if datasetID != "" {
		q += ` AND f.dataset_id = ?`
		args = append(args, datasetID)
	}
	if name != "" {
		q += ` AND f.name = ?`
		args = append(args, name)
	}
	q += ` ORDER BY f.dataset_id, f.name`
	return queryAll(ctx, c, "scrub candidates", func(r rowScanner) (*ScrubCandidate, error) {
		var sc ScrubCandidate
		var stored, segSize int64
		var k, m int64
		if err := r.Scan(&sc.FileID, &sc.DatasetID, &sc.Name, &stored, &k, &m, &segSize); err != nil {
			return nil, err
		}
		full := stored / segSize
		sc.Pieces = (k + m) * full
		sc.Bytes = (k + m) * full * (segSize / k)
		if rest := stored % segSize; rest > 0 {
			sc.Pieces += k + m
			sc.Bytes += (k + m) * ((rest + k - 1) / k)
		}
		return &sc, nil
	}, q, args...)
}

// CreateScrubRun records a new running run and its files, in order. While
// another run is running it returns ErrState and records nothing.
func (c *Catalog) CreateScrubRun(ctx context.Context, r ScrubRun, files []ScrubCandidate) error {
	return c.tx(ctx, func(tx *sql.Tx) error { return createScrubRun(ctx, tx, r, files) })
}

// CreateScrubRunJob records a new running run, its files and the job that
// executes it (with the jobs of its shards, if it has more than one), in
// one transaction: either all exist or nothing does. A job id already
// taken, or a lock key an unfinished job holds, is ErrExists; another
// running run is ErrState.
func (c *Catalog) CreateScrubRunJob(ctx context.Context, r ScrubRun, files []ScrubCandidate, j Job, shards ...Job) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		for _, j := range append([]Job{j}, shards...) {
			if err := insertJob(ctx, tx, j); err != nil {
				return err
			}
		}
		return createScrubRun(ctx, tx, r, files)
	})
}

func createScrubRun(ctx context.Context, tx *sql.Tx, r ScrubRun, files []ScrubCandidate) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO scrub_runs(id, trigger, started_by, dataset_id, file_name, deep, repair, rate, state, started_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)`,
		r.ID, r.Trigger, r.StartedBy, r.DatasetID, r.FileName, b2i(r.Deep), b2i(r.Repair), r.Rate, ts(r.StartedAt))
	if isConstraint(err) {
		return fmt.Errorf("another scrub is running: %w", ErrState)
	}
	if err != nil {
		return fmt.Errorf("catalog: create scrub run: %w", err)
	}
	for i, f := range files {
		if _, err := tx.ExecContext(ctx, `INSERT INTO scrub_files(run_id, seq, file_id, pieces, bytes) VALUES (?, ?, ?, ?, ?)`,
			r.ID, i, f.FileID, f.Pieces, f.Bytes); err != nil {
			return fmt.Errorf("catalog: create scrub run: %w", err)
		}
	}
	return nil
}

const scrubRunCols = `id, trigger, started_by, dataset_id, file_name, deep, repair, rate, state, started_at, ended_at, error`

func scanScrubRun(s rowScanner) (*ScrubRun, error) {
	var r ScrubRun
	var started int64
	var ended sql.NullInt64
	if err := s.Scan(&r.ID, &r.Trigger, &r.StartedBy, &r.DatasetID, &r.FileName, &r.Deep, &r.Repair, &r.Rate, &r.State, &started, &ended, &r.Error); err != nil {
		return nil, err
	}
	r.StartedAt, r.EndedAt = fromTS(started), fromNullTS(ended)
	return &r, nil
}

// ScrubRun returns one run, or ErrNotFound.
func (c *Catalog) ScrubRun(ctx context.Context, id string) (*ScrubRun, error) {
	r, err := scanScrubRun(c.db.QueryRowContext(ctx, `SELECT `+scrubRunCols+` FROM scrub_runs WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "scrub run "+id)
	}
	return r, nil
}

// RunningScrub returns the running run, or ErrNotFound.
func (c *Catalog) RunningScrub(ctx context.Context) (*ScrubRun, error) {
	r, err := scanScrubRun(c.db.QueryRowContext(ctx, `SELECT `+scrubRunCols+` FROM scrub_runs WHERE state = 'running'`))
	if err != nil {
		return nil, notFound(err, "running scrub")
	}
	return r, nil
}

// ScrubRuns returns the most recent runs, newest first.
func (c *Catalog) ScrubRuns(ctx context.Context, limit int) ([]ScrubRun, error) {
	return queryAll(ctx, c, "scrub runs", scanScrubRun,
		`SELECT `+scrubRunCols+` FROM scrub_runs ORDER BY started_at DESC, id LIMIT ?`, limit)
}

// LastScrubStart returns when the latest run with the given trigger
// started (deepOnly: only deep runs count), or the zero time.
func (c *Catalog) LastScrubStart(ctx context.Context, trigger string, deepOnly bool) (time.Time, error) {
	var t sql.NullInt64
	err := c.db.QueryRowContext(ctx, `SELECT max(started_at) FROM scrub_runs WHERE trigger = ? AND (deep = 1 OR NOT ?)`,
		trigger, deepOnly).Scan(&t)
	if err != nil {
		return time.Time{}, fmt.Errorf("catalog: last scrub: %w", err)
	}
	if !t.Valid {
		return time.Time{}, nil
	}
	return fromTS(t.Int64), nil
}

// ScrubFiles returns a run's files in order.
func (c *Catalog) ScrubFiles(ctx context.Context, runID string) ([]ScrubFile, error) {
	return c.scrubFiles(ctx, `WHERE run_id = ?`, runID)
}

// ScrubFileRange returns a run's files from..to-1 (by Seq) in order: the
// part of the run one shard checks.
func (c *Catalog) ScrubFileRange(ctx context.Context, runID string, from, to int) ([]ScrubFile, error) {
	return c.scrubFiles(ctx, `WHERE run_id = ? AND seq >= ? AND seq < ?`, runID, from, to)
}

func (c *Catalog) scrubFiles(ctx context.Context, where string, args ...any) ([]ScrubFile, error) {
	return queryAll(ctx, c, "scrub files", func(r rowScanner) (*ScrubFile, error) {
		var f ScrubFile
		var done sql.NullInt64
		var result string
		if err := r.Scan(&f.Seq, &f.FileID, &f.Pieces, &f.Bytes, &done, &result); err != nil {
			return nil, err
		}
		f.DoneAt = fromNullTS(done)
		if result != "" {
			f.Result = []byte(result)
		}
		return &f, nil
	}, `SELECT seq, file_id, pieces, bytes, done_at, result FROM scrub_files `+where+` ORDER BY seq`, args...)
}

// FinishScrubFile stores the result of one file of a running run.
func (c *Catalog) FinishScrubFile(ctx context.Context, runID string, seq int, result []byte, now time.Time) error {
	res, err := c.db.ExecContext(ctx, `UPDATE scrub_files SET done_at = ?, result = ?
		WHERE run_id = ? AND seq = ? AND run_id IN (SELECT id FROM scrub_runs WHERE state = 'running')`,
		ts(now), string(result), runID, seq)
	if err != nil {
		return fmt.Errorf("catalog: finish scrub file: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("scrub run %s file %d: %w", runID, seq, ErrState)
	}
	return nil
}

// EndScrubRun ends a running run as done, failed or cancelled. A run that
// is not running is ErrState.
func (c *Catalog) EndScrubRun(ctx context.Context, id, state, errMsg string, now time.Time) error {
	if state != ScrubDone && state != ScrubFailed && state != ScrubCancelled {
		return fmt.Errorf("catalog: cannot end a scrub run as %q", state)
	}
	res, err := c.db.ExecContext(ctx, `UPDATE scrub_runs SET state = ?, error = ?, ended_at = ? WHERE id = ? AND state = 'running'`,
		state, errMsg, ts(now), id)
	if err != nil {
		return fmt.Errorf("catalog: end scrub run: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("scrub run %s is not running: %w", id, ErrState)
	}
	return nil
}

// ReplaceManifest swaps an available file's signed manifest for a repaired
// one, and the segment rows the repair changed, in one transaction that
// first checks the stored manifest is still old (compare-and-swap): a
// concurrent change makes it ErrState and changes nothing.
func (c *Catalog) ReplaceManifest(ctx context.Context, fileID string, old, manifest []byte, changed []storage.SegmentMeta) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE files SET manifest = ? WHERE id = ? AND state = 'available' AND manifest = ?`,
			manifest, fileID, old)
		if err != nil {
			return fmt.Errorf("catalog: replace manifest: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("file %s is not available with the expected manifest: %w", fileID, ErrState)
		}
		for _, s := range changed {
			meta, err := json.Marshal(s)
			if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `UPDATE segments SET meta = ? WHERE file_id = ? AND idx = ?`, string(meta), fileID, s.Index)
			if err != nil {
				return fmt.Errorf("catalog: replace segment: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("file %s has no segment %d: %w", fileID, s.Index, ErrState)
			}
		}
		return nil
	})
}

// MarkFileDamaged marks an available file damaged: a scrub found a segment
// with more lost pieces than parity covers. Fetch then refuses it.
func (c *Catalog) MarkFileDamaged(ctx context.Context, fileID string) error {
	res, err := c.db.ExecContext(ctx, `UPDATE files SET state = 'damaged' WHERE id = ? AND state IN ('available', 'damaged')`, fileID)
	if err != nil {
		return fmt.Errorf("catalog: mark damaged: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("file %s: %w", fileID, ErrState)
	}
	return nil
}
