package broker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// uploadPlan is the shape of one file's upload.
type uploadPlan struct {
	layout     storage.Layout
	storedSize int64 // payload bytes
	segments   int
}

func planUpload(ds *catalog.Dataset, size int64) (uploadPlan, error) {
	l := storage.Layout{K: ds.K, M: ds.M, SegmentSize: ds.SegmentSize}
	stored := crypto.CiphertextSize(size)
	if stored < 0 {
		return uploadPlan{}, fmt.Errorf("size %d out of range", size)
	}
	n := (stored + l.SegmentSize - 1) / l.SegmentSize
	if n > storage.MaxSegments {
		return uploadPlan{}, fmt.Errorf("size %d needs %d segments, more than %d", size, n, storage.MaxSegments)
	}
	return uploadPlan{layout: l, storedSize: stored, segments: int(n)}, nil
}

// segmentSize is the stored size of segment i of the plan.
func (p uploadPlan) segmentSize(i int) int64 {
	return min(p.layout.SegmentSize, p.storedSize-int64(i)*p.layout.SegmentSize)
}

// uploadTargets resolves the targets fixed at the start of an upload.
func (s *Server) uploadTargets(u *catalog.Upload) ([]storage.Target, error) {
	out := make([]storage.Target, 0, len(u.Targets))
	for _, ref := range u.Targets {
		t, err := s.target(ref.ID)
		if err != nil {
			return nil, err
		}
		if t.Domain() != ref.Domain {
			return nil, &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("storage target %q changed failure domain since the upload began", ref.ID)}
		}
		out = append(out, t)
	}
	return out, nil
}

// plannedTargets is an upload's coding plan and its targets, in the order
// placement uses them: what every piece and segment check needs.
func (s *Server) plannedTargets(u *catalog.Upload, ds *catalog.Dataset) (uploadPlan, []storage.Target, error) {
	plan, err := planUpload(ds, u.File.Size)
	if err != nil {
		return uploadPlan{}, nil, internal("planning", err)
	}
	targets, err := s.uploadTargets(u)
	return plan, targets, err
}

func (s *Server) apiUpload(ctx context.Context, u *catalog.Upload, ds *catalog.Dataset) (api.Upload, error) {
	segs, err := s.cat.Segments(ctx, u.File.ID)
	if err != nil {
		return api.Upload{}, internal("reading segments", err)
	}
	ts := make([]api.Target, len(u.Targets))
	for i, t := range u.Targets {
		ts[i] = api.Target{ID: t.ID, Domain: t.Domain}
	}
	rows, err := placement(u.Targets, storage.Layout{K: ds.K, M: ds.M, SegmentSize: ds.SegmentSize})
	if err != nil {
		return api.Upload{}, internal("placing pieces", err)
	}
	state := u.State
	if state == catalog.UploadOpen && s.now().After(u.ExpiresAt) {
		state = catalog.UploadExpired
	}
	return api.Upload{
		ID: u.ID, FileID: u.File.ID, Dataset: u.File.DatasetID, Name: u.File.Name, Size: u.File.Size,
		K: ds.K, M: ds.M, SegmentSize: ds.SegmentSize, PlainSegmentSize: ds.PlainSegmentSize,
		Segments: u.Segments, Targets: ts, Placement: rows, Committed: segs, ExpiresAt: u.ExpiresAt, State: state,
		HashAlg: u.File.HashAlg,
	}, nil
}

func (s *Server) beginUpload(q *request) error {
	a, err := s.requireDataset(q, q.r.PathValue("ds"), "submitter")
	if err != nil {
		return err
	}
	// The audit record's dataset: its object becomes the upload.
	q.dataset = a.ds.ID

	if err := a.refuseFrozen(); err != nil { // access.go
		return err
	}
	var req api.BeginUploadRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if err := ValidateName(req.Name); err != nil {
		return badRequest("%v", err)
	}
	q.object = "dataset/" + a.ds.ID + "/file/" + req.Name
	if req.Size < 0 || req.Size > MaxFileSize {
		return badRequest("size %d out of range 0..%d", req.Size, int64(MaxFileSize))
	}
	if req.HashAlg == "" {
		req.HashAlg = storage.DefaultHashAlg
	}
	if req.HashAlg != storage.HashSHA256 && req.HashAlg != storage.HashBLAKE3 {
		return badRequest("hash_alg %q: want %q or %q", req.HashAlg, storage.HashBLAKE3, storage.HashSHA256)
	}
	fileKey, err := decodeFixed("file_key", req.FileKey, crypto.FileKeySize)
	if err != nil {
		return badRequest("%v", err)
	}
	defer clear(fileKey)
	nonce, err := decodeFixed("nonce", req.Nonce, crypto.NonceSize)
	if err != nil {
		return badRequest("%v", err)
	}
	plan, err := planUpload(a.ds, req.Size)
	if err != nil {
		return badRequest("%v", err)
	}
	if req.PresignSegments < 0 || req.PresignSegments > api.MaxPresignBatch {
		return badRequest("presign_segments %d out of range 0..%d", req.PresignSegments, api.MaxPresignBatch)
	}
	if u, err := s.resumable(q, a.ds, &req, fileKey, nonce); u != nil || err != nil {
		if err != nil {
			return err
		}
		q.object = "upload/" + u.ID
		au, err := s.apiUpload(q.ctx, u, a.ds)
		if err != nil {
			return err
		}
		if err := s.presignFirst(q, u, a.ds, req.PresignSegments, &au, false); err != nil {
			return err
		}
		return q.reply(http.StatusOK, au)
	}
	// Pieces go only to targets that are up (ops.go); the session keeps
	// this set, so every segment of the upload is placed the same way.
	targets, err := s.uploadPlacement(q.ctx, plan.layout)
	if err != nil {
		return err
	}
	fileID := newID("f")
	hdr, err := crypto.NewHeaderObject(fileKey, nonce, crypto.NewTransitRecipient(q.ctx, s.keys, a.ds.TransitKey, fileID))
	if err != nil {
		return internal("wrapping the file key", err)
	}
	now := s.now()
	refs := make([]catalog.TargetRef, len(targets))
	for i, t := range targets {
		refs[i] = catalog.TargetRef{ID: t.ID(), Domain: t.Domain()}
	}
	u := catalog.Upload{
		ID: newID("u"),
		File: catalog.File{ID: fileID, DatasetID: a.ds.ID, Name: req.Name, Size: req.Size, StoredSize: plan.storedSize,
			HashAlg: req.HashAlg, HeaderObject: hdr},
		Segments: plan.segments, Targets: refs, CreatedBy: q.user.Name, CreatedAt: now, ExpiresAt: now.Add(s.uploadTTL),
	}
	if err := s.cat.BeginUpload(q.ctx, u); errors.Is(err, catalog.ErrNameTaken) {
		return nameTaken(a.ds.ID, req.Name)
	} else if err != nil {
		return internal("recording the upload", err)
	}
	q.object = "upload/" + u.ID
	stored, err := s.cat.Upload(q.ctx, u.ID)
	if err != nil {
		return internal("reading the upload", err)
	}
	au, err := s.apiUpload(q.ctx, stored, a.ds)
	if err != nil {
		return err
	}
	if err := s.presignFirst(q, stored, a.ds, req.PresignSegments, &au, true); err != nil {
		return err
	}
	return q.reply(http.StatusCreated, au)
}

// presignFirst gives au the PUT URLs a begin asked for with it (want
// segments, cut by api.FoldedCount): every piece of the first segments,
// checked and presigned as a presign batch of those pieces, in the same
// order, would be. The caller is the session's creator and passed the
// submitter and freeze checks of the begin, which are the batch's
// (openUpload). The audit record's detail says which URLs were made.
// fresh: this begin created the session (presignPuts).
func (s *Server) presignFirst(q *request, u *catalog.Upload, ds *catalog.Dataset, want int, au *api.Upload, fresh bool) error {
	if want == 0 {
		return nil
	}
	plan, targets, err := s.plannedTargets(u, ds)
	if err != nil {
		return err
	}
	n := api.FoldedCount(want, 0, u.Segments, plan.layout.Shards())
	q.detail = fmt.Sprintf("with PUT URLs of the %d pieces of segments 0..%d", n*plan.layout.Shards(), n-1)
	pieces, err := firstPieces(u, plan, targets, n)
	if err != nil {
		return err
	}
	urls, err := s.presignPuts(q, u, ds, plan, targets, pieces, fresh)
	if err != nil {
		return err
	}
	au.Presigned = urls
	return nil
}

func nameTaken(ds, name string) *httpError {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("dataset %q already has a file or an upload in progress named %q", ds, name),
		hint: "choose another name, or resume the earlier upload from the same machine (same file, same journal)"}
}

// resumable returns the open upload of the same name when the request is a
// resume of it: same caller, size and hash algorithm, and the same file
// key and nonce (checked by unwrapping the stored header with Transit and
// comparing in constant time). Returning a session whose header holds a
// different key would make the client encrypt with a key nobody can
// unwrap; so anything short of an exact match is a 409, and nothing
// changes.
func (s *Server) resumable(q *request, ds *catalog.Dataset, req *api.BeginUploadRequest, fileKey, nonce []byte) (*catalog.Upload, error) {
	u, err := s.cat.OpenUploadByName(q.ctx, ds.ID, req.Name)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("looking up uploads", err)
	}
	if u.CreatedBy != q.user.Name || u.File.Size != req.Size || u.File.HashAlg != req.HashAlg || !s.now().Before(u.ExpiresAt) {
		return nil, nameTaken(ds.ID, req.Name)
	}
	key, n, err := crypto.OpenHeaderObject(u.File.HeaderObject, crypto.NewTransitIdentity(q.ctx, s.keys, ds.TransitKey, u.File.ID))
	if err != nil {
		return nil, internal("opening the upload's header", err)
	}
	defer clear(key)
	if subtle.ConstantTimeCompare(key, fileKey) != 1 || subtle.ConstantTimeCompare(n, nonce) != 1 {
		return nil, nameTaken(ds.ID, req.Name)
	}
	if err := s.cat.TouchUpload(q.ctx, u.ID, s.now().Add(s.uploadTTL)); err != nil {
		return nil, nameTaken(ds.ID, req.Name)
	}
	return s.cat.Upload(q.ctx, u.ID)
}

// ownUpload loads an upload the caller started (admins may see any). Any
// other caller gets the same 404 as for an unknown id.
func (s *Server) ownUpload(q *request) (*catalog.Upload, *catalog.Dataset, error) {
	u, a, err := s.uploadAccess(q)
	if err != nil {
		return nil, nil, err
	}
	return u, &a.Dataset, nil
}

// uploadAccess is ownUpload with the caller's roles on the upload's
// dataset and its freeze, read with the dataset in one statement
// (catalog.Access). Its refusals, and their order, are those of the
// separate reads: a frozen caller first, then an unknown upload or one of
// another user (the same 404), then a dataset gone since the upload began.
func (s *Server) uploadAccess(q *request) (*catalog.Upload, *catalog.DatasetAccess, error) {
	id := q.r.PathValue("upload")
	q.object = "upload/" + id
	notFound := errorf(http.StatusNotFound, "upload %q not found", id)
	if storage.ValidateID(id) != nil {
		if err := s.checkUserFrozen(q); err != nil { // access.go
			return nil, nil, err
		}
		return nil, nil, notFound
	}
	u, err := s.cat.Upload(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		if err := s.checkUserFrozen(q); err != nil {
			return nil, nil, err
		}
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, internal("reading the upload", err)
	}
	q.dataset = u.File.DatasetID // the audit record's, so it need not look it up
	v, err := s.checks(q, catalog.AccessQuery{Dataset: u.File.DatasetID})
	if err != nil {
		return nil, nil, err
	}
	if err := callerFrozen(q, v); err != nil {
		return nil, nil, err
	}
	if u.CreatedBy != q.user.Name && !s.isAdmin(q.user) {
		return nil, nil, notFound
	}
	if len(v.Datasets) == 0 {
		// Hidden by a deletion since the upload began: its uploader (or
		// an admin) is told what became of the dataset.
		_, err := s.cat.Dataset(q.ctx, u.File.DatasetID)
		if errors.Is(err, catalog.ErrNotFound) {
			if err := s.deletedState(q, u.File.DatasetID, true, http.StatusGone); err != nil {
				return nil, nil, err
			}
			return nil, nil, notFound
		}
		if err != nil {
			return nil, nil, internal("reading the dataset", err)
		}
		// Undeleted between the two reads.
		return nil, nil, &httpError{status: http.StatusServiceUnavailable, msg: "the dataset changed while reading it; retry"}
	}
	a := &v.Datasets[0]
	s.macMemo.observe(a.TransitKey, a.KeyGeneration) // a rotation by another dozod
	return u, a, nil
}

// openUpload is ownUpload for calls that change an upload (stillOpen).
func (s *Server) openUpload(q *request) (*catalog.Upload, *catalog.Dataset, error) {
	u, a, err := s.uploadAccess(q)
	if err != nil {
		return nil, nil, err
	}
	if err := s.stillOpen(q, u, a); err != nil {
		return nil, nil, err
	}
	return u, &a.Dataset, nil
}

// stillOpen refuses a change to an upload that is no longer open or is
// past its expiry, or whose caller is no longer a submitter of its
// dataset (an admin needs no role), or whose dataset is frozen.
func (s *Server) stillOpen(q *request, u *catalog.Upload, a *catalog.DatasetAccess) error {
	if u.State == catalog.UploadOpen && !s.now().Before(u.ExpiresAt) {
		u.State = catalog.UploadExpired
	}
	if u.State != catalog.UploadOpen {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("upload %s is %s", u.ID, u.State),
			hint: "start a new upload"}
	}
	if !s.isAdmin(q.user) && !slices.Contains(a.Roles, catalog.RoleSubmitter) {
		return notSubmitter(a.ID)
	}
	if a.Frozen {
		return datasetFrozen(a.ID)
	}
	return nil
}

func (s *Server) showUpload(q *request) error {
	u, ds, err := s.ownUpload(q)
	if err != nil {
		return err
	}
	au, err := s.apiUpload(q.ctx, u, ds)
	if err != nil {
		return err
	}
	return q.reply(http.StatusOK, au)
}

// placedRef is a target known by its ID and failure domain only: all
// storage.Place looks at. Its storage methods are never called.
type placedRef struct {
	storage.Target
	id, domain string
}

func (r placedRef) ID() string     { return r.id }
func (r placedRef) Domain() string { return r.domain }

// placement is the upload's placement as api.Upload carries it: row r
// lists the target IDs of the pieces of every segment s with
// s % len(refs) == r, as storage.Place puts them over refs. Place starts
// segment s at target s mod the number of targets and walks on from
// there, so the rows repeat with that period; checkPlacement and
// checkSegment place with the same Place over the same targets (their
// IDs and domains are checked against refs).
func placement(refs []catalog.TargetRef, l storage.Layout) ([][]string, error) {
	ts := make([]storage.Target, len(refs))
	for i, r := range refs {
		ts[i] = placedRef{id: r.ID, domain: r.Domain}
	}
	rows := make([][]string, len(ts))
	for seg := range rows {
		placed, err := storage.Place(ts, l, seg)
		if err != nil {
			return nil, err
		}
		rows[seg] = make([]string, len(placed))
		for i, t := range placed {
			rows[seg][i] = t.ID()
		}
	}
	return rows, nil
}

// checkPlacement verifies that target is where storage.Place puts piece
// `piece` of segment `seg` among the upload's targets.
func checkPlacement(targets []storage.Target, l storage.Layout, seg, piece int, target string) error {
	placed, err := storage.Place(targets, l, seg)
	if err != nil {
		return err
	}
	if placed[piece].ID() != target {
		return fmt.Errorf("piece %d of segment %d belongs on target %s, not %q", piece, seg, placed[piece].ID(), target)
	}
	return nil
}

func (s *Server) presignPut(q *request) error {
	u, ds, err := s.openUpload(q)
	if err != nil {
		return err
	}
	var req api.PresignRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	plan, targets, err := s.plannedTargets(u, ds)
	if err != nil {
		return err
	}
	t, size, err := s.checkPutPiece(u, ds, plan, targets, req)
	if err != nil {
		return err
	}
	q.object = "upload/" + u.ID + "/" + req.Key
	if err := s.cat.TouchUpload(q.ctx, u.ID, s.now().Add(s.uploadTTL)); err != nil {
		return errorf(http.StatusConflict, "upload %s is no longer open", u.ID)
	}
	url, err := t.PresignPut(q.ctx, req.Key, s.presign)
	if err != nil {
		return internal("presigning", err)
	}
	s.countPresign(http.MethodPut, size)
	return q.reply(http.StatusOK, api.PresignResponse{URL: url.String(), Method: http.MethodPut, ExpiresAt: s.now().Add(s.presign)})
}

// checkPutPiece returns the target a PUT of req's piece may be presigned
// on, and the piece's size: the key must name a piece of this upload and
// the target must be where placement puts it (also used by the batch
// presign).
func (s *Server) checkPutPiece(u *catalog.Upload, ds *catalog.Dataset, plan uploadPlan, targets []storage.Target, req api.PresignRequest) (Target, int64, error) {
	seg, piece, err := ParsePieceKey(req.Key, ds.ID, u.File.ID, u.Segments, plan.layout.Shards())
	if err != nil {
		return nil, 0, badRequest("%v", err)
	}
	if err := checkPlacement(targets, plan.layout, seg, piece, req.Target); err != nil {
		return nil, 0, badRequest("%v", err)
	}
	t, err := s.target(req.Target)
	return t, (plan.segmentSize(seg) + int64(plan.layout.K) - 1) / int64(plan.layout.K), err
}

// checkSegment verifies a client's segment metadata against what the plan
// and placement require. Hashes can only be checked for form here; a
// scrub (or the reader) checks them against the bytes.
func checkSegment(meta *storage.SegmentMeta, plan uploadPlan, targets []storage.Target, n int) error {
	if meta.Index != n {
		return fmt.Errorf("segment index %d in the body, %d in the path", meta.Index, n)
	}
	size := plan.segmentSize(n)
	if meta.Size != size {
		return fmt.Errorf("segment %d: size %d, want %d", n, meta.Size, size)
	}
	k := int64(plan.layout.K)
	if ps := (size + k - 1) / k; meta.PieceSize != ps {
		return fmt.Errorf("segment %d: piece size %d, want %d", n, meta.PieceSize, ps)
	}
	if len(meta.Pieces) != plan.layout.Shards() {
		return fmt.Errorf("segment %d: %d pieces, want %d", n, len(meta.Pieces), plan.layout.Shards())
	}
	placed, err := storage.Place(targets, plan.layout, n)
	if err != nil {
		return err
	}
	for i, p := range meta.Pieces {
		if p.Target != placed[i].ID() {
			return fmt.Errorf("segment %d piece %d: target %q, want %s", n, i, p.Target, placed[i].ID())
		}
		if !isLowerHex(p.Hash, 64) {
			return fmt.Errorf("segment %d piece %d: hash must be 64 lowercase hex digits", n, i)
		}
	}
	return nil
}

// statPieces checks that every piece of the segment is stored, whole.
func (s *Server) statPieces(ctx context.Context, ds, file string, meta *storage.SegmentMeta) error {
	errs := make([]error, len(meta.Pieces))
	var wg sync.WaitGroup
	for i, p := range meta.Pieces {
		wg.Go(func() {
			t, err := s.target(p.Target)
			if err != nil {
				errs[i] = err
				return
			}
			key := storage.PieceKey(ds, file, meta.Index, i)
			oi, err := t.Stat(ctx, key)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				errs[i] = errorf(http.StatusConflict, "piece %d of segment %d is not stored on %s; upload it first", i, meta.Index, p.Target)
			case err != nil:
				s.noteTargetError(ctx, p.Target, err)
				errs[i] = &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("cannot check piece %d of segment %d on %s", i, meta.Index, p.Target), cause: err}
			case oi.Size != meta.PieceSize:
				errs[i] = errorf(http.StatusConflict, "piece %d of segment %d on %s has %d bytes, want %d", i, meta.Index, p.Target, oi.Size, meta.PieceSize)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) commitSegment(q *request) error {
	u, ds, err := s.openUpload(q)
	if err != nil {
		return err
	}
	n, err := parseIndex(q.r.PathValue("n"), u.Segments)
	if err != nil {
		return badRequest("segment: %v", err)
	}
	q.object = fmt.Sprintf("upload/%s/segment/%d", u.ID, n)
	var meta storage.SegmentMeta
	if err := q.decode(&meta); err != nil {
		return err
	}
	if err := s.checkCommit(q, u, ds, &meta, n); err != nil {
		return err
	}
	now := s.now()
	if err := s.cat.CommitSegment(q.ctx, u.ID, meta, now, now.Add(s.uploadTTL)); errors.Is(err, catalog.ErrState) {
		return errorf(http.StatusConflict, "upload %s is no longer open", u.ID)
	} else if err != nil {
		return internal("committing the segment", err)
	}
	u, err = s.cat.Upload(q.ctx, u.ID)
	if err != nil {
		return internal("reading the upload", err)
	}
	au, err := s.apiUpload(q.ctx, u, ds)
	if err != nil {
		return err
	}
	return q.reply(http.StatusOK, au)
}

// checkCommit checks that segment n of upload u may be committed as meta:
// it passes checkSegment and every piece is stored, whole (statPieces).
// The commit route and a complete carrying a segment's commit both check
// with it; the complete then records the segment in its own transaction
// (catalog.CommitAndComplete).
func (s *Server) checkCommit(q *request, u *catalog.Upload, ds *catalog.Dataset, meta *storage.SegmentMeta, n int) error {
	plan, targets, err := s.plannedTargets(u, ds)
	if err != nil {
		return err
	}
	if err := checkSegment(meta, plan, targets, n); err != nil {
		return badRequest("%v", err)
	}
	return s.statPieces(q.ctx, ds.ID, u.File.ID, meta)
}

func (s *Server) completeUpload(q *request) error {
	u, a, err := s.uploadAccess(q)
	if err != nil {
		return err
	}
	ds := &a.Dataset
	var req api.CompleteUploadRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if !isLowerHex(req.SHA256, 64) || !isLowerHex(req.MD5, 32) {
		return badRequest("sha256 and md5 must be lowercase hex of the plaintext (64 and 32 digits)")
	}
	// A repeated complete (say, the response to the first was lost) gets
	// the same file back, if it carries the same checksums.
	if u.State == catalog.UploadComplete {
		f, err := s.cat.File(q.ctx, u.File.ID)
		if err != nil {
			return internal("reading the file", err)
		}
		if f.SHA256 != req.SHA256 || f.MD5 != req.MD5 {
			return errorf(http.StatusConflict, "upload %s was completed with other checksums", u.ID)
		}
		return q.reply(http.StatusOK, apiFile(f))
	}
	if err := s.stillOpen(q, u, a); err != nil {
		return err
	}
	segs, err := s.cat.Segments(q.ctx, u.File.ID)
	if err != nil {
		return internal("reading segments", err)
	}
	if c := req.Commit; c != nil {
		// The commit route's checks, in its words; the audit record names
		// the segment as the commit's would. A complete that would be
		// refused for a missing segment commits nothing.
		n, err := parseIndex(strconv.Itoa(c.Index), u.Segments)
		if err != nil {
			return badRequest("segment: %v", err)
		}
		q.detail = fmt.Sprintf("with the commit of upload/%s/segment/%d", u.ID, n)
		if err := s.checkCommit(q, u, ds, c, n); err != nil {
			return err
		}
		// The segment is recorded with the completion, in its transaction
		// (catalog.CommitAndComplete); the manifest is built with it.
		segs = withSegment(segs, *c)
	}
	if len(segs) != u.Segments {
		return incomplete(u, len(segs))
	}
	plan, err := planUpload(ds, u.File.Size)
	if err != nil {
		return internal("planning", err)
	}
	m, err := storage.NewManifest(ds.ID, u.File.ID, plan.layout, u.File.HashAlg, segs)
	if err != nil {
		return internal("building the manifest", err)
	}
	if m.Size != u.File.StoredSize {
		return internal("building the manifest", fmt.Errorf("manifest size %d, want %d", m.Size, u.File.StoredSize))
	}
	if err := m.Sign(q.ctx, s.manifestAuth(ds.TransitKey)); err != nil {
		return internal("signing the manifest", err)
	}
	mb, err := m.Marshal()
	if err != nil {
		return internal("encoding the manifest", err)
	}
	targets, err := s.uploadTargets(u)
	if err != nil {
		return err
	}
	if err := filestore.PutMetadata(q.ctx, targets, m, u.File.HeaderObject); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "storing the manifest and header failed; retry complete", cause: err}
	}
	if err := s.putFileInfo(q.ctx, targets, ds, &u.File, req.SHA256, req.MD5); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "storing the file info failed; retry complete", cause: err}
	}
	var f *catalog.File
	if req.Commit != nil {
		f, err = s.cat.CommitAndComplete(q.ctx, u.ID, *req.Commit, req.SHA256, req.MD5, mb, s.now())
	} else {
		f, err = s.cat.CompleteUpload(q.ctx, u.ID, req.SHA256, req.MD5, mb, s.now())
	}
	if errors.Is(err, catalog.ErrState) {
		return errorf(http.StatusConflict, "upload %s cannot complete: %v", u.ID, err)
	} else if err != nil {
		return internal("completing the upload", err)
	}
	q.object = "file/" + f.ID
	return q.reply(http.StatusOK, apiFile(f))
}

// withSegment is the committed segments segs, in index order, once seg is
// committed too (replacing a commit of the same index).
func withSegment(segs []storage.SegmentMeta, seg storage.SegmentMeta) []storage.SegmentMeta {
	out := make([]storage.SegmentMeta, 0, len(segs)+1)
	for _, m := range segs {
		if m.Index != seg.Index {
			out = append(out, m)
		}
	}
	i, _ := slices.BinarySearchFunc(out, seg.Index, func(m storage.SegmentMeta, idx int) int { return m.Index - idx })
	return slices.Insert(out, i, seg)
}

func incomplete(u *catalog.Upload, have int) *httpError {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("upload %s has %d of %d segments committed", u.ID, have, u.Segments),
		hint: "commit every segment, then complete"}
}

func (s *Server) abortUpload(q *request) error {
	u, _, err := s.ownUpload(q)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusGone {
		// The dataset's deletion ended the session and removed its
		// pieces: aborting it is done.
		u, err = &catalog.Upload{State: catalog.UploadAborted}, nil
	}
	if err != nil {
		return err
	}
	if err := q.noBody(); err != nil {
		return err
	}
	switch u.State {
	case catalog.UploadAborted, catalog.UploadExpired:
		q.status = http.StatusNoContent
		q.w.WriteHeader(http.StatusNoContent)
		return nil
	case catalog.UploadComplete:
		return errorf(http.StatusConflict, "upload %s is complete; it cannot be aborted", u.ID)
	}
	if err := s.cat.EndUpload(q.ctx, u.ID, catalog.UploadAborted, s.now()); err != nil && !errors.Is(err, catalog.ErrState) {
		return internal("aborting the upload", err)
	}
	// Delete what is there now; the reaper repeats this once every URL
	// presigned for the session has expired.
	if err := s.cleanUpload(q.ctx, u); err != nil {
		s.log.Warn("abort: deleting pieces failed; the reaper will retry", "upload", u.ID, "error", err)
	}
	q.status = http.StatusNoContent
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
