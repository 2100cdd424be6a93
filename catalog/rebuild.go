package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

// RestoreFile inserts an available file and its segments, as recovered
// from storage by a catalog rebuild, in one transaction. The caller has
// verified the manifest's MAC and that the header opens for this file; f
// must carry the signed manifest and segs its segments. An existing file
// id is ErrExists and a live file of the same name ErrNameTaken; either
// way nothing changes.
func (c *Catalog) RestoreFile(ctx context.Context, f File, segs []storage.SegmentMeta, now time.Time) error {
	if len(f.Manifest) == 0 || len(f.HeaderObject) == 0 {
		return errors.New("catalog: restore: a file needs its manifest and header")
	}
	return c.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM files WHERE id = ?`, f.ID).Scan(&n); err != nil {
			return fmt.Errorf("catalog: restore: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("file %s: %w", f.ID, ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO files(id, dataset_id, name, size, stored_size, hash_alg, state, header_object, manifest,
			sha256, md5, created_by, created_at, available_at) VALUES (?, ?, ?, ?, ?, ?, 'available', ?, ?, ?, ?, ?, ?, ?)`,
			f.ID, f.DatasetID, f.Name, f.Size, f.StoredSize, f.HashAlg, f.HeaderObject, f.Manifest,
			f.SHA256, f.MD5, f.CreatedBy, ts(f.CreatedAt), ts(now))
		if isConstraint(err) {
			return fmt.Errorf("file %q in %s: %w", f.Name, f.DatasetID, ErrNameTaken)
		}
		if err != nil {
			return fmt.Errorf("catalog: restore: %w", err)
		}
		for _, s := range segs {
			meta, err := json.Marshal(s)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO segments(file_id, idx, meta, committed_at) VALUES (?, ?, ?, ?)`,
				f.ID, s.Index, string(meta), ts(now)); err != nil {
				return fmt.Errorf("catalog: restore segment %d of %s: %w", s.Index, f.ID, err)
			}
		}
		return nil
	})
}

// SetDatasetTitle replaces a dataset's title. A catalog rebuild uses it
// when the file that recreated the dataset row carried no stored title and
// a later one does.
func (c *Catalog) SetDatasetTitle(ctx context.Context, id, title string) error {
	res, err := c.db.ExecContext(ctx, `UPDATE datasets SET title = ? WHERE id = ?`, title, id)
	if err != nil {
		return fmt.Errorf("catalog: set title: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
