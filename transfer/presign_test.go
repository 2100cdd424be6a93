package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// fakeClock is the time both "dozod" and "storage" go by in these tests;
// it moves only when a test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// expiringStore is storage that honours presigned URLs only until the
// expiry they carry, answering an expired one as S3 does (403 AccessDenied,
// "Request has expired").
type expiringStore struct {
	srv      *httptest.Server
	clock    *fakeClock
	skew     time.Duration // storage's clock minus dozod's
	mu       sync.Mutex
	objects  map[string][]byte
	rejected atomic.Int64
	served   atomic.Int64
}

func newExpiringStore(t *testing.T, clock *fakeClock) *expiringStore {
	s := &expiringStore{clock: clock, objects: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *expiringStore) serve(w http.ResponseWriter, r *http.Request) {
	exp, err := strconv.ParseInt(r.URL.Query().Get("exp"), 10, 64)
	if err != nil || !s.clock.now().Add(s.skew).Before(time.Unix(0, exp)) {
		s.rejected.Add(1)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "<client.Error><Code>AccessDenied</Code><Message>Request has expired</Message></client.Error>")
		return
	}
	s.served.Add(1)
	key := strings.TrimPrefix(r.URL.Path, "/")
	switch r.Method {
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.objects[key] = b
		s.mu.Unlock()
	case http.MethodGet:
		s.mu.Lock()
		b, ok := s.objects[key]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		var off, end int64 = 0, int64(len(b)) - 1
		if rg := r.Header.Get("Range"); rg != "" {
			a, e, _ := strings.Cut(strings.TrimPrefix(rg, "bytes="), "-")
			off, _ = strconv.ParseInt(a, 10, 64)
			if e != "" {
				end, _ = strconv.ParseInt(e, 10, 64)
			}
		}
		w.WriteHeader(http.StatusPartialContent)
		w.Write(b[off : end+1])
	}
}

// presigner returns dozod's side: URLs valid for life by the fake clock,
// counting batches; refuse, when set, is its answer instead.
func (s *expiringStore) presigner(life time.Duration, batches *atomic.Int64, refuse *atomic.Pointer[client.APIError]) (
	func(context.Context, []api.PresignRequest) ([]api.PresignResponse, error), presignFunc) {
	one := func(r api.PresignRequest) api.PresignResponse {
		exp := s.clock.now().Add(life)
		return api.PresignResponse{URL: fmt.Sprintf("%s/%s/%s?exp=%d&sig=secret", s.srv.URL, r.Target, r.Key, exp.UnixNano()), ExpiresAt: exp}
	}
	batch := func(_ context.Context, rs []api.PresignRequest) ([]api.PresignResponse, error) {
		if ae := refuse.Load(); ae != nil {
			return nil, ae
		}
		batches.Add(1)
		out := make([]api.PresignResponse, len(rs))
		for i, r := range rs {
			out[i] = one(r)
		}
		return out, nil
	}
	single := func(_ context.Context, target, key string) (*api.PresignResponse, error) {
		if ae := refuse.Load(); ae != nil {
			return nil, ae
		}
		p := one(api.PresignRequest{Target: target, Key: key})
		return &p, nil
	}
	return batch, single
}

var presignLayout = storage.Layout{K: 4, M: 2, SegmentSize: 64 << 10}

func presignTargets() []api.Target {
	var ts []api.Target
	for _, s := range []string{"s1", "s2", "s3"} {
		for _, b := range []string{"a", "b"} {
			ts = append(ts, api.Target{ID: s + "-" + b, Domain: s})
		}
	}
	return ts
}

// upload stores data through presigned targets whose URLs live one minute
// while each segment takes perSeg of the fake clock, and returns the
// manifest.
func presignedUpload(t *testing.T, s *expiringStore, data []byte, perSeg time.Duration, batches *atomic.Int64) *storage.Manifest {
	t.Helper()
	retryBase = time.Millisecond
	c := &client.Client{}
	nsegs := int((int64(len(data)) + presignLayout.SegmentSize - 1) / presignLayout.SegmentSize)
	u := &api.Upload{ID: "up1", Dataset: "ds1", FileID: "f1", Segments: nsegs, Targets: presignTargets()}
	u.Placement = placeRows(u.Targets, presignLayout)
	p, err := checkPlacement(u, presignLayout)
	if err != nil {
		t.Fatal(err)
	}
	b := uploadPresigner(c, u, p)
	b.batch, b.single = s.presigner(time.Minute, batches, new(atomic.Pointer[client.APIError]))
	b.now = s.clock.now
	out := targets(s.srv.Client(), u.Targets, b.presign, b.flush)
	w, err := storage.NewWriter(context.Background(), storage.WriterOptions{DatasetID: "ds1", FileID: "f1", Layout: presignLayout,
		Targets: out, Placement: p.on(out), OnSegment: func(storage.SegmentMeta) error { s.clock.add(perSeg); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := storage.NewManifest("ds1", "f1", presignLayout, w.HashAlg(), w.Segments())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{9}).Read(b)
	return b
}

// TestUploadOutlivesURLs: an upload taking many URL lifetimes (20 s of
// the fake clock per segment, URLs valid 1 min) completes: URLs near
// expiry are presigned again, in batches, not used; and when storage's
// clock runs ahead so that it rejects URLs the client thought fresh, the
// rejected piece is presigned afresh and sent again.
func TestUploadOutlivesURLs(t *testing.T) {
	for _, skew := range []time.Duration{0, 45 * time.Second} {
		t.Run(fmt.Sprint("skew ", skew), func(t *testing.T) {
			s := newExpiringStore(t, &fakeClock{t: time.Unix(1e9, 0)})
			s.skew = skew
			data := randomData(12*int(presignLayout.SegmentSize) + 777)
			var batches atomic.Int64
			m := presignedUpload(t, s, data, 20*time.Second, &batches)
			if skew == 0 && s.rejected.Load() != 0 {
				t.Errorf("storage rejected %d URLs: an expired URL was used", s.rejected.Load())
			}
			if skew != 0 && s.rejected.Load() == 0 {
				t.Fatal("storage rejected no URL: the skew is not exercised")
			}
			// With the skew every cached URL is rejected once: a batch per
			// segment or two; without it a batch per URL lifetime or so.
			limit := int64(len(m.Segments)) / 2
			if skew != 0 {
				limit = 2 * int64(len(m.Segments))
			}
			t.Logf("%d batches, %d URLs rejected by storage, %d requests served", batches.Load(), s.rejected.Load(), s.served.Load())
			if n := batches.Load(); n < 2 || n > limit {
				t.Errorf("%d batches for %d segments: want a new batch only as URLs near expiry (at most %d)", n, len(m.Segments), limit)
			}
			// What was stored reads back (storage checks every piece hash).
			ts, entries := fetchTargetsFor(t, s, m)
			r, err := storage.NewReader(context.Background(), m.Head(), storage.ReaderOptions{Targets: ts, Entries: entries})
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := r.WriteTo(&got); err != nil || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("read back: %v", err)
			}
		})
	}
}

// fetchTargetsFor returns presigned fetch targets for m against s, and
// m's entries as a fetch gets them, batch by batch.
func fetchTargetsFor(t *testing.T, s *expiringStore, m *storage.Manifest) ([]storage.Target, storage.EntrySource) {
	c := &client.Client{}
	b := newFetchBatcher(c, m.Head())
	batch, single := s.presigner(time.Minute, new(atomic.Int64), new(atomic.Pointer[client.APIError]))
	b.batch, b.single = fetchBatchOf(m, batch), single
	b.now = s.clock.now
	return targets(s.srv.Client(), presignTargets(), b.presign, b.flush), b.Entry
}

// fetchBatchOf answers fetch batches as dozod does, from the whole
// manifest m, presigning each piece with batch.
func fetchBatchOf(m *storage.Manifest, batch func(context.Context, []api.PresignRequest) ([]api.PresignResponse, error)) func(context.Context, api.FetchBatchRequest) (*api.FetchBatchResponse, error) {
	return func(ctx context.Context, req api.FetchBatchRequest) (*api.FetchBatchResponse, error) {
		lo, hi := 0, m.K
		if req.Parity {
			lo, hi = m.K, m.K+m.M
		}
		out := &api.FetchBatchResponse{Segments: m.Segments[req.First : req.First+req.Count]}
		var reqs []api.PresignRequest
		for _, seg := range out.Segments {
			for j := lo; j < hi; j++ {
				reqs = append(reqs, api.PresignRequest{Target: seg.Pieces[j].Target, Key: storage.PieceKey(m.DatasetID, m.FileID, seg.Index, j)})
			}
		}
		urls, err := batch(ctx, reqs)
		if err != nil {
			return nil, err
		}
		out.URLs = urls
		return out, nil
	}
}

// TestFetchOutlivesURLsAndStopsOnRefusal: a fetch slower than the URL
// lifetime reads every piece once (no re-read of what was verified, no
// piece counted bad); when dozod then refuses (grant revoked), the read
// ends at once with dozod's reason, not as damage, and client.Describe gives that
// reason as the one cause.
func TestFetchOutlivesURLsAndStopsOnRefusal(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	s := newExpiringStore(t, clock)
	data := randomData(12*int(presignLayout.SegmentSize) + 777)
	m := presignedUpload(t, s, data, 0, new(atomic.Int64))

	c := &client.Client{}
	b := newFetchBatcher(c, m.Head())
	var batches atomic.Int64
	var refuse atomic.Pointer[client.APIError]
	batch, single := s.presigner(time.Minute, &batches, &refuse)
	b.batch, b.single = fetchBatchOf(m, batch), single
	b.now = clock.now
	r, err := storage.NewReader(context.Background(), m.Head(), storage.ReaderOptions{Targets: targets(s.srv.Client(), presignTargets(), b.presign, b.flush), Entries: b.Entry, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i := range 8 {
		seg, err := r.ReadSegment(context.Background(), i, nil)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		got = append(got, seg...)
		clock.add(25 * time.Second) // a slow reader: two segments per URL lifetime
	}
	if !bytes.Equal(got, data[:len(got)]) {
		t.Fatal("fetched bytes differ")
	}
	st := r.Stats()
	if s.rejected.Load() != 0 || st.PiecesBad != 0 || st.PiecesFetched != int64(8*m.K) {
		t.Errorf("%d URLs rejected, stats %+v: want every data piece fetched once, none bad", s.rejected.Load(), st)
	}
	if n := batches.Load(); n < 2 {
		t.Errorf("%d batches: URLs older than their lifetime were used", n)
	}

	revoked := &client.APIError{Status: http.StatusForbidden}
	revoked.Body.Error = `your access to dataset "ds1" was revoked on 2026-11-30`
	revoked.Body.Hint = "ask the dataset's custodian for a new grant"
	refuse.Store(revoked)
	before := r.Stats().PiecesFetched
	_, err = r.ReadSegment(context.Background(), 8, nil)
	var se *storage.SegmentError
	var rf *client.RefusedError
	if !errors.As(err, &rf) || !errors.Is(err, storage.ErrRefused) || errors.As(err, &se) {
		t.Fatalf("after the revoke: %v, want a client.RefusedError and no SegmentError", err)
	}
	if n := r.Stats().PiecesFetched - before; n > int64(m.K) {
		t.Errorf("%d piece GETs after the refusal: parity was tried", n)
	}
	want := `fetching ds1/x: dozod stopped the transfer: your access to dataset "ds1" was revoked on 2026-11-30 (ask the dataset's custodian for a new grant)`
	if msg := message(opError("fetching ds1/x", fmt.Errorf("file f1: %w", err))); msg != want {
		t.Errorf("message\n%s\nwant\n%s", msg, want)
	}
}

// TestGetPresignsRejectedURLAgain: a URL storage rejects is presigned
// afresh once and the GET retried; a second rejection is an error, not a
// loop.
func TestGetPresignsRejectedURLAgain(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	s := newExpiringStore(t, clock)
	s.objects["t1/k"] = []byte("piece")
	var calls, flushes int
	life := []time.Duration{-time.Second, time.Minute, -time.Second, -time.Second, -time.Second}
	tg := &PresignedTarget{id: "t1", http: s.srv.Client(), stale: func() { flushes++ },
		presign: func(_ context.Context, target, key string) (*api.PresignResponse, error) {
			exp := clock.now().Add(life[calls])
			calls++
			return &api.PresignResponse{URL: fmt.Sprintf("%s/%s/%s?exp=%d", s.srv.URL, target, key, exp.UnixNano()), ExpiresAt: exp}, nil
		}}
	rc, err := tg.Get(context.Background(), "k", 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "piece" || calls != 2 || flushes != 1 {
		t.Fatalf("got %q after %d presigns and %d flushes, want the piece after 2 and 1", b, calls, flushes)
	}
	if _, err := tg.Get(context.Background(), "k", 0, 5); err == nil || !strings.Contains(err.Error(), "403") || calls != 4 {
		t.Fatalf("twice rejected: %v after %d presigns, want a 403 error after 4", err, calls)
	}
}

// TestFetchStopsWhenDozodIsLost: when dozod stays unreachable past the
// client's retries while a transfer needs new URLs, the read ends at once
// with one line saying dozod was lost, not as damage to every piece.
func TestFetchStopsWhenDozodIsLost(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	s := newExpiringStore(t, clock)
	data := randomData(4 * int(presignLayout.SegmentSize))
	m := presignedUpload(t, s, data, 0, new(atomic.Int64))

	c := &client.Client{}
	b := newFetchBatcher(c, m.Head())
	var batches atomic.Int64
	var refuse atomic.Pointer[client.APIError]
	pieceBatch, single := s.presigner(time.Minute, &batches, &refuse)
	batch := fetchBatchOf(m, pieceBatch)
	var lost atomic.Bool
	gone := &client.TransportError{Method: http.MethodPost, Path: "/v1/fetches/f1/presign-batch",
		Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}
	b.batch = func(ctx context.Context, req api.FetchBatchRequest) (*api.FetchBatchResponse, error) {
		if lost.Load() {
			return nil, gone
		}
		return batch(ctx, req)
	}
	b.single = func(ctx context.Context, target, key string) (*api.PresignResponse, error) {
		if lost.Load() {
			return nil, gone
		}
		return single(ctx, target, key)
	}
	b.now = clock.now
	r, err := storage.NewReader(context.Background(), m.Head(), storage.ReaderOptions{Targets: targets(s.srv.Client(), presignTargets(), b.presign, b.flush), Entries: b.Entry, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadSegment(context.Background(), 0, nil); err != nil {
		t.Fatal(err)
	}
	lost.Store(true)
	clock.add(2 * time.Minute) // every cached URL is stale: new ones are needed
	before := r.Stats().PiecesFetched
	_, err = r.ReadSegment(context.Background(), 1, nil)
	var se *storage.SegmentError
	if !errors.Is(err, storage.ErrRefused) || errors.As(err, &se) {
		t.Fatalf("with dozod gone: %v, want the transfer stopped and no SegmentError", err)
	}
	if n := r.Stats().PiecesFetched - before; n > int64(m.K) {
		t.Errorf("%d piece attempts after dozod was lost: parity was tried", n)
	}
	msg := message(opError("fetching ds1/x", fmt.Errorf("file f1: %w", err)))
	if !strings.HasPrefix(msg, "fetching ds1/x: lost dozod mid-transfer: cannot reach dozod: ") || strings.Count(msg, "cannot reach dozod") != 1 {
		t.Errorf("message %q", msg)
	}
}
