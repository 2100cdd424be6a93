package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

// File states (the API's, plus "aborted" for a file whose upload was
// abandoned; aborted files are never listed and free their name).
const (
	FileUploading = "uploading"
	FileAvailable = "available"
	FileDamaged   = "damaged"
	FileAborted   = "aborted"
)

// Upload states.
const (
	UploadOpen     = "open"
	UploadComplete = "complete"
	UploadAborted  = "aborted"
	UploadExpired  = "expired"
)

// File is one file row.
type File struct {
	ID, DatasetID, Name string
	Size                int64 // plaintext bytes
	StoredSize          int64 // payload (chunk stream) bytes
	HashAlg             string
	State               string
	HeaderObject        []byte // stored header object (Transit-wrapped key + nonce)
	Manifest            []byte // signed manifest JSON, once available
	SHA256, MD5         string
	CreatedBy           string
	CreatedAt           time.Time
}

// TargetRef names a target used to place an upload's pieces.
type TargetRef struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
}

// Upload is one upload session with its file's identity.
type Upload struct {
	ID        string
	File      File // without Manifest
	Segments  int  // total the file needs
	Targets   []TargetRef
	State     string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	EndedAt   *time.Time
	CleanedAt *time.Time
}

// liveState is the condition of the files_live_name index (dataset, name)
// written out: SQLite uses a partial index only for a query that states
// its condition, and "state = 'available'" alone does not, so without it
// a lookup by name or a count of a dataset's files reads every file of
// the catalog. liveFile is the same for a query that names files f.
const (
	liveState = `state IN ('uploading', 'available', 'damaged')`
	liveFile  = `f.` + liveState
)

const fileCols = `f.id, f.dataset_id, f.name, f.size, f.stored_size, f.hash_alg, f.state, f.header_object, f.manifest, f.sha256, f.md5, f.created_by, f.created_at`

func scanFile(s rowScanner, extra ...any) (*File, error) {
	var f File
	var created int64
	if err := s.Scan(append(fileDest(&f, &created), extra...)...); err != nil {
		return nil, err
	}
	f.fromRow(created)
	return &f, nil
}

// fileDest are the destinations of fileCols; created receives CreatedAt
// as stored, for fromRow.
func fileDest(f *File, created *int64) []any {
	return []any{&f.ID, &f.DatasetID, &f.Name, &f.Size, &f.StoredSize, &f.HashAlg, &f.State, &f.HeaderObject, &f.Manifest, &f.SHA256, &f.MD5, &f.CreatedBy, created}
}

// fromRow finishes a file scanned with fileDest.
func (f *File) fromRow(created int64) {
	f.CreatedAt = fromTS(created)
	if len(f.Manifest) == 0 {
		f.Manifest = nil
	}
}

// BeginUpload inserts an uploading file and its open session. If the name
// is held by a live file it returns ErrNameTaken and nothing changes.
func (c *Catalog) BeginUpload(ctx context.Context, u Upload) error {
	targets, err := json.Marshal(u.Targets)
	if err != nil {
		return err
	}
	f := u.File
	return c.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO files(id, dataset_id, name, size, stored_size, hash_alg, state, header_object, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 'uploading', ?, ?, ?)`,
			f.ID, f.DatasetID, f.Name, f.Size, f.StoredSize, f.HashAlg, f.HeaderObject, u.CreatedBy, ts(u.CreatedAt))
		if isConstraint(err) {
			return fmt.Errorf("file %q in %s: %w", f.Name, f.DatasetID, ErrNameTaken)
		}
		if err != nil {
			return fmt.Errorf("catalog: begin upload: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO uploads(id, file_id, segments, targets, state, created_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, 'open', ?, ?, ?)`,
			u.ID, f.ID, u.Segments, string(targets), u.CreatedBy, ts(u.CreatedAt), ts(u.ExpiresAt))
		if err != nil {
			return fmt.Errorf("catalog: begin upload: %w", err)
		}
		return nil
	})
}

const uploadQuery = `SELECT u.id, u.segments, u.targets, u.state, u.created_by, u.created_at, u.expires_at, u.ended_at, u.cleaned_at, ` +
	fileCols + ` FROM uploads u JOIN files f ON f.id = u.file_id `

func scanUpload(s rowScanner) (*Upload, error) {
	var u Upload
	var targets string
	var created, expires int64
	var ended, cleaned sql.NullInt64
	var f File
	var fcreated int64
	err := s.Scan(&u.ID, &u.Segments, &targets, &u.State, &u.CreatedBy, &created, &expires, &ended, &cleaned,
		&f.ID, &f.DatasetID, &f.Name, &f.Size, &f.StoredSize, &f.HashAlg, &f.State, &f.HeaderObject, &f.Manifest, &f.SHA256, &f.MD5, &f.CreatedBy, &fcreated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(targets), &u.Targets); err != nil {
		return nil, fmt.Errorf("catalog: upload %s targets: %w", u.ID, err)
	}
	f.CreatedAt = fromTS(fcreated)
	f.Manifest = nil
	u.File = f
	u.CreatedAt, u.ExpiresAt = fromTS(created), fromTS(expires)
	u.EndedAt, u.CleanedAt = fromNullTS(ended), fromNullTS(cleaned)
	return &u, nil
}

// Upload returns an upload session or ErrNotFound.
func (c *Catalog) Upload(ctx context.Context, id string) (*Upload, error) {
	u, err := scanUpload(c.db.QueryRowContext(ctx, uploadQuery+`WHERE u.id = ?`, id))
	if err != nil {
		return nil, notFound(err, "upload "+id)
	}
	return u, nil
}

// OpenUploadByName returns the open upload of the named file, or
// ErrNotFound.
func (c *Catalog) OpenUploadByName(ctx context.Context, datasetID, name string) (*Upload, error) {
	u, err := scanUpload(c.db.QueryRowContext(ctx, uploadQuery+`WHERE f.dataset_id = ? AND f.name = ? AND u.state = 'open'`, datasetID, name))
	if err != nil {
		return nil, notFound(err, "open upload of "+name)
	}
	return u, nil
}

// TouchUpload moves an open upload's expiry to expires (activity extends
// the session). A session that is not open is ErrState.
func (c *Catalog) TouchUpload(ctx context.Context, id string, expires time.Time) error {
	res, err := c.db.ExecContext(ctx, `UPDATE uploads SET expires_at = CASE WHEN expires_at > ? THEN expires_at ELSE ? END WHERE id = ? AND state = 'open'`,
		ts(expires), ts(expires), id)
	if err != nil {
		return fmt.Errorf("catalog: touch upload: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("upload %s is not open: %w", id, ErrState)
	}
	return nil
}

// CommitSegment records (or replaces, for a re-sent segment) one
// segment's metadata for an open upload and extends its expiry. The caller
// has checked the metadata against the placement and the stored pieces.
func (c *Catalog) CommitSegment(ctx context.Context, uploadID string, seg storage.SegmentMeta, now, expires time.Time) error {
	meta, err := json.Marshal(seg)
	if err != nil {
		return err
	}
	return c.tx(ctx, func(tx *sql.Tx) error {
		var fileID, state string
		var segments int
		err := tx.QueryRowContext(ctx, `SELECT file_id, state, segments FROM uploads WHERE id = ?`, uploadID).Scan(&fileID, &state, &segments)
		if err != nil {
			return notFound(err, "upload "+uploadID)
		}
		if state != UploadOpen {
			return fmt.Errorf("upload %s is %s: %w", uploadID, state, ErrState)
		}
		if seg.Index < 0 || seg.Index >= segments {
			return fmt.Errorf("segment %d out of range 0..%d: %w", seg.Index, segments-1, ErrState)
		}
		if err := upsertSegment(ctx, tx, fileID, seg.Index, meta, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE uploads SET expires_at = CASE WHEN expires_at > ? THEN expires_at ELSE ? END WHERE id = ?`,
			ts(expires), ts(expires), uploadID)
		return err
	})
}

// upsertSegment records segment idx of a file, replacing an earlier
// commit of the same index.
func upsertSegment(ctx context.Context, tx *sql.Tx, fileID string, idx int, meta []byte, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO segments(file_id, idx, meta, committed_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(file_id, idx) DO UPDATE SET meta = excluded.meta, committed_at = excluded.committed_at`,
		fileID, idx, string(meta), ts(now)); err != nil {
		return fmt.Errorf("catalog: commit segment: %w", err)
	}
	return nil
}

// Segments returns a file's committed segments in index order.
func (c *Catalog) Segments(ctx context.Context, fileID string) ([]storage.SegmentMeta, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT meta FROM segments WHERE file_id = ? ORDER BY idx`, fileID)
	if err != nil {
		return nil, fmt.Errorf("catalog: segments: %w", err)
	}
	defer rows.Close()
	var out []storage.SegmentMeta
	for rows.Next() {
		var meta string
		if err := rows.Scan(&meta); err != nil {
			return nil, err
		}
		var s storage.SegmentMeta
		if err := json.Unmarshal([]byte(meta), &s); err != nil {
			return nil, fmt.Errorf("catalog: segment of %s: %w", fileID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Segment returns one committed segment of a file, or ErrNotFound.
func (c *Catalog) Segment(ctx context.Context, fileID string, idx int) (*storage.SegmentMeta, error) {
	var meta string
	err := c.db.QueryRowContext(ctx, `SELECT meta FROM segments WHERE file_id = ? AND idx = ?`, fileID, idx).Scan(&meta)
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("segment %d of %s", idx, fileID))
	}
	var s storage.SegmentMeta
	if err := json.Unmarshal([]byte(meta), &s); err != nil {
		return nil, fmt.Errorf("catalog: segment of %s: %w", fileID, err)
	}
	return &s, nil
}

// CompleteUpload makes the upload's file available with its plaintext
// checksums and signed manifest, in one transaction that first checks the
// session is open and every segment 0..Segments-1 is committed. Anything
// else is ErrState and changes nothing: a file with a missing segment can
// never become available.
func (c *Catalog) CompleteUpload(ctx context.Context, uploadID, sha256, md5 string, manifest []byte, now time.Time) (*File, error) {
	return c.completeUpload(ctx, uploadID, nil, sha256, md5, manifest, now)
}

// CommitAndComplete is CommitSegment of seg and then CompleteUpload, in
// one transaction: both happen, or neither (a segment out of range is
// ErrState too).
func (c *Catalog) CommitAndComplete(ctx context.Context, uploadID string, seg storage.SegmentMeta, sha256, md5 string, manifest []byte, now time.Time) (*File, error) {
	return c.completeUpload(ctx, uploadID, &seg, sha256, md5, manifest, now)
}

func (c *Catalog) completeUpload(ctx context.Context, uploadID string, seg *storage.SegmentMeta, sha256, md5 string, manifest []byte, now time.Time) (*File, error) {
	var segMeta []byte
	if seg != nil {
		var err error
		if segMeta, err = json.Marshal(seg); err != nil {
			return nil, err
		}
	}
	var out *File
	err := c.tx(ctx, func(tx *sql.Tx) error {
		var fileID, state string
		var segments int
		err := tx.QueryRowContext(ctx, `SELECT file_id, state, segments FROM uploads WHERE id = ?`, uploadID).Scan(&fileID, &state, &segments)
		if err != nil {
			return notFound(err, "upload "+uploadID)
		}
		if state != UploadOpen {
			return fmt.Errorf("upload %s is %s: %w", uploadID, state, ErrState)
		}
		if seg != nil {
			if seg.Index < 0 || seg.Index >= segments {
				return fmt.Errorf("segment %d out of range 0..%d: %w", seg.Index, segments-1, ErrState)
			}
			if err := upsertSegment(ctx, tx, fileID, seg.Index, segMeta, now); err != nil {
				return err
			}
		}
		var n, maxIdx int
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(idx), -1) FROM segments WHERE file_id = ?`, fileID).Scan(&n, &maxIdx); err != nil {
			return err
		}
		if n != segments || maxIdx != segments-1 {
			return fmt.Errorf("upload %s has %d of %d segments committed: %w", uploadID, n, segments, ErrState)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE files SET state = 'available', sha256 = ?, md5 = ?, manifest = ?, available_at = ?
			WHERE id = ? AND state = 'uploading'`, sha256, md5, manifest, ts(now), fileID); err != nil {
			return fmt.Errorf("catalog: complete: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE uploads SET state = 'complete', ended_at = ? WHERE id = ?`, ts(now), uploadID); err != nil {
			return fmt.Errorf("catalog: complete: %w", err)
		}
		out, err = scanFile(tx.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files f WHERE f.id = ?`, fileID))
		return err
	})
	return out, err
}

// EndUpload ends an open session as aborted or expired; its file becomes
// "aborted" (unlisted, name freed). Its pieces are then due for deletion
// (see UploadsToClean). A session that is not open is ErrState.
func (c *Catalog) EndUpload(ctx context.Context, uploadID, state string, now time.Time) error {
	if state != UploadAborted && state != UploadExpired {
		return fmt.Errorf("catalog: cannot end an upload as %q", state)
	}
	return c.tx(ctx, func(tx *sql.Tx) error {
		var fileID, cur string
		err := tx.QueryRowContext(ctx, `SELECT file_id, state FROM uploads WHERE id = ?`, uploadID).Scan(&fileID, &cur)
		if err != nil {
			return notFound(err, "upload "+uploadID)
		}
		if cur != UploadOpen {
			return fmt.Errorf("upload %s is %s: %w", uploadID, cur, ErrState)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE uploads SET state = ?, ended_at = ? WHERE id = ?`, state, ts(now), uploadID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE files SET state = 'aborted' WHERE id = ? AND state = 'uploading'`, fileID)
		return err
	})
}

// ExpiredUploads returns the ids of open sessions whose expiry is before now.
func (c *Catalog) ExpiredUploads(ctx context.Context, now time.Time) ([]string, error) {
	return c.ids(ctx, `SELECT id FROM uploads WHERE state = 'open' AND expires_at < ? ORDER BY expires_at`, ts(now))
}

// UploadsToClean returns ended (aborted or expired) sessions whose pieces
// still need deleting: never cleaned, or cleaned before every presigned URL
// issued for them had expired (a late PUT may have landed after the
// previous clean-up). grace is the presigned-URL lifetime.
//
// It reads only the sessions not done for good (clean_final, through
// uploads_to_clean), so its cost follows the sessions still to clean, not
// every session ever ended: MarkCleaned marks a session done once its
// clean-up came after the grace, and the first call in a process marks
// the sessions cleaned so before that column existed.
func (c *Catalog) UploadsToClean(ctx context.Context, grace time.Duration) ([]Upload, error) {
	if !c.cleanFinalSwept.Load() {
		if _, err := c.db.ExecContext(ctx, `UPDATE uploads SET clean_final = 1
			WHERE clean_final = 0 AND state IN ('aborted', 'expired') AND cleaned_at IS NOT NULL AND cleaned_at >= ended_at + ?`, int64(grace)); err != nil {
			return nil, fmt.Errorf("catalog: uploads to clean: %w", err)
		}
		c.cleanFinalSwept.Store(true)
	}
	return queryAll(ctx, c, "uploads to clean", scanUpload, uploadQuery+`WHERE u.clean_final = 0 AND u.state IN ('aborted', 'expired')
		AND (u.cleaned_at IS NULL OR u.cleaned_at < u.ended_at + ?) ORDER BY u.ended_at`, int64(grace))
}

// MarkCleaned records that an ended session's objects were deleted at
// now. A clean-up at or after the session's end plus grace (the
// presigned-URL lifetime) is its last: no URL issued for it can still
// put a piece, so UploadsToClean never returns it again.
func (c *Catalog) MarkCleaned(ctx context.Context, uploadID string, now time.Time, grace time.Duration) error {
	_, err := c.db.ExecContext(ctx, `UPDATE uploads SET cleaned_at = ?,
		clean_final = CASE WHEN clean_final = 1 OR ? >= ended_at + ? THEN 1 ELSE 0 END
		WHERE id = ? AND state IN ('aborted', 'expired')`, ts(now), ts(now), int64(grace), uploadID)
	return err
}

// File returns a file by id, or ErrNotFound.
func (c *Catalog) File(ctx context.Context, id string) (*File, error) {
	f, err := scanFile(c.db.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files f WHERE f.id = ?`, id))
	if err != nil {
		return nil, notFound(err, "file "+id)
	}
	return f, nil
}

// AvailableFile returns the available file with this name, or ErrNotFound.
func (c *Catalog) AvailableFile(ctx context.Context, datasetID, name string) (*File, error) {
	f, err := scanFile(c.db.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files f
		WHERE f.dataset_id = ? AND f.name = ? AND f.state = 'available' AND `+liveFile, datasetID, name))
	if err != nil {
		return nil, notFound(err, "file "+name)
	}
	return f, nil
}

// Files returns the dataset's available files by name, without manifests
// or headers.
func (c *Catalog) Files(ctx context.Context, datasetID string) ([]File, error) {
	scan := func(r rowScanner) (*File, error) {
		f, err := scanFile(r)
		if f != nil {
			f.HeaderObject = nil
		}
		return f, err
	}
	return queryAll(ctx, c, "files", scan, `SELECT f.id, f.dataset_id, f.name, f.size, f.stored_size, f.hash_alg, f.state, NULL, NULL, f.sha256, f.md5, f.created_by, f.created_at
		FROM files f WHERE f.dataset_id = ? AND f.state IN ('available', 'damaged') AND `+liveFile+` ORDER BY f.name`, datasetID)
}

func (c *Catalog) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
