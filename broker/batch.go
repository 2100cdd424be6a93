package broker

import (
	"net/http"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
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
	urls, err := s.presignPuts(q, u, ds, plan, targets, req.Pieces, false)
	if err != nil {
		return err
	}
	return q.reply(http.StatusOK, api.PresignBatchResponse{URLs: urls})
}

// presignPuts presigns PUTs of pieces of open upload u, in order, once
// every one passed checkPutPiece: all or nothing. Unless u was created by
// this request (fresh), it extends the session's life, as any presign
// does; a fresh session's life starts now already. The presign batch and
// a begin that asks for its first URLs both come here.
func (s *Server) presignPuts(q *request, u *catalog.Upload, ds *catalog.Dataset, plan uploadPlan, targets []storage.Target, pieces []api.PresignRequest, fresh bool) ([]api.PresignResponse, error) {
	checked := make([]Target, len(pieces))
	sizes := make([]int64, len(pieces))
	for i, p := range pieces {
		var err error
		if checked[i], sizes[i], err = s.checkPutPiece(u, ds, plan, targets, p); err != nil {
			return nil, err
		}
	}
	if !fresh {
		if err := s.cat.TouchUpload(q.ctx, u.ID, s.now().Add(s.uploadTTL)); err != nil {
			return nil, errorf(http.StatusConflict, "upload %s is no longer open", u.ID)
		}
	}
	out := make([]api.PresignResponse, len(pieces))
	for i, p := range pieces {
		url, err := checked[i].PresignPut(q.ctx, p.Key, s.presign)
		if err != nil {
			return nil, internal("presigning", err)
		}
		s.countPresign(http.MethodPut, sizes[i])
		out[i] = api.PresignResponse{URL: url.String(), Method: http.MethodPut, ExpiresAt: s.now().Add(s.presign)}
	}
	return out, nil
}

// firstPieces lists every piece of segments 0..n-1 of upload u, segment by
// segment and piece by piece, each on the target placement puts it on:
// what a begin asking for its first URLs presigns.
func firstPieces(u *catalog.Upload, plan uploadPlan, targets []storage.Target, n int) ([]api.PresignRequest, error) {
	out := make([]api.PresignRequest, 0, n*plan.layout.Shards())
	for seg := range n {
		placed, err := storage.Place(targets, plan.layout, seg)
		if err != nil {
			return nil, internal("placing pieces", err)
		}
		for i, t := range placed {
			out = append(out, api.PresignRequest{Target: t.ID(), Key: storage.PieceKey(u.File.DatasetID, u.File.ID, seg, i)})
		}
	}
	return out, nil
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
	out, err := s.fetchBatch(q, v.m, req)
	if err != nil {
		return err
	}
	return q.reply(http.StatusOK, out)
}

// fetchBatch answers req for the verified manifest m: the entries of the
// segments asked for and GET URLs for their data (or parity) pieces. The
// caller has checked that the file may be read now.
func (s *Server) fetchBatch(q *request, m *storage.Manifest, req api.FetchBatchRequest) (*api.FetchBatchResponse, error) {
	lo, hi := batchPieces(m, req.Parity)
	n := m.SegmentCount()
	if req.First < 0 || req.Count < 1 || req.First >= n || req.Count > n-req.First {
		return nil, badRequest("segments %d..%d: the file has segments 0..%d", req.First, req.First+req.Count-1, n-1)
	}
	if req.Count*(hi-lo) > api.MaxPresignBatch {
		return nil, badRequest("a batch presigns 1 to %d pieces, not %d", api.MaxPresignBatch, req.Count*(hi-lo))
	}
	out := &api.FetchBatchResponse{Segments: m.Segments[req.First : req.First+req.Count]}
	for _, seg := range out.Segments {
		for j := lo; j < hi; j++ {
			p := seg.Pieces[j]
			t, err := s.target(p.Target)
			if err != nil {
				return nil, err
			}
			url, err := t.PresignGet(q.ctx, storage.PieceKey(m.DatasetID, m.FileID, seg.Index, j), s.presign)
			if err != nil {
				return nil, internal("presigning", err)
			}
			s.countPresign(http.MethodGet, seg.PieceSize)
			out.URLs = append(out.URLs, api.PresignResponse{URL: url.String(), Method: http.MethodGet, ExpiresAt: s.now().Add(s.presign)})
		}
	}
	return out, nil
}

// batchPieces is the range of piece indexes a fetch batch presigns: the
// data pieces, or the parity pieces for a degraded read.
func batchPieces(m *storage.Manifest, parity bool) (lo, hi int) {
	if parity {
		return m.K, m.K + m.M
	}
	return 0, m.K
}
