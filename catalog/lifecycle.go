package catalog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// extraScan appends destinations to a scanner's, so a query can add columns
// after datasetCols without a second copy of scanDataset.
type extraScan struct {
	rowScanner
	extra []any
}

func (e extraScan) Scan(dst ...any) error { return e.rowScanner.Scan(append(dst, e.extra...)...) }

// DatasetIncludingDeleted returns a dataset even if a deletion hid it
// (scheduled, running or finished), with the time it was hidden (nil while
// it is visible). Only the lifecycle code (schedule, cancel, run, report)
// may see hidden datasets; every other query treats them as absent.
func (c *Catalog) DatasetIncludingDeleted(ctx context.Context, id string) (*Dataset, *time.Time, error) {
	var deleted sql.NullInt64
	row := c.db.QueryRowContext(ctx, `SELECT `+datasetCols+`, d.deleted_at FROM datasets d WHERE d.id = ?`, id)
	d, err := scanDataset(extraScan{row, []any{&deleted}})
	if err != nil {
		return nil, nil, notFound(err, "dataset "+id)
	}
	return d, fromNullTS(deleted), nil
}

// FileKeyIDs returns the ids of a dataset's files whose stored header (and
// manifest) are still in use: uploading, available or damaged.
func (c *Catalog) FileKeyIDs(ctx context.Context, datasetID string) ([]string, error) {
	return c.ids(ctx, `SELECT id FROM files WHERE dataset_id = ? AND `+liveState+` ORDER BY id`, datasetID)
}

// FilesCompletedSince returns the ids of a dataset's available files that
// became available at or after t.
func (c *Catalog) FilesCompletedSince(ctx context.Context, datasetID string, t time.Time) ([]string, error) {
	return c.ids(ctx, `SELECT id FROM files WHERE dataset_id = ? AND state = 'available' AND `+liveState+` AND available_at >= ? ORDER BY id`, datasetID, ts(t))
}

// ReplaceKeyMaterial swaps a file's stored header object, and its manifest
// when newManifest is not nil, if and only if both still hold exactly the
// old values (compare-and-swap). A concurrent change (an upload completing,
// another rotation) makes it ErrState and changes nothing; the caller reads
// the file again and retries.
func (c *Catalog) ReplaceKeyMaterial(ctx context.Context, fileID string, oldHeader, newHeader, oldManifest, newManifest []byte) error {
	var res sql.Result
	var err error
	if newManifest == nil {
		res, err = c.db.ExecContext(ctx, `UPDATE files SET header_object = ?
			WHERE id = ? AND header_object = ? AND coalesce(manifest, ?) = ?`, newHeader, fileID, oldHeader, []byte{}, nonNil(oldManifest))
	} else {
		res, err = c.db.ExecContext(ctx, `UPDATE files SET header_object = ?, manifest = ?
			WHERE id = ? AND header_object = ? AND coalesce(manifest, ?) = ?`, newHeader, newManifest, fileID, oldHeader, []byte{}, nonNil(oldManifest))
	}
	if err != nil {
		return fmt.Errorf("catalog: replace key material of %s: %w", fileID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("file %s changed meanwhile: %w", fileID, ErrState)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// FileTargets returns the targets fixed for a file's pieces when its
// upload began.
func (c *Catalog) FileTargets(ctx context.Context, fileID string) ([]TargetRef, error) {
	var s string
	if err := c.db.QueryRowContext(ctx, `SELECT targets FROM uploads WHERE file_id = ?`, fileID).Scan(&s); err != nil {
		return nil, notFound(err, "upload of file "+fileID)
	}
	var refs []TargetRef
	if err := json.Unmarshal([]byte(s), &refs); err != nil {
		return nil, fmt.Errorf("catalog: targets of %s: %w", fileID, err)
	}
	return refs, nil
}

// AbortUploadOfFile ends the open upload of a file as aborted (its file
// becomes "aborted"), e.g. when its header can no longer be opened. A file
// without an open upload is ErrState.
func (c *Catalog) AbortUploadOfFile(ctx context.Context, fileID string, now time.Time) error {
	var id string
	if err := c.db.QueryRowContext(ctx, `SELECT id FROM uploads WHERE file_id = ? AND state = 'open'`, fileID).Scan(&id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("file %s has no open upload: %w", fileID, ErrState)
		}
		return fmt.Errorf("catalog: %w", err)
	}
	return c.EndUpload(ctx, id, UploadAborted, now)
}

// Rotation is one key rotation of a dataset.
type Rotation struct {
	ID            int64
	DatasetID     string
	TargetVersion int
	StartedBy     string
	StartedAt     time.Time
	Rewrapped     int
	FinishedAt    *time.Time
}

func scanRotation(s rowScanner) (*Rotation, error) {
	var r Rotation
	var started int64
	var finished sql.NullInt64
	if err := s.Scan(&r.ID, &r.DatasetID, &r.TargetVersion, &r.StartedBy, &started, &r.Rewrapped, &finished); err != nil {
		return nil, err
	}
	r.StartedAt, r.FinishedAt = fromTS(started), fromNullTS(finished)
	return &r, nil
}

const rotationCols = `id, dataset_id, target_version, started_by, started_at, rewrapped, finished_at`

// OpenRotation returns the dataset's unfinished rotation, or ErrNotFound.
func (c *Catalog) OpenRotation(ctx context.Context, datasetID string) (*Rotation, error) {
	r, err := scanRotation(c.db.QueryRowContext(ctx, `SELECT `+rotationCols+` FROM key_rotations WHERE dataset_id = ? AND finished_at IS NULL`, datasetID))
	if err != nil {
		return nil, notFound(err, "open rotation of "+datasetID)
	}
	return r, nil
}

// StartRotation records a rotation towards targetVersion. If one is
// already open it is returned unchanged (the caller resumes it).
func (c *Catalog) StartRotation(ctx context.Context, datasetID string, targetVersion int, by string, now time.Time) (*Rotation, error) {
	_, err := c.db.ExecContext(ctx, `INSERT INTO key_rotations(dataset_id, target_version, started_by, started_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, datasetID, targetVersion, by, ts(now))
	if err != nil {
		return nil, fmt.Errorf("catalog: start rotation: %w", err)
	}
	return c.OpenRotation(ctx, datasetID)
}

// AddRewrapped counts n more files rewrapped by rotation id.
func (c *Catalog) AddRewrapped(ctx context.Context, id int64, n int) error {
	_, err := c.db.ExecContext(ctx, `UPDATE key_rotations SET rewrapped = rewrapped + ? WHERE id = ?`, n, id)
	return err
}

// FinishRotation closes rotation id and, in the same transaction, counts
// one more key generation for its dataset (once, however often it is
// called): the older key versions are retired by then.
func (c *Catalog) FinishRotation(ctx context.Context, id int64, now time.Time) (*Rotation, error) {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE key_rotations SET finished_at = ? WHERE id = ? AND finished_at IS NULL`, ts(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE datasets SET key_generation = key_generation + 1
			WHERE id = (SELECT dataset_id FROM key_rotations WHERE id = ?)`, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: finish rotation: %w", err)
	}
	r, err := scanRotation(c.db.QueryRowContext(ctx, `SELECT `+rotationCols+` FROM key_rotations WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "rotation")
	}
	return r, nil
}

// reaperNever is a clean-up time beyond any presigned URL's lifetime (a
// century, in nanoseconds): UploadsToClean never selects such an upload.
const reaperNever = int64(100 * 365 * 24 * time.Hour)

// Deletion is the progress of one dataset's deletion. StartedBy and
// StartedAt are who asked for it and when (the dataset was hidden then);
// it runs from RunsAt on, the end of the grace period.
type Deletion struct {
	DatasetID string
	StartedBy string
	StartedAt time.Time
	RunsAt    time.Time
	// RunStartedAt is when its first run began (nil while it is only
	// scheduled, and so can still be cancelled).
	RunStartedAt   *time.Time
	KeyName        string
	KeyVersions    int
	KeyDestroyedAt *time.Time
	FinishedAt     *time.Time
	Report         []byte // JSON, once finished
}

// DeletedObject is one object version removed by a deletion.
type DeletedObject struct {
	Target, Key, VersionID string
	Size                   int64
	DeleteMarker           bool
	DeletedAt              time.Time
}

// ScheduleDeletion hides the dataset at once, so it vanishes from every
// other query (no listing, fetch, presign, upload or grant can see it),
// and records a deletion to run from runsAt on. Nothing else changes, so
// CancelDeletion can restore the dataset exactly as it was. Scheduling a
// deletion already recorded returns the existing record unchanged.
func (c *Catalog) ScheduleDeletion(ctx context.Context, datasetID, by string, now, runsAt time.Time) (*Deletion, error) {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO deletions(dataset_id, started_by, started_at, runs_at) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, datasetID, by, ts(now), ts(runsAt))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // already recorded: keep its times
		}
		return hideDataset(ctx, tx, datasetID, now)
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: schedule deletion of %s: %w", datasetID, err)
	}
	return c.Deletion(ctx, datasetID)
}

// CancelDeletion drops a deletion that has not begun to run and makes the
// dataset visible again, with its files, members and grants as they were.
// ErrNotFound: no deletion is recorded; ErrState: it has begun to run (an
// object may already be gone), so it can only be finished.
func (c *Catalog) CancelDeletion(ctx context.Context, datasetID string) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM deletions WHERE dataset_id = ? AND run_started_at IS NULL`, datasetID)
		if err != nil {
			return fmt.Errorf("catalog: cancel deletion: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var started int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deletions WHERE dataset_id = ?`, datasetID).Scan(&started)
			if err != nil {
				return fmt.Errorf("catalog: cancel deletion: %w", err)
			}
			if started > 0 {
				return fmt.Errorf("deletion of %s has begun: %w", datasetID, ErrState)
			}
			return fmt.Errorf("deletion of %s: %w", datasetID, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE datasets SET deleted_at = NULL WHERE id = ?`, datasetID); err != nil {
			return err
		}
		return bumpGrantsGeneration(ctx, tx) // its grants show again
	})
}

// hideDataset hides the dataset (sets deleted_at) unless it is hidden
// already, inside tx; hiding it hides its grants too, so it raises the
// grants generation.
func hideDataset(ctx context.Context, tx *sql.Tx, datasetID string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE datasets SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL`, ts(now), datasetID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return bumpGrantsGeneration(ctx, tx)
}

// DueDeletions returns the datasets whose deletion is unfinished and due
// at now (its grace period over), the longest due first.
func (c *Catalog) DueDeletions(ctx context.Context, now time.Time) ([]string, error) {
	return c.ids(ctx, `SELECT dataset_id FROM deletions WHERE finished_at IS NULL AND runs_at <= ? ORDER BY runs_at, dataset_id`, ts(now))
}

// StartDeletion begins (or resumes) running a dataset's deletion: the
// dataset is hidden (if it was not yet), its open uploads end, and the run
// is recorded as begun, after which it can no longer be cancelled. A
// deletion not scheduled before is recorded as asked for by `by` at now.
// Running it again returns the existing record.
func (c *Catalog) StartDeletion(ctx context.Context, datasetID, by string, now time.Time) (*Deletion, error) {
	err := c.tx(ctx, func(tx *sql.Tx) error {
		if err := hideDataset(ctx, tx, datasetID, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO deletions(dataset_id, started_by, started_at, runs_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			datasetID, by, ts(now), ts(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deletions SET run_started_at = ? WHERE dataset_id = ? AND run_started_at IS NULL`,
			ts(now), datasetID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE uploads SET state = 'aborted', ended_at = ?
			WHERE state = 'open' AND file_id IN (SELECT id FROM files WHERE dataset_id = ?)`, ts(now), datasetID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE files SET state = 'aborted' WHERE dataset_id = ? AND state = 'uploading' AND `+liveState, datasetID); err != nil {
			return err
		}
		// The deletion's purge is these uploads' clean-up: keep the reaper
		// away, so it never races the purge (on a versioned bucket a late
		// reaper delete would leave a delete marker behind).
		_, err := tx.ExecContext(ctx, `UPDATE uploads SET cleaned_at = ended_at + ?, clean_final = 1
			WHERE state IN ('aborted', 'expired') AND file_id IN (SELECT id FROM files WHERE dataset_id = ?)`, reaperNever, datasetID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: start deletion of %s: %w", datasetID, err)
	}
	return c.Deletion(ctx, datasetID)
}

// Deletion returns a dataset's deletion record, or ErrNotFound.
func (c *Catalog) Deletion(ctx context.Context, datasetID string) (*Deletion, error) {
	var d Deletion
	var started, runsAt int64
	var runStarted, destroyed, finished sql.NullInt64
	err := c.db.QueryRowContext(ctx, `SELECT dataset_id, started_by, started_at, coalesce(runs_at, started_at), run_started_at,
		key_name, key_versions, key_destroyed_at, finished_at, report
		FROM deletions WHERE dataset_id = ?`, datasetID).Scan(&d.DatasetID, &d.StartedBy, &started, &runsAt, &runStarted,
		&d.KeyName, &d.KeyVersions, &destroyed, &finished, &d.Report)
	if err != nil {
		return nil, notFound(err, "deletion of "+datasetID)
	}
	d.StartedAt, d.RunsAt, d.RunStartedAt = fromTS(started), fromTS(runsAt), fromNullTS(runStarted)
	d.KeyDestroyedAt, d.FinishedAt = fromNullTS(destroyed), fromNullTS(finished)
	if len(d.Report) == 0 {
		d.Report = nil
	}
	return &d, nil
}

// RecordDeletedObject notes one removed object version (idempotent).
func (c *Catalog) RecordDeletedObject(ctx context.Context, datasetID string, o DeletedObject) error {
	dm := 0
	if o.DeleteMarker {
		dm = 1
	}
	_, err := c.db.ExecContext(ctx, `INSERT INTO deleted_objects(dataset_id, target, key, version_id, size, delete_marker, deleted_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, datasetID, o.Target, o.Key, o.VersionID, o.Size, dm, ts(o.DeletedAt))
	if err != nil {
		return fmt.Errorf("catalog: record deleted object: %w", err)
	}
	return nil
}

// DeletedObjects lists what a deletion removed, by target and key.
func (c *Catalog) DeletedObjects(ctx context.Context, datasetID string) ([]DeletedObject, error) {
	scan := func(s rowScanner) (*DeletedObject, error) {
		var o DeletedObject
		var at int64
		if err := s.Scan(&o.Target, &o.Key, &o.VersionID, &o.Size, &o.DeleteMarker, &at); err != nil {
			return nil, err
		}
		o.DeletedAt = fromTS(at)
		return &o, nil
	}
	return queryAll(ctx, c, "deleted objects", scan, `SELECT target, key, version_id, size, delete_marker, deleted_at
		FROM deleted_objects WHERE dataset_id = ? ORDER BY target, key, version_id`, datasetID)
}

// RecordDeletionKey notes the key about to be destroyed and its version
// count, before it is destroyed (afterwards Vault can no longer say).
func (c *Catalog) RecordDeletionKey(ctx context.Context, datasetID, keyName string, versions int) error {
	_, err := c.db.ExecContext(ctx, `UPDATE deletions SET key_name = ?, key_versions = ? WHERE dataset_id = ? AND key_destroyed_at IS NULL`,
		keyName, versions, datasetID)
	return err
}

// MarkKeyDestroyed records that the dataset's key is gone.
func (c *Catalog) MarkKeyDestroyed(ctx context.Context, datasetID string, now time.Time) error {
	_, err := c.db.ExecContext(ctx, `UPDATE deletions SET key_destroyed_at = ? WHERE dataset_id = ? AND key_destroyed_at IS NULL`, ts(now), datasetID)
	return err
}

// FinishDeletion stores the deletion report and closes the deletion.
func (c *Catalog) FinishDeletion(ctx context.Context, datasetID string, report []byte, now time.Time) error {
	if !json.Valid(report) || bytes.TrimSpace(report) == nil {
		return errors.New("catalog: deletion report is not JSON")
	}
	_, err := c.db.ExecContext(ctx, `UPDATE deletions SET report = ?, finished_at = coalesce(finished_at, ?) WHERE dataset_id = ?`, report, ts(now), datasetID)
	return err
}

// AllFiles returns every file ever begun in a dataset, in any state,
// without headers or manifests, by name then id (for the deletion report).
func (c *Catalog) AllFiles(ctx context.Context, datasetID string) ([]File, error) {
	return queryAll(ctx, c, "files", func(r rowScanner) (*File, error) { return scanFile(r) },
		`SELECT f.id, f.dataset_id, f.name, f.size, f.stored_size, f.hash_alg, f.state, NULL, NULL, f.sha256, f.md5, f.created_by, f.created_at
		FROM files f WHERE f.dataset_id = ? ORDER BY f.name, f.id`, datasetID)
}
