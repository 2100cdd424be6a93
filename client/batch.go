package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// PresignUploadBatch asks dozod for PUT URLs of many pieces of an upload.
func (c *Client) PresignUploadBatch(ctx context.Context, upload string, pieces []api.PresignRequest) ([]api.PresignResponse, error) {
	var r api.PresignBatchResponse
	err := c.do(ctx, http.MethodPost, "/v1/uploads/"+esc(upload)+"/presign-batch", api.PresignBatchRequest{Pieces: pieces}, &r)
	return checkBatch(r, len(pieces), err)
}

// PresignFetchBatch asks dozod for GET URLs of many pieces of a file.
func (c *Client) PresignFetchBatch(ctx context.Context, file string, pieces []api.PresignRequest) ([]api.PresignResponse, error) {
	var r api.PresignBatchResponse
	err := c.do(ctx, http.MethodPost, "/v1/fetches/"+esc(file)+"/presign-batch", api.PresignBatchRequest{Pieces: pieces}, &r)
	return checkBatch(r, len(pieces), err)
}

func checkBatch(r api.PresignBatchResponse, n int, err error) ([]api.PresignResponse, error) {
	if err != nil {
		return nil, err
	}
	if len(r.URLs) != n {
		return nil, fmt.Errorf("dozod presigned %d of %d pieces", len(r.URLs), n)
	}
	return r.URLs, nil
}

const (
	// batchSegments is how many segments' pieces one batch presigns: with
	// 32 MiB segments a broker round trip per ~0.5 GiB instead of per piece.
	batchSegments = 16
	// urlMargin is how much life, by dozod's expiry time, a cached URL must
	// have left to be handed out (a quarter of its lifetime if that is
	// less), so its GET or PUT starts well before storage would reject it.
	// dozod's URLs live about a minute: a grant revoked mid-transfer stops
	// the next batch. A URL that storage rejects all the same (clocks that
	// disagree) is presigned afresh once by PresignedTarget.
	urlMargin = 10 * time.Second
	// urlMaxAge bounds by our own clock how long a URL without an expiry
	// time is kept.
	urlMaxAge = time.Minute
)

// batchPresigner presigns the pieces of the next batchSegments segments
// in one call when a piece not yet presigned is asked for, and hands the
// URLs out one by one. A URL is handed out once; a retry asks again. A
// URL close to its expiry is dropped and its piece presigned again with
// the rest of a new batch, so a transfer slower than the URL lifetime
// carries on and every URL used was authorised within one lifetime. Where
// dozod lacks the batch endpoint it falls back to one call per piece.
type batchPresigner struct {
	prefix string // storage.FilePrefix of the file
	nsegs  int
	// pieces lists what to presign for segment seg: all of an upload's
	// pieces; for a fetch the data pieces, or the parity pieces when a
	// parity piece was asked for (a degraded read).
	pieces func(seg int, parity bool) []api.PresignRequest
	k      int
	batch  func(context.Context, []api.PresignRequest) ([]api.PresignResponse, error)
	single presignFunc
	now    func() time.Time // time.Now; tests set it

	mu      sync.Mutex
	cache   map[string]cachedURL
	batched map[int]bool // windows (first segment) presigned at least once
	noBatch bool
}

type cachedURL struct {
	p   api.PresignResponse
	got time.Time
}

// fresh reports whether c may still be handed out at now.
func (c cachedURL) fresh(now time.Time) bool {
	if c.p.ExpiresAt.IsZero() {
		return now.Sub(c.got) < urlMaxAge
	}
	margin := min(urlMargin, c.p.ExpiresAt.Sub(c.got)/4)
	return c.p.ExpiresAt.Sub(now) > margin
}

// flush drops every cached URL: storage rejected one, so the others of
// its batch are suspect too.
func (b *batchPresigner) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.cache)
}

func (b *batchPresigner) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

func (b *batchPresigner) presign(ctx context.Context, target, key string) (*api.PresignResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ck := target + "\n" + key
	if c, ok := b.cache[ck]; ok {
		delete(b.cache, ck)
		if c.fresh(b.clock()) {
			return &c.p, nil
		}
	}
	seg, piece, ok := b.parse(key)
	if b.noBatch || !ok {
		return b.single(ctx, target, key)
	}
	var reqs []api.PresignRequest
	found := false
	// Windows are aligned, so the concurrent first requests of a
	// prefetching reader (segments 0, 1, 2 in any order) share one batch.
	// A window presigned before whose URLs went stale starts at seg
	// instead: the segments before it are done.
	first := seg - seg%batchSegments
	if b.batched[first] {
		first = seg
	}
	for s := first; s < min(first+batchSegments, b.nsegs) && len(reqs) < api.MaxPresignBatch; s++ {
		for _, r := range b.pieces(s, piece >= b.k) {
			if len(reqs) == api.MaxPresignBatch {
				break
			}
			found = found || r.Target == target && r.Key == key
			reqs = append(reqs, r)
		}
	}
	if !found {
		// Not where the plan puts it (dozod will say why): ask for it alone.
		return b.single(ctx, target, key)
	}
	resps, err := b.batch(ctx, reqs)
	if IsStatus(err, http.StatusNotFound) {
		// An older dozod without the batch endpoint, or no access: the
		// single presign tells which, with its own error.
		p, serr := b.single(ctx, target, key)
		if serr == nil {
			b.noBatch = true
		}
		return p, serr
	}
	if err != nil {
		return nil, err
	}
	if b.batched == nil {
		b.batched = map[int]bool{}
	}
	b.batched[seg-seg%batchSegments] = true
	now := b.clock()
	var mine *api.PresignResponse
	for i, r := range reqs {
		if r.Target == target && r.Key == key {
			mine = &resps[i]
			continue
		}
		b.cache[r.Target+"\n"+r.Key] = cachedURL{resps[i], now}
	}
	return mine, nil
}

// parse returns the segment and piece of a piece key of this file.
func (b *batchPresigner) parse(key string) (seg, piece int, ok bool) {
	rest, found := strings.CutPrefix(key, b.prefix)
	if !found {
		return 0, 0, false
	}
	if n, err := fmt.Sscanf(rest, "seg-%08d/p%02d", &seg, &piece); err != nil || n != 2 || seg < 0 || seg >= b.nsegs {
		return 0, 0, false
	}
	return seg, piece, true
}

// uploadPresigner batches the PUT presigns of upload u over targets ts,
// placing pieces as storage.Place does (dozod checks the same placement).
func (c *Client) uploadPresigner(u *api.Upload, layout storage.Layout, ts func() []storage.Target) *batchPresigner {
	return &batchPresigner{
		prefix: storage.FilePrefix(u.Dataset, u.FileID),
		nsegs:  u.Segments,
		k:      layout.Shards(), // every piece is wanted: never "parity"
		pieces: func(seg int, _ bool) []api.PresignRequest {
			placed, err := storage.Place(ts(), layout, seg)
			if err != nil {
				return nil
			}
			out := make([]api.PresignRequest, len(placed))
			for i, t := range placed {
				out[i] = api.PresignRequest{Target: t.ID(), Key: storage.PieceKey(u.Dataset, u.FileID, seg, i)}
			}
			return out
		},
		batch: func(ctx context.Context, r []api.PresignRequest) ([]api.PresignResponse, error) {
			return c.PresignUploadBatch(ctx, u.ID, r)
		},
		single: func(ctx context.Context, target, key string) (*api.PresignResponse, error) {
			return c.PresignUpload(ctx, u.ID, target, key)
		},
		cache: map[string]cachedURL{},
	}
}

// fetchPresigner batches the GET presigns of the file m describes.
func (c *Client) fetchPresigner(m *storage.Manifest) *batchPresigner {
	return &batchPresigner{
		prefix: storage.FilePrefix(m.DatasetID, m.FileID),
		nsegs:  len(m.Segments),
		k:      m.K,
		pieces: func(seg int, parity bool) []api.PresignRequest {
			ps := m.Segments[seg].Pieces
			lo, hi := 0, min(m.K, len(ps))
			if parity {
				lo, hi = hi, len(ps)
			}
			out := make([]api.PresignRequest, 0, hi-lo)
			for i := lo; i < hi; i++ {
				out = append(out, api.PresignRequest{Target: ps[i].Target, Key: storage.PieceKey(m.DatasetID, m.FileID, seg, i)})
			}
			return out
		},
		batch: func(ctx context.Context, r []api.PresignRequest) ([]api.PresignResponse, error) {
			return c.PresignFetchBatch(ctx, m.FileID, r)
		},
		single: func(ctx context.Context, target, key string) (*api.PresignResponse, error) {
			return c.PresignFetch(ctx, m.FileID, target, key)
		},
		cache: map[string]cachedURL{},
	}
}
