package broker

import (
	"net/http"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

func decodeBatch(q *request) (*api.PresignBatchRequest, error) {
	var req api.PresignBatchRequest
	if err := q.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Pieces) == 0 || len(req.Pieces) > api.MaxPresignBatch {
		return nil, badRequest("a batch presigns 1 to %d pieces, not %d", api.MaxPresignBatch, len(req.Pieces))
	}
	return &req, nil
}

func (s *Server) presignPutBatch(q *request) error {
	u, ds, err := s.openUpload(q)
	if err != nil {
		return err
	}
	req, err := decodeBatch(q)
	if err != nil {
		return err
	}
	plan, targets, err := s.plannedTargets(u, ds)
	if err != nil {
		return err
	}
	checked := make([]Target, len(req.Pieces))
	sizes := make([]int64, len(req.Pieces))
	for i, p := range req.Pieces {
		if checked[i], sizes[i], err = s.checkPutPiece(u, ds, plan, targets, p); err != nil {
			return err
		}
	}
	if err := s.cat.TouchUpload(q.ctx, u.ID, s.now().Add(s.uploadTTL)); err != nil {
		return errorf(http.StatusConflict, "upload %s is no longer open", u.ID)
	}
	out := api.PresignBatchResponse{URLs: make([]api.PresignResponse, len(req.Pieces))}
	for i, p := range req.Pieces {
		url, err := checked[i].PresignPut(q.ctx, p.Key, s.presign)
		if err != nil {
			return internal("presigning", err)
		}
		s.countPresign(http.MethodPut, sizes[i])
		out.URLs[i] = api.PresignResponse{URL: url.String(), Method: http.MethodPut, ExpiresAt: s.now().Add(s.presign)}
	}
	return q.reply(http.StatusOK, out)
}

// presignGetBatch returns the manifest entries of a run of segments, from
// the file's verified manifest, and GET URLs for their data (or parity)
// pieces. The client checks every piece it reads against these entries, so
// the fetch call need not carry the whole manifest.
func (s *Server) presignGetBatch(q *request) error {
	id := q.r.PathValue("file")
	q.object = "file/" + id
	var req api.FetchBatchRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	f, a, err := s.openFetch(q, id)
	if err != nil {
		return err
	}
	v, err := s.verifiedManifest(q, f, a.ds)
	if err != nil {
		return err
	}
	m := v.m
	lo, hi := 0, m.K
	if req.Parity {
		lo, hi = m.K, m.K+m.M
	}
	n := m.SegmentCount()
	if req.First < 0 || req.Count < 1 || req.First >= n || req.Count > n-req.First {
		return badRequest("segments %d..%d: the file has segments 0..%d", req.First, req.First+req.Count-1, n-1)
	}
	if req.Count*(hi-lo) > api.MaxPresignBatch {
		return badRequest("a batch presigns 1 to %d pieces, not %d", api.MaxPresignBatch, req.Count*(hi-lo))
	}
	out := api.FetchBatchResponse{Segments: m.Segments[req.First : req.First+req.Count]}
	for _, seg := range out.Segments {
		for j := lo; j < hi; j++ {
			p := seg.Pieces[j]
			t, err := s.target(p.Target)
			if err != nil {
				return err
			}
			url, err := t.PresignGet(q.ctx, storage.PieceKey(m.DatasetID, m.FileID, seg.Index, j), s.presign)
			if err != nil {
				return internal("presigning", err)
			}
			s.countPresign(http.MethodGet, seg.PieceSize)
			out.URLs = append(out.URLs, api.PresignResponse{URL: url.String(), Method: http.MethodGet, ExpiresAt: s.now().Add(s.presign)})
		}
	}
	return q.reply(http.StatusOK, out)
}
