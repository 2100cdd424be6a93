package transfer

import (
	"context"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

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
	// pieces (a fetch batches through fetchBatcher, which also brings the
	// manifest entries).
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
	if client.IsStatus(err, http.StatusNotFound) {
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
	if !strings.HasPrefix(key, b.prefix) {
		return 0, 0, false
	}
	_, _, seg, piece, err := storage.ParsePieceKey(key)
	if err != nil || seg >= b.nsegs {
		return 0, 0, false
	}
	return seg, piece, true
}

// uploadPresigner batches the PUT presigns of upload u, each piece on
// the target dozod placed it on (p).
func uploadPresigner(c *client.Client, u *api.Upload, p placement) *batchPresigner {
	return &batchPresigner{
		prefix: storage.FilePrefix(u.Dataset, u.FileID),
		nsegs:  u.Segments,
		k:      len(p.row(0)), // every piece is wanted: never "parity"
		pieces: func(seg int, _ bool) []api.PresignRequest {
			row := p.row(seg)
			out := make([]api.PresignRequest, len(row))
			for i, t := range row {
				out[i] = api.PresignRequest{Target: u.Targets[t].ID, Key: storage.PieceKey(u.Dataset, u.FileID, seg, i)}
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

// seed caches the URLs that came with the begin of the upload
// (api.Upload.Presigned): every piece of its first segments, segment by
// segment and piece by piece, as the batch of window 0 would have brought
// them. An answer of another shape is left unused: the pieces are then
// presigned as if it had not come.
func (b *batchPresigner) seed(presigned []api.PresignResponse) {
	shards := b.k
	if len(presigned) == 0 || shards == 0 || len(presigned)%shards != 0 || len(presigned)/shards > b.nsegs {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock()
	for seg := range len(presigned) / shards {
		for i, r := range b.pieces(seg, false) {
			b.cache[r.Target+"\n"+r.Key] = cachedURL{presigned[seg*shards+i], now}
		}
	}
	if b.batched == nil {
		b.batched = map[int]bool{}
	}
	b.batched[0] = true
}

// fetchBatcher reads the file whose manifest head is m: it is the
// storage.EntrySource of its Reader and the presigner of its targets. One
// batch call gives the entries of batchSegments segments and the URLs of
// their data pieces; a parity piece asked for brings a batch of parity
// URLs. Every entry is checked against the head (CheckEntry) and kept for
// the whole read, so a piece is always checked against the entry its
// segment was planned with. URLs are handed out once and dropped near
// their expiry, as batchPresigner does.
type fetchBatcher struct {
	m      *storage.Manifest // head
	prefix string
	batch  func(context.Context, api.FetchBatchRequest) (*api.FetchBatchResponse, error)
	single presignFunc
	now    func() time.Time // time.Now; tests set it

	mu      sync.Mutex
	entries map[int]*storage.SegmentMeta
	cache   map[string]cachedURL
	batched map[[2]int]bool // (window, parity) presigned at least once
}

func newFetchBatcher(c *client.Client, m *storage.Manifest) *fetchBatcher {
	return &fetchBatcher{
		m:      m,
		prefix: storage.FilePrefix(m.DatasetID, m.FileID),
		batch: func(ctx context.Context, r api.FetchBatchRequest) (*api.FetchBatchResponse, error) {
			return c.PresignFetchBatch(ctx, m.FileID, r)
		},
		single: func(ctx context.Context, target, key string) (*api.PresignResponse, error) {
			return c.PresignFetch(ctx, m.FileID, target, key)
		},
		entries: map[int]*storage.SegmentMeta{},
		cache:   map[string]cachedURL{},
		batched: map[[2]int]bool{},
	}
}

func (b *fetchBatcher) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// Entry returns the manifest entry of segment seg, asking dozod for a batch
// (entries and data-piece URLs) when it is not known yet.
func (b *fetchBatcher) Entry(ctx context.Context, seg int) (*storage.SegmentMeta, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[seg]; ok {
		return e, nil
	}
	if err := b.fetchLocked(ctx, seg, false); err != nil {
		return nil, err
	}
	e, ok := b.entries[seg]
	if !ok {
		return nil, fmt.Errorf("dozod sent no manifest entry for segment %d", seg)
	}
	return e, nil
}

// fetchLocked asks for the window of segments holding seg: aligned, so the
// concurrent first requests of a prefetching reader share one batch, or
// starting at seg when that window was presigned before and its URLs went
// stale (the segments before it are done).
func (b *fetchBatcher) fetchLocked(ctx context.Context, seg int, parity bool) error {
	n := b.m.SegmentCount()
	if seg < 0 || seg >= n {
		return fmt.Errorf("file %s has no segment %d", b.m.FileID, seg)
	}
	per := b.m.K
	if parity {
		per = b.m.M
	}
	size := max(1, min(batchSegments, api.MaxPresignBatch/max(per, 1)))
	first := seg - seg%size
	if b.batched[[2]int{first, btoi(parity)}] {
		first = seg
	}
	count := min(size, n-first)
	r, err := b.batch(ctx, api.FetchBatchRequest{First: first, Count: count, Parity: parity})
	if err != nil {
		return err
	}
	return b.takeLocked(seg, first, count, parity, r)
}

// firstBatch is what a fetch asks dozod to send with its answer: the
// window of data pieces fetchLocked would ask for first, whatever the
// file's layout (dozod cuts it to the file and to one batch).
var firstBatch = api.FetchBatchRequest{First: 0, Count: batchSegments}

// seed takes the batch that came with the fetch's answer (firstBatch, cut
// by dozod to the file's segments and one batch), as if fetchLocked had
// asked for it.
func (b *fetchBatcher) seed(r *api.FetchBatchResponse) error {
	if r == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.takeLocked(0, 0, len(r.Segments), false, r)
}

// takeLocked checks batch r of count segments from first on, asked for
// segment seg, and keeps its entries and URLs.
func (b *fetchBatcher) takeLocked(seg, first, count int, parity bool, r *api.FetchBatchResponse) error {
	per := b.m.K
	if parity {
		per = b.m.M
	}
	size := max(1, min(batchSegments, api.MaxPresignBatch/max(per, 1)))
	if count < 1 || first+count > b.m.SegmentCount() || len(r.Segments) != count || len(r.URLs) != count*per {
		return fmt.Errorf("dozod sent %d entries and %d URLs for %d segments", len(r.Segments), len(r.URLs), count)
	}
	for i := range r.Segments {
		if err := b.m.CheckEntry(first+i, &r.Segments[i]); err != nil {
			return fmt.Errorf("dozod sent a malformed manifest entry: %w", err)
		}
	}
	b.batched[[2]int{seg - seg%size, btoi(parity)}] = true
	now := b.clock()
	lo := 0
	if parity {
		lo = b.m.K
	}
	for i := range r.Segments {
		e := &r.Segments[i]
		if _, ok := b.entries[e.Index]; !ok {
			b.entries[e.Index] = e
		}
		for j := range per {
			key := storage.PieceKey(b.m.DatasetID, b.m.FileID, e.Index, lo+j)
			b.cache[e.Pieces[lo+j].Target+"\n"+key] = cachedURL{r.URLs[i*per+j], now}
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// presign hands out the URL of one piece: from a batch, or from a new
// batch for its segment, or alone when the piece is not where the entry
// puts it (dozod will say why).
func (b *fetchBatcher) presign(ctx context.Context, target, key string) (*api.PresignResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ck := target + "\n" + key
	take := func() (*api.PresignResponse, bool) {
		c, ok := b.cache[ck]
		if !ok {
			return nil, false
		}
		delete(b.cache, ck)
		return &c.p, c.fresh(b.clock())
	}
	if p, ok := take(); ok {
		return p, nil
	}
	seg, piece, ok := b.parse(key)
	if !ok {
		return b.single(ctx, target, key)
	}
	if err := b.fetchLocked(ctx, seg, piece >= b.m.K); err != nil {
		return nil, err
	}
	if p, ok := take(); ok {
		return p, nil
	}
	return b.single(ctx, target, key)
}

// flush drops every cached URL: storage rejected one, so the others of
// its batch are suspect too. Entries stay.
func (b *fetchBatcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.cache)
}

// parse returns the segment and piece of a piece key of this file.
func (b *fetchBatcher) parse(key string) (seg, piece int, ok bool) {
	if !strings.HasPrefix(key, b.prefix) {
		return 0, 0, false
	}
	_, _, seg, piece, err := storage.ParsePieceKey(key)
	if err != nil || seg >= b.m.SegmentCount() || piece >= b.m.K+b.m.M {
		return 0, 0, false
	}
	return seg, piece, true
}
