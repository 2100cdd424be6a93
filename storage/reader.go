package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/klauspost/reedsolomon"
)

// ReaderOptions configures a Reader.
type ReaderOptions struct {
	// Targets are looked up by the IDs the manifest records. A piece whose
	// target is not among them counts as unreachable (and parity is used).
	Targets []Target
	// Concurrency bounds parallel piece GETs across the whole Reader;
	// 0 means K*(Readahead+1), enough for a sequential Stream to fetch all
	// its prefetched segments at once.
	Concurrency int
	// Readahead is how many segments a Stream fetches ahead of the one being
	// consumed; 0 means 2, negative means none.
	Readahead int
	// CacheSegments is how many recently used segments ReadAt keeps, so
	// many small sequential ReadAt calls do not refetch; 0 means 2.
	CacheSegments int
	// Authenticator, if set, makes NewReader verify the manifest's MAC.
	// Without it the caller must have verified the manifest.
	Authenticator Authenticator
	// OnDegraded, if set, is called (from any goroutine) whenever a segment
	// could only be read by using parity, with the pieces that failed.
	OnDegraded func(segment int, failures []PieceFailure)
	// Entries, if set, supplies the segment entries of a manifest given as
	// a head (Manifest.Head): the Reader asks it for each segment it reads
	// and checks what it returns with CheckEntry. Without it the manifest
	// must carry all its entries.
	Entries EntrySource
}

// ErrRefused is returned, wrapped, by a Target whose authority to read or
// write was withdrawn: a revoked grant, a freeze, a deleted file. It is not
// damage to the piece, so a Reader does not try parity: it ends the read
// with the Target's error, which names the refusal. Test with errors.Is.
var ErrRefused = errors.New("storage: access refused")

// FailureReason classifies why a piece could not be used.
type FailureReason string

const (
	ReasonMissing     FailureReason = "missing"     // the target says the object does not exist
	ReasonCorrupt     FailureReason = "corrupt"     // wrong length or hash mismatch
	ReasonUnreachable FailureReason = "unreachable" // any other error, or target not configured
)

// PieceFailure records one piece that could not be used.
type PieceFailure struct {
	Piece  int
	Target string
	Reason FailureReason
	Err    error
}

func (f PieceFailure) String() string {
	s := fmt.Sprintf("piece %d on %s: %s", f.Piece, f.Target, f.Reason)
	if f.Reason == ReasonUnreachable && f.Err != nil {
		s += " (" + strings.ReplaceAll(f.Err.Error(), "\n", " ") + ")"
	}
	return s
}

// SegmentError reports a segment that cannot be read: fewer than Need of
// its Total pieces were usable.
type SegmentError struct {
	FileID   string
	Segment  int
	Need     int // K
	Total    int // K+M
	Usable   int
	Failures []PieceFailure
}

func (e *SegmentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "file %s segment %d: only %d of %d pieces usable, need %d", e.FileID, e.Segment, e.Usable, e.Total, e.Need)
	if len(e.Failures) > 0 {
		b.WriteString(" (")
		for i, f := range e.Failures {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(f.String())
		}
		b.WriteString(")")
	}
	return b.String()
}

// ReadStats are cumulative counters of a Reader.
type ReadStats struct {
	SegmentsRead        int64 // segments fetched from targets
	SegmentsDegraded    int64 // of those, segments that needed parity
	PiecesFetched       int64 // piece GETs attempted
	PieceBytes          int64 // bytes received from targets
	PiecesBad           int64 // pieces missing, corrupt or unreachable
	PiecesReconstructed int64 // data pieces rebuilt from parity
	CacheHits           int64 // ReadAt segment lookups served from the cache
}

// Reader reads a stored stream back. It never returns bytes whose pieces'
// hashes do not match the manifest: every fetched piece is verified, and
// data rebuilt from parity is verified against the data pieces' hashes.
// A Reader is safe for concurrent use.
type Reader struct {
	ctx     context.Context
	m       *Manifest
	opts    ReaderOptions
	targets map[string]Target
	dec     reedsolomon.Encoder
	sem     chan struct{}

	segmentsRead, segmentsDegraded      atomic.Int64
	piecesFetched, pieceBytes           atomic.Int64
	piecesBad, piecesRebuilt, cacheHits atomic.Int64

	down DownTargets // targets skipped for a while after an unreachable error

	// parity recycles the buffers of parity pieces: a degraded read (a
	// server down) needs them for every segment, and fresh ones per segment
	// were garbage enough to raise the peak RSS by half.
	parity sync.Pool

	cmu   sync.Mutex
	cache []*cacheEntry // least recently used first
	spare []byte        // one recycled segment buffer
}

// NewReader returns a Reader for the stream m describes. ctx bounds ReadAt
// and WriteTo, which take no context of their own. m must not be modified
// afterwards.
func NewReader(ctx context.Context, m *Manifest, opts ReaderOptions) (*Reader, error) {
	switch {
	case opts.Entries != nil && opts.Authenticator != nil:
		return nil, errors.New("storage: a head's entries cannot be checked against its MAC here")
	case opts.Authenticator != nil:
		if err := m.Verify(ctx, opts.Authenticator); err != nil {
			return nil, err
		}
	case opts.Entries != nil:
		if err := m.ValidateHead(); err != nil {
			return nil, err
		}
	default:
		if err := m.Validate(); err != nil {
			return nil, err
		}
	}
	if opts.Readahead == 0 {
		opts.Readahead = 2
	}
	if opts.Readahead < 0 {
		opts.Readahead = 0
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = m.K * (opts.Readahead + 1)
	}
	if opts.CacheSegments <= 0 {
		opts.CacheSegments = 2
	}
	targets := make(map[string]Target, len(opts.Targets))
	for _, t := range opts.Targets {
		if t == nil {
			return nil, errors.New("storage: nil target")
		}
		if _, dup := targets[t.ID()]; dup {
			return nil, fmt.Errorf("storage: duplicate target id %q", t.ID())
		}
		targets[t.ID()] = t
	}
	dec, err := reedsolomon.New(m.K, m.M)
	if err != nil {
		return nil, fmt.Errorf("storage: reedsolomon %d+%d: %w", m.K, m.M, err)
	}
	return &Reader{
		ctx:     ctx,
		m:       m,
		opts:    opts,
		targets: targets,
		dec:     dec,
		sem:     make(chan struct{}, opts.Concurrency),
	}, nil
}

// entry returns the manifest entry of segment i: from the manifest, or
// from the entry source, checked against the head.
func (r *Reader) entry(ctx context.Context, i int) (*SegmentMeta, error) {
	if i < 0 || i >= r.m.SegmentCount() {
		return nil, fmt.Errorf("storage: file %s has no segment %d", r.m.FileID, i)
	}
	if r.opts.Entries == nil {
		return &r.m.Segments[i], nil
	}
	seg, err := r.opts.Entries(ctx, i)
	if err != nil {
		return nil, fmt.Errorf("storage: file %s segment %d: manifest entry: %w", r.m.FileID, i, err)
	}
	if err := r.m.CheckEntry(i, seg); err != nil {
		return nil, err
	}
	return seg, nil
}

// Size returns the length of the stored stream.
func (r *Reader) Size() int64 { return r.m.Size }

// Manifest returns the manifest being read.
func (r *Reader) Manifest() *Manifest { return r.m }

// Stats returns a snapshot of the counters.
func (r *Reader) Stats() ReadStats {
	return ReadStats{
		SegmentsRead:        r.segmentsRead.Load(),
		SegmentsDegraded:    r.segmentsDegraded.Load(),
		PiecesFetched:       r.piecesFetched.Load(),
		PieceBytes:          r.pieceBytes.Load(),
		PiecesBad:           r.piecesBad.Load(),
		PiecesReconstructed: r.piecesRebuilt.Load(),
		CacheHits:           r.cacheHits.Load(),
	}
}

// ReadSegment reads segment i and returns its bytes, using dst as the buffer
// if its capacity is at least K*PieceSize (the segment size rounded up to
// whole pieces), else allocating.
//
// The K data pieces are fetched in parallel and verified against their
// hashes. For every piece that is missing, unreachable or corrupt a further
// piece (parity, in order) is fetched, until K verified pieces are at hand;
// the missing data is then rebuilt and verified too. If fewer than K pieces
// are usable the error is a *SegmentError listing every failure. A piece
// refused for want of authority (ErrRefused) ends the read at once with
// that error: parity would be refused too, and the file is not damaged.
func (r *Reader) ReadSegment(ctx context.Context, i int, dst []byte) ([]byte, error) {
	seg, err := r.entry(ctx, i)
	if err != nil {
		return nil, err
	}
	k, n := r.m.K, r.m.K+r.m.M
	ps := int(seg.PieceSize)
	if cap(dst) < k*ps {
		dst = make([]byte, k*ps)
	}
	dst = dst[:k*ps]
	r.segmentsRead.Add(1)

	bufs := make([][]byte, n)
	for j := range k {
		bufs[j] = dst[j*ps : (j+1)*ps : (j+1)*ps]
	}
	ok := make([]bool, n)
	fails := make([]*PieceFailure, n)
	var failures []PieceFailure
	usable, tried := 0, 0
	// Fetch in waves: first the data pieces, then exactly as many further
	// pieces as are still missing, so a healthy read moves only K pieces.
	for usable < k && tried < n {
		batch := min(k-usable, n-tried)
		var wg sync.WaitGroup
		for j := tried; j < tried+batch; j++ {
			if j >= k {
				bufs[j] = r.parityBuf(ps)
				defer r.parity.Put(&bufs[j])
			}
			wg.Go(func() { fails[j] = r.fetchPiece(ctx, seg, j, bufs[j]) })
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for j := tried; j < tried+batch; j++ {
			if fails[j] != nil && errors.Is(fails[j].Err, ErrRefused) {
				return nil, fails[j].Err
			}
		}
		for j := tried; j < tried+batch; j++ {
			if fails[j] == nil {
				ok[j] = true
				usable++
			} else {
				failures = append(failures, *fails[j])
			}
		}
		tried += batch
	}
	r.piecesBad.Add(int64(len(failures)))
	if usable < k {
		return nil, &SegmentError{FileID: r.m.FileID, Segment: i, Need: k, Total: n, Usable: usable, Failures: failures}
	}
	if len(failures) > 0 {
		if err := r.rebuild(seg, bufs, ok); err != nil {
			return nil, err
		}
		r.segmentsDegraded.Add(1)
		if r.opts.OnDegraded != nil {
			r.opts.OnDegraded(i, failures)
		}
	}
	return dst[:seg.Size], nil
}

// parityBuf returns a buffer of n bytes for a parity piece.
func (r *Reader) parityBuf(n int) []byte {
	if p, ok := r.parity.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

// rebuild reconstructs the data pieces not marked ok into bufs and checks
// them against the manifest.
func (r *Reader) rebuild(seg *SegmentMeta, bufs [][]byte, ok []bool) error {
	k := r.m.K
	shards := make([][]byte, len(bufs))
	var missing []int
	for j := range bufs {
		switch {
		case ok[j]:
			shards[j] = bufs[j]
		case j < k:
			// Zero length, full capacity: ReconstructData fills it in place.
			shards[j] = bufs[j][:0]
			missing = append(missing, j)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := r.dec.ReconstructData(shards); err != nil {
		return fmt.Errorf("storage: file %s segment %d: reconstruction: %w", r.m.FileID, seg.Index, err)
	}
	for _, j := range missing {
		if unsafe.SliceData(shards[j]) != unsafe.SliceData(bufs[j]) {
			copy(bufs[j], shards[j])
		}
		// Only reachable through a hash collision or a writer bug, but the
		// promise is that unverified bytes never leave this package.
		if hashHex(r.m.HashAlg, bufs[j]) != seg.Pieces[j].Hash {
			return fmt.Errorf("storage: file %s segment %d: rebuilt piece %d does not match its hash", r.m.FileID, seg.Index, j)
		}
	}
	r.piecesRebuilt.Add(int64(len(missing)))
	return nil
}

// fetchPiece reads piece j of seg into buf (len PieceSize) and verifies it.
// It returns nil on success.
func (r *Reader) fetchPiece(ctx context.Context, seg *SegmentMeta, j int, buf []byte) *PieceFailure {
	p := seg.Pieces[j]
	fail := func(reason FailureReason, err error) *PieceFailure {
		return &PieceFailure{Piece: j, Target: p.Target, Reason: reason, Err: err}
	}
	t := r.targets[p.Target]
	if t == nil {
		return fail(ReasonUnreachable, errors.New("target not configured"))
	}
	if r.down.IsDown(p.Target) {
		// A target that just failed is not asked again for a while: with a
		// server down, every segment would otherwise wait out the client's
		// retries before falling back to parity.
		return fail(ReasonUnreachable, errors.New("target marked down after an earlier failure"))
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return fail(ReasonUnreachable, ctx.Err())
	}
	defer func() { <-r.sem }()
	r.piecesFetched.Add(1)
	key := PieceKey(r.m.DatasetID, r.m.FileID, seg.Index, j)
	// An error about this one object does not make the target down; only
	// one it does not answer with does (readFault).
	failed := func(err error) *PieceFailure {
		switch kind, _ := readFault(ctx, t, key, seg.PieceSize, err); kind {
		case FindingMissing:
			return fail(ReasonMissing, err)
		case FindingUnreachable:
			if ctx.Err() == nil {
				r.down.Mark(p.Target)
			}
			return fail(ReasonUnreachable, err)
		}
		return fail(ReasonCorrupt, err)
	}
	rc, err := t.Get(ctx, key, 0, int64(len(buf)))
	if errors.Is(err, ErrNotFound) {
		return fail(ReasonMissing, err)
	}
	if err != nil {
		if errors.Is(err, ErrRefused) {
			// dozod withdrew the transfer: not a fault of the piece or
			// the target; the read ends with this error.
			return fail(ReasonUnreachable, err)
		}
		return failed(err)
	}
	got, err := io.ReadFull(rc, buf)
	rc.Close()
	r.pieceBytes.Add(int64(got))
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fail(ReasonCorrupt, fmt.Errorf("short piece: %d of %d bytes", got, len(buf)))
	case err != nil:
		return failed(err)
	}
	if hashHex(r.m.HashAlg, buf) != p.Hash {
		return fail(ReasonCorrupt, errors.New("hash mismatch"))
	}
	return nil
}

// ReadAt implements io.ReaderAt over the stored stream. It fetches only the
// segments covering [off, off+len(p)). Segments wholly inside p are read
// straight into p; partially covered ones go through a small LRU cache, so a
// run of small sequential reads (age.DecryptReaderAt reads 64 KiB chunks)
// fetches each segment once.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("storage: negative offset")
	}
	if off >= r.m.Size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < r.m.Size {
		si := int(off / r.m.SegmentSize)
		so := int(off % r.m.SegmentSize)
		var c int
		if size := int(r.m.EntrySize(si)); so == 0 && len(p)-n >= size && int64(r.m.K)*pieceSize(int64(size), r.m.K) == int64(size) {
			if _, err := r.ReadSegment(r.ctx, si, p[n:n+size:n+size]); err != nil {
				return n, err
			}
			c = size
		} else {
			e, err := r.acquire(si)
			if err != nil {
				return n, err
			}
			c = copy(p[n:], e.data[so:])
			r.release(e)
		}
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

type cacheEntry struct {
	idx     int
	data    []byte
	err     error
	ready   chan struct{}
	refs    int
	evicted bool
}

// acquire returns the cached segment idx, fetching it on a miss; concurrent
// callers wanting the same segment share one fetch. The entry must be
// released.
func (r *Reader) acquire(idx int) (*cacheEntry, error) {
	r.cmu.Lock()
	for i, e := range r.cache {
		if e.idx == idx {
			copy(r.cache[i:], r.cache[i+1:])
			r.cache[len(r.cache)-1] = e
			e.refs++
			r.cmu.Unlock()
			<-e.ready
			if e.err != nil {
				r.release(e)
				return nil, e.err
			}
			r.cacheHits.Add(1)
			return e, nil
		}
	}
	e := &cacheEntry{idx: idx, ready: make(chan struct{}), refs: 1}
	r.cache = append(r.cache, e)
	for len(r.cache) > r.opts.CacheSegments {
		old := r.cache[0]
		r.cache = r.cache[1:]
		old.evicted = true
		if old.refs == 0 {
			r.recycleLocked(old)
		}
	}
	buf := r.spare
	r.spare = nil
	r.cmu.Unlock()

	e.data, e.err = r.ReadSegment(r.ctx, idx, buf)
	if e.err != nil {
		r.cmu.Lock()
		for i, c := range r.cache {
			if c == e {
				r.cache = append(r.cache[:i], r.cache[i+1:]...)
				break
			}
		}
		e.evicted = true
		r.cmu.Unlock()
	}
	close(e.ready)
	if e.err != nil {
		r.release(e)
		return nil, e.err
	}
	return e, nil
}

func (r *Reader) release(e *cacheEntry) {
	r.cmu.Lock()
	e.refs--
	if e.refs == 0 && e.evicted {
		r.recycleLocked(e)
	}
	r.cmu.Unlock()
}

// recycleLocked keeps the buffer of an evicted, unreferenced entry for the
// next miss, so sequential ReadAt over a large file does not allocate a
// segment buffer per segment.
func (r *Reader) recycleLocked(e *cacheEntry) {
	if e.err == nil && e.data != nil && cap(e.data) > cap(r.spare) {
		r.spare = e.data[:cap(e.data)]
	}
	e.data = nil
}

// WriteTo writes the whole stream to w, sequentially with readahead (see
// Stream). It implements io.WriterTo.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	s, err := r.Stream(r.ctx, 0)
	if err != nil {
		return 0, err
	}
	n, err := s.WriteTo(w)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// Stream returns a sequential reader of the stream from offset off. It
// prefetches up to Readahead segments in parallel while the current one is
// consumed, holding at most Readahead+1 segment buffers.
func (r *Reader) Stream(ctx context.Context, off int64) (*Stream, error) {
	if off < 0 || off > r.m.Size {
		return nil, fmt.Errorf("storage: stream offset %d outside 0..%d", off, r.m.Size)
	}
	ctx, cancel := context.WithCancel(ctx)
	nbuf := r.opts.Readahead + 1
	s := &Stream{
		r:      r,
		ctx:    ctx,
		cancel: cancel,
		jobs:   make(chan *segJob, nbuf),
		free:   make(chan []byte, nbuf),
		skip:   int(off % r.m.SegmentSize),
	}
	for range nbuf {
		s.free <- nil // allocated on first use
	}
	first := int(off / r.m.SegmentSize)
	if off == r.m.Size {
		first = r.m.SegmentCount() // nothing left; fetch nothing
	}
	go s.produce(first)
	return s, nil
}

// Stream is a sequential reader over a stored stream (io.ReadCloser and
// io.WriterTo). It is not safe for concurrent use. Close it to stop the
// prefetching goroutines.
type Stream struct {
	r      *Reader
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan *segJob
	free   chan []byte
	wg     sync.WaitGroup

	cur    *segJob
	pos    int
	skip   int    // bytes to skip in the first segment
	spill  []byte // Next's bytes that span two segments
	err    error
	closed bool
}

type segJob struct {
	data []byte
	err  error
	done chan struct{}
}

func (s *Stream) produce(first int) {
	defer close(s.jobs)
	for i := first; i < s.r.m.SegmentCount(); i++ {
		var buf []byte
		select {
		case buf = <-s.free:
		case <-s.ctx.Done():
			return
		}
		j := &segJob{done: make(chan struct{})}
		s.wg.Go(func() {
			j.data, j.err = s.r.ReadSegment(s.ctx, i, buf)
			close(j.done)
		})
		s.jobs <- j // never blocks: at most len(free) jobs exist
	}
}

// next makes s.cur the next segment; io.EOF at the end.
func (s *Stream) next() error {
	if s.cur != nil {
		s.free <- s.cur.data[:cap(s.cur.data)]
		s.cur = nil
	}
	j, ok := <-s.jobs
	if !ok {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	<-j.done
	if j.err != nil {
		return j.err
	}
	s.cur, s.pos = j, s.skip
	s.skip = 0
	return nil
}

func (s *Stream) fill() error {
	if s.err != nil {
		return s.err
	}
	for s.cur == nil || s.pos >= len(s.cur.data) {
		if err := s.next(); err != nil {
			s.err = err
			s.cancel()
			return err
		}
	}
	return nil
}

// Read implements io.Reader.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.fill(); err != nil {
		return 0, err
	}
	n := copy(p, s.cur.data[s.pos:])
	s.pos += n
	return n, nil
}

// Next returns the next n bytes: in place, a slice of the segment buffer,
// when they lie within one segment, else copied across the boundary into
// a buffer of the stream's own. Fewer than n come only with an error (at
// the end, io.ErrUnexpectedEOF, or io.EOF when none was left). The slice
// is valid until the next call of a method of s, and must not be written
// to (crypto.ChunkLender).
func (s *Stream) Next(n int) ([]byte, error) {
	if err := s.fill(); err != nil {
		return nil, err
	}
	if n <= len(s.cur.data)-s.pos {
		b := s.cur.data[s.pos : s.pos+n : s.pos+n]
		s.pos += n
		return b, nil
	}
	if cap(s.spill) < n {
		s.spill = make([]byte, n)
	}
	got, err := io.ReadFull(s, s.spill[:n])
	return s.spill[:got], err
}

// WriteTo implements io.WriterTo, handing w whole segments without copying.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := s.fill(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
		n, err := w.Write(s.cur.data[s.pos:])
		s.pos += n
		total += int64(n)
		if err != nil {
			s.err = err
			s.cancel()
			return total, err
		}
	}
}

// Close stops prefetching and waits for in-flight fetches. It is idempotent.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.cancel()
	for j := range s.jobs {
		<-j.done
	}
	s.wg.Wait()
	if s.err == nil {
		s.err = errors.New("storage: read from closed Stream")
	}
	return nil
}
