package broker

import (
	"net/http"

	"github.com/dozo-vault/dozo/api"
)

// batchRoutes presign many pieces per request: with per-piece presigning a
// 200 GB fetch made ~20k broker round trips. Authorisation and every
// per-piece check are the single presign's (checkPutPiece, checkGetPiece);
// the batch is all or nothing, so a client never holds URLs for a request
// that was partly refused.
func (s *Server) batchRoutes() {
	s.route("POST /v1/uploads/{upload}/presign-batch", "upload.presign-batch", true, s.presignPutBatch)
	s.route("POST /v1/fetches/{file}/presign-batch", "fetch.presign-batch", true, s.presignGetBatch)
}

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

func (s *Server) presignGetBatch(q *request) error {
	id := q.r.PathValue("file")
	q.object = "file/" + id
	req, err := decodeBatch(q)
	if err != nil {
		return err
	}
	f, a, err := s.openFetch(q, id)
	if err != nil {
		return err
	}
	checked := make([]Target, len(req.Pieces))
	sizes := make([]int64, len(req.Pieces))
	for i, p := range req.Pieces {
		if checked[i], sizes[i], err = s.checkGetPiece(q, f, a, p); err != nil {
			return err
		}
	}
	out := api.PresignBatchResponse{URLs: make([]api.PresignResponse, len(req.Pieces))}
	for i, p := range req.Pieces {
		url, err := checked[i].PresignGet(q.ctx, p.Key, s.presign)
		if err != nil {
			return internal("presigning", err)
		}
		s.countPresign(http.MethodGet, sizes[i])
		out.URLs[i] = api.PresignResponse{URL: url.String(), Method: http.MethodGet, ExpiresAt: s.now().Add(s.presign)}
	}
	return q.reply(http.StatusOK, out)
}
