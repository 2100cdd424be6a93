package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/audit"
)

// AppendAudit appends r to the hash-chained audit log and returns it sealed
// (Seq, PrevHash, Hash set). Reading the last record and inserting the new
// one happen in one write transaction, so concurrent appends are
// serialised and the chain never forks. When r.Dataset is empty and r
// names a file or upload, the dataset is filled in from the catalog, so a
// custodian's view of their dataset's audit includes per-file events.
//
// The caller must put no secret in r: the log is readable by admins and by
// the dataset's custodians, and is exported as plain JSON.
func (c *Catalog) AppendAudit(ctx context.Context, r audit.Record) (*audit.Record, error) {
	err := c.lockedTx(ctx, lockAudit, func(tx *sql.Tx) error {
		if r.Dataset == "" {
			r.Dataset = objectDataset(ctx, tx, r.Object)
		}
		var last int64
		prev := audit.ZeroHash
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("catalog: audit head: %w", err)
		}
		r.Seq = uint64(last) + 1
		if err := r.Seal(prev); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit(seq, time, actor, action, object, dataset, result, status, source, request_id, detail, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(r.Seq), r.Time.UnixNano(), r.Actor, r.Action, r.Object, r.Dataset, r.Result, r.Status, r.Source, r.RequestID, r.Detail, r.PrevHash, r.Hash)
		if err != nil {
			return fmt.Errorf("catalog: audit append: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// objectDataset finds the dataset of a "file/<id>[/...]" or
// "upload/<id>" object; "" when unknown.
func objectDataset(ctx context.Context, tx *sql.Tx, object string) string {
	kind, rest, ok := strings.Cut(object, "/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	var q string
	switch kind {
	case "dataset":
		return id
	case "file":
		q = `SELECT dataset_id FROM files WHERE id = ?`
	case "upload":
		q = `SELECT f.dataset_id FROM uploads u JOIN files f ON f.id = u.file_id WHERE u.id = ?`
	default:
		return ""
	}
	var ds string
	if tx.QueryRowContext(ctx, q, id).Scan(&ds) != nil {
		return ""
	}
	return ds
}

// AuditFilter selects records for AuditRecords. Zero fields match all.
type AuditFilter struct {
	Dataset string
	Actor   string
	Since   time.Time
	Limit   int // the newest Limit records; 0 means DefaultAuditLimit
}

// DefaultAuditLimit and MaxAuditLimit bound one listing.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 10000
)

const auditCols = `seq, time, actor, action, object, dataset, result, status, source, request_id, detail, prev_hash, hash`

func scanAudit(s rowScanner) (*audit.Record, error) {
	var r audit.Record
	var seq, t int64
	if err := s.Scan(&seq, &t, &r.Actor, &r.Action, &r.Object, &r.Dataset, &r.Result, &r.Status, &r.Source, &r.RequestID, &r.Detail, &r.PrevHash, &r.Hash); err != nil {
		return nil, err
	}
	r.Seq, r.Time = uint64(seq), fromTS(t)
	return &r, nil
}

// AuditRecords returns the newest records matching f, oldest first.
func (c *Catalog) AuditRecords(ctx context.Context, f AuditFilter) ([]audit.Record, error) {
	var where []string
	var args []any
	if f.Dataset != "" {
		where, args = append(where, "dataset = ?"), append(args, f.Dataset)
	}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, ts(f.Since))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	q := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	out, err := queryAll(ctx, c, "audit records", scanAudit, q, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// EachAudit calls fn for every record in seq order (the chain order), one
// row at a time, so verifying or exporting a long log needs constant
// memory. An error from fn stops the walk and is returned.
func (c *Catalog) EachAudit(ctx context.Context, fn func(*audit.Record) error) error {
	rows, err := c.db.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("catalog: audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("catalog: audit: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyAudit checks the whole chain as stored.
func (c *Catalog) VerifyAudit(ctx context.Context) (audit.Result, error) {
	v := audit.NewVerifier()
	err := c.EachAudit(ctx, func(r *audit.Record) error {
		v.Add(r)
		return nil
	})
	return v.Result(), err
}

// AuditRecord returns the record with this seq, or ErrNotFound.
func (c *Catalog) AuditRecord(ctx context.Context, seq uint64) (*audit.Record, error) {
	r, err := scanAudit(c.db.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit WHERE seq = ?`, int64(seq)))
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("audit record %d", seq))
	}
	return r, nil
}

// AuditHead returns the seq and hash of the last record; seq 0 and
// audit.ZeroHash for an empty log.
func (c *Catalog) AuditHead(ctx context.Context) (uint64, string, error) {
	var seq int64
	hash := audit.ZeroHash
	err := c.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if err == sql.ErrNoRows {
		return 0, audit.ZeroHash, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("catalog: audit head: %w", err)
	}
	return uint64(seq), hash, nil
}

// AddAuditAnchor stores an anchor of the chain. An anchor of a seq already
// anchored is ignored: the first one stands.
func (c *Catalog) AddAuditAnchor(ctx context.Context, a audit.StoredAnchor) error {
	_, err := c.db.ExecContext(ctx, `INSERT INTO audit_anchors(seq, hash, mac, time) VALUES (?, ?, ?, ?) ON CONFLICT(seq) DO NOTHING`,
		int64(a.Seq), a.Hash, a.MAC, a.Time.UnixNano())
	if err != nil {
		return fmt.Errorf("catalog: audit anchor: %w", err)
	}
	return nil
}

// AuditAnchors returns every stored anchor, oldest (lowest seq) first.
func (c *Catalog) AuditAnchors(ctx context.Context) ([]audit.StoredAnchor, error) {
	return queryAll(ctx, c, "audit anchors", func(s rowScanner) (*audit.StoredAnchor, error) {
		var a audit.StoredAnchor
		var seq, t int64
		if err := s.Scan(&seq, &a.Hash, &a.MAC, &t); err != nil {
			return nil, err
		}
		a.Seq, a.Time = uint64(seq), fromTS(t)
		return &a, nil
	}, `SELECT seq, hash, mac, time FROM audit_anchors ORDER BY seq`)
}
