package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/dozo-vault/dozo/audit"
)

// AppendAudit appends r to the hash-chained audit log and returns it sealed
// (Seq, PrevHash, Hash set) once it is durable: its transaction has
// committed. When r.Dataset is empty and r names a file or upload, the
// dataset is filled in from the catalog, so a custodian's view of their
// dataset's audit includes per-file events.
//
// Appends are group-committed: records from concurrent callers queue, and
// one caller at a time (the leader) appends up to maxAuditBatch of them, in
// queue order, in one transaction (appendAuditBatch), then releases each
// waiter with its own sealed record, or every waiter of the batch with the
// transaction's error. A record that fails validation fails alone and
// takes no seq. The chain stays one totally ordered chain: a batch reads
// the head and writes every record in one write transaction (on
// PostgreSQL under the audit advisory lock), so batches of several dozods
// on one catalog are serialised too.
//
// A caller whose ctx ends while its record is still queued gets ctx's
// error and its record is not appended; once its batch has begun, it
// waits for the batch's outcome, which is then the truth.
//
// The caller must put no secret in r: the log is readable by admins and by
// the dataset's custodians, and is exported as plain JSON.
func (c *Catalog) AppendAudit(ctx context.Context, r audit.Record) (*audit.Record, error) {
	p := &pendingAudit{r: r, done: make(chan struct{})}
	c.auditMu.Lock()
	q := c.auditQ
	lead := q == nil
	if lead {
		q = &auditQueue{}
		c.auditQ = q
	}
	q.pending = append(q.pending, p)
	c.auditMu.Unlock()
	if lead {
		go c.commitAuditQueue(ctx, q)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		c.auditMu.Lock()
		i := slices.Index(q.pending, p)
		if i >= 0 {
			q.pending = slices.Delete(q.pending, i, i+1)
		}
		c.auditMu.Unlock()
		if i >= 0 {
			return nil, fmt.Errorf("catalog: audit append: %w", ctx.Err())
		}
		<-p.done
	}
	return p.sealed, p.err
}

// maxAuditBatch bounds the records of one audit transaction, so one
// batch's statements stay short and a waiter's latency bounded.
const maxAuditBatch = 256

// auditBatchTimeout bounds one batch's transaction. It is not the
// callers' deadline: a batch serves many callers and must finish once
// begun.
const auditBatchTimeout = 30 * time.Second

// pendingAudit is one caller's record waiting for its batch. sealed and
// err are set before done is closed.
type pendingAudit struct {
	r      audit.Record
	sealed *audit.Record
	err    error
	done   chan struct{}
}

// auditQueue holds a catalog's records waiting to be appended. It exists
// (as Catalog.auditQ) exactly while a committer goroutine is draining it.
type auditQueue struct {
	pending []*pendingAudit
}

// commitAuditQueue appends q's records batch after batch until q is empty,
// then removes q. Records queued while a batch commits form the next
// batch, so under load a batch holds what arrived during one commit.
func (c *Catalog) commitAuditQueue(ctx context.Context, q *auditQueue) {
	ctx = context.WithoutCancel(ctx)
	for {
		c.auditMu.Lock()
		n := min(len(q.pending), maxAuditBatch)
		if n == 0 {
			c.auditQ = nil
			c.auditMu.Unlock()
			return
		}
		batch := slices.Clone(q.pending[:n])
		q.pending = slices.Delete(q.pending, 0, n)
		c.auditMu.Unlock()

		bctx, cancel := context.WithTimeout(ctx, auditBatchTimeout)
		recs := make([]audit.Record, len(batch))
		for i, p := range batch {
			recs[i] = p.r
		}
		sealed, errs, err := c.appendAuditBatch(bctx, recs)
		cancel()
		for i, p := range batch {
			switch {
			case err != nil:
				p.err = err
			case errs[i] != nil:
				p.err = errs[i]
			default:
				p.sealed = &sealed[i]
			}
			close(p.done)
		}
	}
}

// appendAuditBatch appends recs, in order, in one transaction, each record
// committing to the one before it as a lone append would. It returns the
// sealed records and, per record, the validation error that left it out
// (it then takes no seq); err is the transaction's error, and then none
// of recs is in the log.
func (c *Catalog) appendAuditBatch(ctx context.Context, recs []audit.Record) (sealed []audit.Record, errs []error, err error) {
	if c.d == postgresDialect {
		err = c.retry(ctx, func() error {
			sealed, errs, err = c.appendAuditPipelined(ctx, recs)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		return sealed, errs, nil
	}
	err = c.lockedTx(ctx, lockAudit, func(tx *sql.Tx) error {
		// The transaction may run again (PostgreSQL): start afresh.
		var last int64
		prev := audit.ZeroHash
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("catalog: audit head: %w", err)
		}
		var b auditBatch
		sealed, errs = b.seal(recs, last, prev, func(object string) string { return objectDataset(ctx, tx.QueryRowContext, object) })
		if b.rows == 0 {
			return nil
		}
		// One statement for the whole batch: one round trip, not one per
		// record.
		const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		_, err = tx.ExecContext(ctx, `INSERT INTO audit(`+auditCols+`) VALUES `+
			strings.TrimSuffix(strings.Repeat(row+", ", b.rows), ", "), b.args...)
		if err != nil {
			return fmt.Errorf("catalog: audit append: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return sealed, errs, nil
}

// auditBatch is a batch of records sealed for insertion.
type auditBatch struct {
	args []any // the rows' values, auditCols for each
	rows int
}

// seal chains recs after the head (last, prev), filling in a record's
// missing dataset with datasetOf(object) (looked up once per object key).
// It returns the sealed records and the validation error of each left
// out (which takes no seq).
func (b *auditBatch) seal(recs []audit.Record, last int64, prev string, datasetOf func(object string) string) ([]audit.Record, []error) {
	sealed, errs := make([]audit.Record, len(recs)), make([]error, len(recs))
	datasets := map[string]string{} // objectKey -> dataset, looked up once per batch
	for i, r := range recs {
		if r.Dataset == "" {
			k := objectKey(r.Object)
			ds, ok := datasets[k]
			if !ok {
				ds = datasetOf(r.Object)
				datasets[k] = ds
			}
			r.Dataset = ds
		}
		r.Seq = uint64(last) + 1
		if err := r.Seal(prev); err != nil {
			errs[i] = err
			continue
		}
		b.args = append(b.args, int64(r.Seq), r.Time.UnixNano(), r.Actor, r.Action, r.Object, r.Dataset, r.Result, r.Status, r.Source, r.RequestID, r.Detail, r.PrevHash, r.Hash)
		b.rows++
		sealed[i] = r
		last, prev = int64(r.Seq), r.Hash
	}
	return sealed, errs
}

// appendAuditPipelined is appendAuditBatch on PostgreSQL in two round
// trips instead of five: the transaction's start, the advisory lock and
// the head are sent together, then the insert of the whole batch (one
// statement text whatever its size: one array per column) and the
// commit. The statements, their order and the lock are those of the
// transaction lockedTx runs; only the waiting between them is saved,
// which bounds how many batches one dozod commits per second.
func (c *Catalog) appendAuditPipelined(ctx context.Context, recs []audit.Record) (sealed []audit.Record, errs []error, err error) {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: audit append: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(pgConn)
		if !ok {
			return fmt.Errorf("catalog: unexpected connection type %T", dc)
		}
		px := pc.Conn.Conn()
		// A failed batch leaves the transaction open or aborted: end it,
		// or close the connection (database/sql then drops it).
		fail := func(err error) error {
			if px.PgConn().TxStatus() != 'I' {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if _, rerr := px.Exec(rctx, `ROLLBACK`); rerr != nil {
					px.Close(rctx)
				}
			}
			return err
		}
		var last int64
		prev := audit.ZeroHash
		head := &pgx.Batch{}
		head.Queue(`BEGIN ISOLATION LEVEL READ COMMITTED`)
		head.Queue(`SELECT pg_advisory_xact_lock($1)`, lockAudit)
		head.Queue(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&last, &prev)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		pc.queries.Add(2)
		if err := px.SendBatch(ctx, head).Close(); err != nil {
			return fail(fmt.Errorf("catalog: audit head: %w", err))
		}
		var b auditBatch
		sealed, errs = b.seal(recs, last, prev, func(object string) string {
			return objectDataset(ctx, func(ctx context.Context, q string, args ...any) rowScanner {
				return px.QueryRow(ctx, rebind(q), args...)
			}, object)
		})
		if b.rows == 0 {
			_, err := px.Exec(ctx, `COMMIT`)
			if err != nil {
				return fail(fmt.Errorf("catalog: commit: %w", err))
			}
			return nil
		}
		cols := make([][]any, 13)
		for i, v := range b.args {
			cols[i%13] = append(cols[i%13], v)
		}
		ins := &pgx.Batch{}
		ins.Queue(`INSERT INTO audit(`+auditCols+`) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
			$6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])`, pgArrays(cols)...)
		ins.Queue(`COMMIT`)
		pc.queries.Add(1)
		if err := px.SendBatch(ctx, ins).Close(); err != nil {
			return fail(fmt.Errorf("catalog: audit append: %w", err))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return sealed, errs, nil
}

// pgArrays turns each column's values into a typed slice pgx sends as
// an array.
func pgArrays(cols [][]any) []any {
	out := make([]any, len(cols))
	for i, col := range cols {
		switch col[0].(type) {
		case int64:
			a := make([]int64, len(col))
			for j, v := range col {
				a[j] = v.(int64)
			}
			out[i] = a
		case int:
			a := make([]int64, len(col))
			for j, v := range col {
				a[j] = int64(v.(int))
			}
			out[i] = a
		default:
			a := make([]string, len(col))
			for j, v := range col {
				a[j] = v.(string)
			}
			out[i] = a
		}
	}
	return out
}

// appendAuditAlone is the append without group commit: one transaction
// per record. It is kept to measure group commit against.
func (c *Catalog) appendAuditAlone(ctx context.Context, r audit.Record) (*audit.Record, error) {
	sealed, errs, err := c.appendAuditBatch(ctx, []audit.Record{r})
	if err != nil {
		return nil, err
	}
	if errs[0] != nil {
		return nil, errs[0]
	}
	return &sealed[0], nil
}

// objectKey is the part of an object that decides its dataset: its kind
// and id ("file/<id>" of "file/<id>/<piece>").
func objectKey(object string) string {
	kind, rest, _ := strings.Cut(object, "/")
	id, _, _ := strings.Cut(rest, "/")
	return kind + "/" + id
}

// objectDataset finds the dataset of a "file/<id>[/...]" or
// "upload/<id>" object with query; "" when unknown.
func objectDataset[R rowScanner](ctx context.Context, query func(context.Context, string, ...any) R, object string) string {
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
	if query(ctx, q, id).Scan(&ds) != nil {
		return ""
	}
	return ds
}

// AuditFilter selects records for AuditRecords. Zero fields match all.
type AuditFilter struct {
	Dataset string
	Actor   string
	Since   time.Time
	Until   time.Time // records before this instant
	// Actions keeps records of these actions only; ExcludeActions drops
	// records of these (the presign and audit-list rows a reader skips).
	Actions, ExcludeActions []string
	Result                  string
	// File keeps records about files of this name: fetches, presigns and
	// uploads of any file so named (in Dataset when set), and refusals
	// naming it.
	File  string
	Limit int // the newest Limit records; 0 means DefaultAuditLimit
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
	if !f.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, ts(f.Until))
	}
	if f.Result != "" {
		where, args = append(where, "result = ?"), append(args, f.Result)
	}
	in := func(col string, vs []string, not bool) {
		if len(vs) == 0 {
			return
		}
		op := " IN ("
		if not {
			op = " NOT IN ("
		}
		where = append(where, col+op+strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ")+")")
		for _, v := range vs {
			args = append(args, v)
		}
	}
	in("action", f.Actions, false)
	in("action", f.ExcludeActions, true)
	if f.File != "" {
		w, a, err := c.fileObjects(ctx, f.Dataset, f.File)
		if err != nil {
			return nil, err
		}
		where, args = append(where, w), append(args, a...)
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

// fileObjects is the condition on object for AuditFilter.File: the
// objects of every file named name (in dataset, when given) and of their
// uploads, with any suffix (a piece key), and the object a refused fetch
// of that name records. Files of deleted datasets are kept in the catalog,
// so their records are still found.
func (c *Catalog) fileObjects(ctx context.Context, dataset, name string) (string, []any, error) {
	in, args := "", []any{name}
	if dataset != "" {
		in, args = " AND f.dataset_id = ?", append(args, dataset)
	}
	q := `SELECT 'file/' || f.id FROM files f WHERE f.name = ?` + in + `
		UNION ALL SELECT 'upload/' || u.id FROM uploads u JOIN files f ON f.id = u.file_id WHERE f.name = ?` + in
	objs, err := queryAll(ctx, c, "audit file objects", func(s rowScanner) (*string, error) {
		var o string
		return &o, s.Scan(&o)
	}, q, append(args, args...)...)
	if err != nil {
		return "", nil, err
	}
	// A refusal records "dataset/<ds>/file/<name>": its end is compared
	// (substr from a computed start: the same in SQLite and PostgreSQL).
	suffix := "/file/" + name
	conds := []string{"(substr(object, 1, 8) = 'dataset/' AND substr(object, length(object) - ? + 1) = ?)"}
	args = []any{utf8.RuneCountInString(suffix), suffix}
	for _, o := range objs {
		conds = append(conds, "object = ? OR substr(object, 1, ?) = ?")
		args = append(args, o, len(o)+1, o+"/")
	}
	return "(" + strings.Join(conds, " OR ") + ")", args, nil
}

// AuditFile is what the audit list shows of the file a record concerns.
type AuditFile struct {
	Name string
	Size int64 // plaintext bytes; 0 when unknown (a refusal names only the file)
}

// AuditFiles maps the objects of records to the files they concern:
// "file/<id>[/...]" and "upload/<id>[/...]" to the file's name and size,
// from the catalog, which keeps the files of deleted datasets; a refused
// fetch's "dataset/<ds>/file/<name>" to name. Objects naming no file are
// left out.
func (c *Catalog) AuditFiles(ctx context.Context, objects []string) (map[string]AuditFile, error) {
	out := map[string]AuditFile{}
	ids := map[string][]string{} // "file/<id>" or "upload/<id>" -> objects
	for _, o := range objects {
		kind, rest, _ := strings.Cut(o, "/")
		switch kind {
		case "dataset":
			if _, name, ok := strings.Cut(rest, "/file/"); ok {
				out[o] = AuditFile{Name: name}
			}
		case "file", "upload":
			id, _, _ := strings.Cut(rest, "/")
			ids[kind+"/"+id] = append(ids[kind+"/"+id], o)
		}
	}
	for key, objs := range ids {
		kind, id, _ := strings.Cut(key, "/")
		q := `SELECT name, size FROM files WHERE id = ?`
		if kind == "upload" {
			q = `SELECT f.name, f.size FROM uploads u JOIN files f ON f.id = u.file_id WHERE u.id = ?`
		}
		var f AuditFile
		err := c.db.QueryRowContext(ctx, q, id).Scan(&f.Name, &f.Size)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("catalog: audit files: %w", err)
		}
		for _, o := range objs {
			out[o] = f
		}
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
