package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Job states. Queued and running are unfinished; the others are final.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Job is one long-running job: what it does (Kind, DatasetID, Params),
// who runs it until when (Owner, LeaseUntil), how far it got and how it
// ended.
type Job struct {
	ID        string
	Kind      string
	DatasetID string // "" if the job is not about one dataset
	// LockKey names what the job must have to itself: at most one
	// unfinished job per non-empty key.
	LockKey string
	Params  []byte // JSON

	State         string
	ProgressDone  int64
	ProgressTotal int64 // 0: unknown
	ProgressNote  string

	Owner      string     // the dozod running it; "" unless running
	LeaseUntil *time.Time // the owner's claim ends then unless renewed
	Attempts   int        // how often it was claimed

	RequestedBy     string
	CreatedAt       time.Time
	StartedAt       *time.Time // first claimed
	EndedAt         *time.Time
	CancelRequested bool
	Error           string
	Result          []byte // JSON, once done
}

// Finished reports whether the job is in a final state.
func (j *Job) Finished() bool {
	return j.State == JobDone || j.State == JobFailed || j.State == JobCancelled
}

const jobCols = `id, kind, dataset_id, lock_key, params, state, progress_done, progress_total, progress_note,
	"owner", lease_until, attempts, requested_by, created_at, started_at, ended_at, cancel_requested, error, result`

func scanJob(s rowScanner) (*Job, error) {
	var j Job
	var params string
	var lease, started, ended sql.NullInt64
	var created int64
	var result sql.NullString
	if err := s.Scan(&j.ID, &j.Kind, &j.DatasetID, &j.LockKey, &params, &j.State, &j.ProgressDone, &j.ProgressTotal, &j.ProgressNote,
		&j.Owner, &lease, &j.Attempts, &j.RequestedBy, &created, &started, &ended, &j.CancelRequested, &j.Error, &result); err != nil {
		return nil, err
	}
	j.Params = []byte(params)
	j.LeaseUntil, j.StartedAt, j.EndedAt = fromNullTS(lease), fromNullTS(started), fromNullTS(ended)
	j.CreatedAt = fromTS(created)
	if result.Valid {
		j.Result = []byte(result.String)
	}
	return &j, nil
}

// InsertJob records a new queued job. A job whose lock key an unfinished
// job holds, or whose id is taken, is refused with ErrExists, and nothing
// is recorded.
func (c *Catalog) InsertJob(ctx context.Context, j Job) error {
	return c.tx(ctx, func(tx *sql.Tx) error { return insertJob(ctx, tx, j) })
}

// insertJob is InsertJob inside tx, for records made together with their
// job (a scrub run and its files).
func insertJob(ctx context.Context, tx *sql.Tx, j Job) error {
	if j.ID == "" || j.Kind == "" || j.RequestedBy == "" {
		return errors.New("catalog: a job needs an id, a kind and who asked for it")
	}
	params := string(j.Params)
	if params == "" {
		params = "{}"
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO jobs(id, kind, dataset_id, lock_key, params, state, requested_by, created_at)
		VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)`, j.ID, j.Kind, j.DatasetID, j.LockKey, params, j.RequestedBy, ts(j.CreatedAt))
	if isConstraint(err) {
		return fmt.Errorf("job %s %s: the id is taken or an unfinished job holds %q: %w", j.Kind, j.ID, j.LockKey, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("catalog: insert job: %w", err)
	}
	return nil
}

// PruneJobs deletes the jobs that ended before before and returns how
// many. Unfinished jobs are never deleted. What a job did stays in the
// audit chain (and a scrub's findings in its run record).
func (c *Catalog) PruneJobs(ctx context.Context, before time.Time) (int64, error) {
	res, err := c.db.ExecContext(ctx, `DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND ended_at < ?`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("catalog: prune jobs: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// claimable is the condition under which a job may be claimed: queued, or
// running under a lease that has expired (its owner died or lost the
// catalog). The second ? is the claim time.
const claimable = `(state = 'queued' OR (state = 'running' AND lease_until < ?))`

// ClaimJob gives owner the oldest claimable job of one of kinds (id, if
// not empty: that job only) under a lease until leaseUntil, and returns it
// as claimed. The claim is one conditional UPDATE, so of several dozods
// claiming at once exactly one gets each job. A job taken over with a
// cancel requested is claimed too, for its new owner to end it.
// ErrNotFound: none to claim.
func (c *Catalog) ClaimJob(ctx context.Context, owner string, kinds []string, id string, now, leaseUntil time.Time) (*Job, error) {
	if owner == "" || len(kinds) == 0 {
		return nil, errors.New("catalog: claiming a job needs an owner and kinds")
	}
	// The kind is compared as an expression (kind || ''), which no index
	// serves: SQLite then finds the candidates by their state (jobs_state,
	// the few unfinished jobs) rather than by kind (jobs_kind, every job
	// of the kind kept).
	q := `SELECT id FROM jobs WHERE ` + claimable + ` AND kind || '' IN (?` + strings.Repeat(", ?", len(kinds)-1) + `)`
	args := []any{ts(now)}
	for _, k := range kinds {
		args = append(args, k)
	}
	if id != "" {
		q += ` AND id = ?`
		args = append(args, id)
	}
	q += ` ORDER BY created_at, id LIMIT 8`
	for round := 0; round < 3; round++ {
		ids, err := queryAll(ctx, c, "claimable jobs", func(r rowScanner) (*string, error) {
			var id string
			return &id, r.Scan(&id)
		}, q, args...)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("claimable job: %w", ErrNotFound)
		}
		for _, cand := range ids {
			var n int64
			err := c.tx(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'running', "owner" = ?, lease_until = ?, attempts = attempts + 1,
					started_at = coalesce(started_at, ?) WHERE id = ? AND `+claimable,
					owner, ts(leaseUntil), ts(now), cand, ts(now))
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("catalog: claim job: %w", err)
			}
			if n == 1 {
				return c.Job(ctx, cand)
			}
			// Another dozod took it first: try the next.
		}
	}
	return nil, fmt.Errorf("claimable job (all taken by others meanwhile): %w", ErrNotFound)
}

// ownedBy is the condition that the job is still running under owner.
const ownedBy = `id = ? AND "owner" = ? AND state = 'running'`

// RenewJob extends owner's lease on a running job to leaseUntil and
// reports whether a cancel was requested. ErrState: owner no longer holds
// the job (it was taken over after its lease expired, or finished).
func (c *Catalog) RenewJob(ctx context.Context, id, owner string, leaseUntil time.Time) (cancel bool, err error) {
	err = c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE `+ownedBy, ts(leaseUntil), id, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(err, fmt.Errorf("job %s not held by %s: %w", id, owner, ErrState))
		}
		return tx.QueryRowContext(ctx, `SELECT cancel_requested FROM jobs WHERE id = ?`, id).Scan(&cancel)
	})
	if err != nil && !errors.Is(err, ErrState) {
		err = fmt.Errorf("catalog: renew job: %w", err)
	}
	return cancel, err
}

// JobProgress records how far owner's running job got. ErrState: owner
// no longer holds it.
func (c *Catalog) JobProgress(ctx context.Context, id, owner string, done, total int64, note string) error {
	return c.ownedUpdate(ctx, "job progress", `UPDATE jobs SET progress_done = ?, progress_total = ?, progress_note = ? WHERE `+ownedBy,
		max(done, 0), max(total, 0), note, id, owner)
}

// FinishJob ends owner's running job in state (JobDone, JobFailed or
// JobCancelled) with its error text or result. ErrState: owner no longer
// holds it, and nothing changed.
func (c *Catalog) FinishJob(ctx context.Context, id, owner, state, errText string, result []byte, now time.Time) error {
	switch state {
	case JobDone, JobFailed, JobCancelled:
	default:
		return fmt.Errorf("catalog: finish job in state %q", state)
	}
	var res any
	if result != nil {
		res = string(result)
	}
	return c.ownedUpdate(ctx, "finish job", `UPDATE jobs SET state = ?, error = ?, result = ?, ended_at = ?, "owner" = '', lease_until = NULL WHERE `+ownedBy,
		state, errText, res, ts(now), id, owner)
}

// ReleaseJob puts owner's running job back in the queue, for another
// claim to resume it at once (a dozod shutting down). ErrState: owner no
// longer holds it.
func (c *Catalog) ReleaseJob(ctx context.Context, id, owner string) error {
	return c.ownedUpdate(ctx, "release job", `UPDATE jobs SET state = 'queued', "owner" = '', lease_until = NULL WHERE `+ownedBy, id, owner)
}

func (c *Catalog) ownedUpdate(ctx context.Context, what, q string, args ...any) error {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(err, ErrState)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrState) {
		return fmt.Errorf("catalog: %s: %w", what, err)
	}
	if err != nil {
		return fmt.Errorf("%s: job not held: %w", what, err)
	}
	return nil
}

// CancelJob asks for a job to end: a queued job is cancelled at once, a
// running one is marked and its owner stops it (RenewJob tells it). It
// returns the job as it is then. ErrState: the job has already ended.
func (c *Catalog) CancelJob(ctx context.Context, id string, now time.Time) (*Job, error) {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ?`, id).Scan(&state); err != nil {
			return notFound(err, "job "+id)
		}
		var err error
		switch state {
		case JobQueued:
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', cancel_requested = 1, ended_at = ? WHERE id = ?`, ts(now), id)
		case JobRunning:
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested = 1 WHERE id = ?`, id)
		default:
			return fmt.Errorf("job %s is %s: %w", id, state, ErrState)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrState) || errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("catalog: cancel job: %w", err)
	}
	return c.Job(ctx, id)
}

// Job returns one job.
func (c *Catalog) Job(ctx context.Context, id string) (*Job, error) {
	j, err := scanJob(c.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "job "+id)
	}
	return j, nil
}

// UnfinishedJob returns the queued or running job holding lockKey.
func (c *Catalog) UnfinishedJob(ctx context.Context, lockKey string) (*Job, error) {
	j, err := scanJob(c.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs
		WHERE lock_key = ? AND lock_key <> '' AND state IN ('queued', 'running')`, lockKey))
	if err != nil {
		return nil, notFound(err, "unfinished job "+lockKey)
	}
	return j, nil
}

// JobFilter selects jobs; empty fields select all.
type JobFilter struct {
	DatasetIDs []string // only jobs of these datasets (nil: any, also none)
	// CustodianOf, if set, keeps only the jobs of datasets this principal
	// is a custodian of (also while a deletion hides the dataset).
	CustodianOf *Principal
	Kind        string
	State       string
	Limit       int // newest first; 0: 100
}

// Jobs lists jobs, newest first. Every filter applies before the limit,
// so a caller gets up to Limit of the jobs it selects.
func (c *Catalog) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q := `SELECT ` + jobCols + ` FROM jobs WHERE 1 = 1`
	var args []any
	if f.DatasetIDs != nil {
		if len(f.DatasetIDs) == 0 {
			return nil, nil
		}
		q += ` AND dataset_id IN (?` + strings.Repeat(", ?", len(f.DatasetIDs)-1) + `)`
		for _, id := range f.DatasetIDs {
			args = append(args, id)
		}
	}
	if f.CustodianOf != nil {
		who, whoArgs := f.CustodianOf.holds("m", `"user"`)
		q += ` AND dataset_id IN (SELECT m.dataset_id FROM members m WHERE m.role = ? AND ` + who + `)`
		args = append(append(args, RoleCustodian), whoArgs...)
	}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, f.Kind)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	return queryAll(ctx, c, "jobs", scanJob, q, args...)
}
