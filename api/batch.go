package api

// Batch presigning: one call to dozod for many pieces, so a client moving a
// 200 GB file makes a few hundred broker round trips instead of tens of
// thousands. Each piece passes the same checks as the single presign.
//
//	POST /v1/uploads/{upload}/presign-batch  PresignBatchRequest -> PresignBatchResponse (PUT URLs)
//	POST /v1/fetches/{file}/presign-batch    PresignBatchRequest -> PresignBatchResponse (GET URLs)

// MaxPresignBatch is the most pieces one batch may ask for.
const MaxPresignBatch = 256

// PresignBatchRequest lists pieces as {target, key}, as PresignRequest.
type PresignBatchRequest struct {
	Pieces []PresignRequest `json:"pieces"`
}

// PresignBatchResponse holds one URL per requested piece, in request
// order. The batch is all or nothing: one piece failing its check fails
// the call.
type PresignBatchResponse struct {
	URLs []PresignResponse `json:"urls"`
}
