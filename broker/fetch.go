package broker

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
)

// fetch returns a file's manifest and its header rewrapped for the
// caller's registered recipient. The file key is unwrapped by Transit
// inside this call and exists here only long enough to be wrapped again.
func (s *Server) fetch(q *request) error {
	dsID, name := q.r.PathValue("ds"), q.r.PathValue("name")
	q.object = "dataset/" + dsID + "/file/" + name
	if err := q.noBody(); err != nil {
		return err
	}
	if ValidateName(name) != nil {
		return notFoundFile(dsID, name)
	}
	a, err := s.readAccess(q, dsID, notFoundFile(dsID, name)) // access.go: grant, freezes
	if err != nil {
		return err
	}
	f, err := s.cat.AvailableFile(q.ctx, dsID, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return notFoundFile(dsID, name)
	}
	if err != nil {
		return internal("reading the file", err)
	}
	q.object = "file/" + f.ID
	rcpt, err := s.cat.Recipient(q.ctx, q.user.Name)
	if err != nil {
		return internal("reading recipient", err)
	}
	if rcpt == "" {
		return &httpError{status: http.StatusConflict, msg: "you have no registered age recipient to wrap the file key for",
			hint: "run `dozo keygen && dozo key register`, then fetch again"}
	}
	r, err := ParseRecipient(rcpt)
	if err != nil {
		return internal("parsing the registered recipient", err)
	}
	m, err := storage.ParseManifest(f.Manifest)
	if err != nil {
		return internal("parsing the manifest", err)
	}
	// The catalog is not trusted blindly: the manifest must carry the
	// dataset key's MAC and name this file.
	if err := m.Verify(q.ctx, s.manifestAuth(a.ds.TransitKey)); err != nil || m.DatasetID != dsID || m.FileID != f.ID {
		return internal("verifying the manifest", errors.Join(err, errors.New("manifest does not verify or names another file")))
	}
	hdr, err := crypto.RewrapHeaderObject(f.HeaderObject, crypto.NewTransitIdentity(q.ctx, s.keys, a.ds.TransitKey, f.ID), r)
	if err != nil {
		return internal("rewrapping the header", err)
	}
	return q.reply(http.StatusOK, api.FetchResponse{
		File: apiFile(f), Manifest: m, HeaderObject: base64.StdEncoding.EncodeToString(hdr), Targets: s.manifestTargets(m),
	})
}

// manifestTargets lists the targets a manifest uses, as configured now.
func (s *Server) manifestTargets(m *storage.Manifest) []api.Target {
	seen := map[string]bool{}
	out := []api.Target{}
	for _, seg := range m.Segments {
		for _, p := range seg.Pieces {
			if seen[p.Target] {
				continue
			}
			seen[p.Target] = true
			t := api.Target{ID: p.Target}
			if ct, ok := s.targets[p.Target]; ok {
				t.Domain = ct.Domain()
			}
			out = append(out, t)
		}
	}
	return out
}

// presignGet presigns a GET for one piece of an available file. Access is
// checked on every call, so a revoked or expired grant stops a download
// within one presign lifetime.
func (s *Server) presignGet(q *request) error {
	id := q.r.PathValue("file")
	q.object = "file/" + id
	var req api.PresignRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	f, a, err := s.openFetch(q, id)
	if err != nil {
		return err
	}
	t, size, err := s.checkGetPiece(q, f, a, req)
	if err != nil {
		return err
	}
	q.object = "file/" + id + "/" + req.Key
	url, err := t.PresignGet(q.ctx, req.Key, s.presign)
	if err != nil {
		return internal("presigning", err)
	}
	s.countPresign(http.MethodGet, size)
	return q.reply(http.StatusOK, api.PresignResponse{URL: url.String(), Method: http.MethodGet, ExpiresAt: s.now().Add(s.presign)})
}

// openFetch returns file id if the caller may read it now: available, and
// the read rule of its dataset (readAccess: grant, roles, freezes) allows
// it. A missing file and a stranger get the same 404.
func (s *Server) openFetch(q *request, id string) (*catalog.File, *dsAccess, error) {
	notFound := errorf(http.StatusNotFound, "file %q not found", id)
	if storage.ValidateID(id) != nil {
		return nil, nil, notFound
	}
	f, err := s.cat.File(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, internal("reading the file", err)
	}
	a, err := s.readAccess(q, f.DatasetID, notFound) // access.go
	if err != nil {
		return nil, nil, err
	}
	if f.State != catalog.FileAvailable {
		return nil, nil, notFound
	}
	return f, a, nil
}

// checkGetPiece returns the target a GET of req's piece may be presigned
// on, and the piece's size: the key must name a piece of file f, stored on
// req.Target according to the catalog (also used by the batch presign).
func (s *Server) checkGetPiece(q *request, f *catalog.File, a *dsAccess, req api.PresignRequest) (Target, int64, error) {
	segments := int((f.StoredSize + a.ds.SegmentSize - 1) / a.ds.SegmentSize)
	seg, piece, err := ParsePieceKey(req.Key, f.DatasetID, f.ID, segments, a.ds.K+a.ds.M)
	if err != nil {
		return nil, 0, badRequest("%v", err)
	}
	meta, err := s.cat.Segment(q.ctx, f.ID, seg)
	if err != nil {
		return nil, 0, internal("reading the segment", err)
	}
	if piece >= len(meta.Pieces) || meta.Pieces[piece].Target != req.Target {
		return nil, 0, badRequest("piece %d of segment %d is not on target %q", piece, seg, req.Target)
	}
	t, err := s.target(req.Target)
	return t, meta.PieceSize, err
}
