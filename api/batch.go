package api

import "github.com/dozo-vault/dozo/storage"

// Batch presigning: one call to dozod for many pieces, so a client moving a
// 200 GB file makes a few hundred broker round trips instead of tens of
// thousands. Each upload piece passes the same checks as the single
// presign; a fetch batch names segments, and its answer carries their
// manifest entries with the URLs.
//
//	POST /v1/uploads/{upload}/presign-batch  PresignBatchRequest -> PresignBatchResponse (PUT URLs)
//	POST /v1/fetches/{file}/presign-batch    FetchBatchRequest -> FetchBatchResponse (manifest entries and GET URLs)

// MaxPresignBatch is the most pieces one batch may ask for.
const MaxPresignBatch = 256

// PresignBatchRequest lists an upload's pieces as {target, key}, as
// PresignRequest.
type PresignBatchRequest struct {
	Pieces []PresignRequest `json:"pieces"`
}

// PresignBatchResponse holds one URL per requested piece, in request
// order. The batch is all or nothing: one piece failing its check fails
// the call.
type PresignBatchResponse struct {
	URLs []PresignResponse `json:"urls"`
}

// FetchBatchRequest asks for the manifest entries of segments First ..
// First+Count-1 of a file and GET URLs for their data pieces (0..K-1), or
// for their parity pieces (K..K+M-1) when Parity is set (a degraded read).
// Count*pieces must not exceed MaxPresignBatch.
type FetchBatchRequest struct {
	First  int  `json:"first"`
	Count  int  `json:"count"`
	Parity bool `json:"parity,omitempty"`
}

// FetchBatchResponse carries the entries of the segments asked for, in
// order, taken from the file's signed manifest after dozod verified its
// MAC, and one URL per piece asked for: segment by segment, piece by piece
// in index order. A client checks every piece it reads against these
// entries' hashes.
type FetchBatchResponse struct {
	Segments []storage.SegmentMeta `json:"segments"`
	URLs     []PresignResponse     `json:"urls"`
}

// FoldedCount is how many segments a presign folded into the call that
// opens a transfer covers (BeginUploadRequest.PresignSegments, the fetch's
// FetchBatchRequest): want, cut to the segments a file of n segments has
// from first on and to the whole segments of per pieces each that one
// batch of MaxPresignBatch holds. The caller of those calls cannot know n
// or per before the answer, so a longer ask is cut rather than refused.
func FoldedCount(want, first, n, per int) int {
	return max(0, min(want, n-first, MaxPresignBatch/max(per, 1)))
}
