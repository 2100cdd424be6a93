package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	const seg = 4 * 1024
	cases := []struct {
		name string
		l    Layout
		size int
	}{
		{"empty", Layout{4, 2, seg}, 0},
		{"one byte", Layout{4, 2, seg}, 1},
		{"less than k", Layout{4, 2, seg}, 3},
		{"short", Layout{4, 2, seg}, seg - 1},
		{"exact", Layout{4, 2, seg}, seg},
		{"exact multiple", Layout{4, 2, seg}, 5 * seg},
		{"many with tail", Layout{4, 2, seg}, 37*seg + 123},
		{"no parity", Layout{3, 0, 3 * 1000}, 10*3000 + 7},
		{"k=1", Layout{1, 2, 999}, 5000},
		{"3+3", Layout{3, 3, 3 * 512}, 20000},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			targets := localStack(t, t.TempDir(), 3, 2)
			data := randBytes(uint64(i), c.size)
			m := writeStream(t, targets, c.l, "f"+c.name[:1], data)
			if m.Size != int64(c.size) {
				t.Fatalf("manifest size %d, want %d", m.Size, c.size)
			}
			got, r := readAll(t, m, targets)
			if !bytes.Equal(got, data) {
				t.Fatal("stream differs after round trip")
			}
			st := r.Stats()
			if st.SegmentsRead != int64(len(m.Segments)) || st.PiecesFetched != int64(len(m.Segments)*c.l.K) || st.PiecesBad != 0 {
				t.Errorf("stats %+v for %d segments", st, len(m.Segments))
			}
			// ReadAt of everything, and io.ReadAll over a Stream.
			all := make([]byte, c.size+10)
			n, err := r.ReadAt(all, 0)
			if n != c.size || err != io.EOF || !bytes.Equal(all[:n], data) {
				t.Fatalf("ReadAt all: %d, %v", n, err)
			}
			s, err := r.Stream(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(s)
			s.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Stream: %v", err)
			}
			// Next, in steps that do not divide a segment: in place within
			// one, copied across two, short with an error at the end.
			s, err = r.Stream(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			got = got[:0]
			for {
				p, err := s.Next(1000)
				got = append(got, p...)
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					if want := c.size % 1000; err == io.ErrUnexpectedEOF && len(p) != want || err == io.EOF && want != 0 {
						t.Fatalf("Next at the end: %d bytes, %v", len(p), err)
					}
					break
				}
				if err != nil || len(p) != 1000 {
					t.Fatalf("Next: %d bytes, %v", len(p), err)
				}
			}
			s.Close()
			if !bytes.Equal(got, data) {
				t.Fatal("Next: the bytes differ")
			}
		})
	}
}

func TestWriterReadFrom(t *testing.T) {
	targets := localStack(t, t.TempDir(), 3, 2)
	l := Layout{4, 2, 8192}
	data := randBytes(7, 10*8192+77)
	w, err := NewWriter(context.Background(), WriterOptions{DatasetID: "d", FileID: "f", Layout: l, Targets: targets, HashAlg: HashSHA256})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(w, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("io.Copy: %d, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	m, err := NewManifest("d", "f", l, HashSHA256, w.Segments())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, m, targets); !bytes.Equal(got, data) {
		t.Fatal("stream differs")
	}
}

// TestWriterAvailableBuffer writes a stream the way the encryption does,
// building pieces of it in the slice AvailableBuffer returns, mixed with
// plain writes and pieces that do not fit, and checks that it stores the
// same stream and the same pieces as plain writes.
func TestWriterAvailableBuffer(t *testing.T) {
	l := Layout{4, 2, 8192}
	data := randBytes(9, 10*8192+77)
	plain := localStack(t, t.TempDir(), 3, 2)
	want := writeStream(t, plain, l, "f", data)

	targets := localStack(t, t.TempDir(), 3, 2)
	w, err := NewWriter(context.Background(), WriterOptions{DatasetID: "d", FileID: "f", Layout: l, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	inPlace := 0
	for p, i := data, 0; len(p) > 0; i++ {
		n := min(len(p), 1000+i%3*700)
		if buf := w.AvailableBuffer(); i%5 != 0 && cap(buf) >= n {
			buf = append(buf, p[:n]...)
			if _, err := w.Write(buf); err != nil {
				t.Fatal(err)
			}
			inPlace++
		} else if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if inPlace == 0 {
		t.Fatal("no write went through AvailableBuffer")
	}
	m, err := NewManifest("d", "f", l, w.HashAlg(), w.Segments())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, m, targets); !bytes.Equal(got, data) {
		t.Fatal("stream differs")
	}
	for i := range m.Segments {
		for j := range m.Segments[i].Pieces {
			if m.Segments[i].Pieces[j].Hash != want.Segments[i].Pieces[j].Hash {
				t.Fatalf("segment %d piece %d differs from plain writes", i, j)
			}
		}
	}
}

func TestDegradedRead(t *testing.T) {
	targets := localStack(t, t.TempDir(), 3, 2)
	l := Layout{4, 2, 4096}
	data := randBytes(3, 6*4096+100)
	m := writeStream(t, targets, l, "f", data)

	// A target that is not configured counts as unreachable.
	r0, _ := NewReader(context.Background(), m, ReaderOptions{Targets: targets[1:]})
	got0 := make([]byte, len(data))
	if _, err := r0.ReadAt(got0, 0); err != nil || !bytes.Equal(got0, data) {
		t.Errorf("read without one target: %v", err)
	}
	if st := r0.Stats(); st.PiecesBad == 0 || st.SegmentsDegraded == 0 {
		t.Errorf("missing target not reported: %+v", st)
	}

	// Segment 1: delete a data piece and corrupt another (m = 2 failures).
	os.Remove(pieceFile(t, m, targets, 1, 0))
	p := pieceFile(t, m, targets, 1, 2)
	b, _ := os.ReadFile(p)
	b[10] ^= 0xff
	os.WriteFile(p, b, 0o644)
	// Segment 3: truncate a data piece. Segment 4: lose two parity pieces
	// (never fetched on a healthy read, so no degradation).
	os.Truncate(pieceFile(t, m, targets, 3, 1), 5)
	os.Remove(pieceFile(t, m, targets, 4, 4))
	os.Remove(pieceFile(t, m, targets, 4, 5))
	// Segment 6 (the short tail): one whole server gone for it.
	os.Remove(pieceFile(t, m, targets, 6, 0))
	os.Remove(pieceFile(t, m, targets, 6, 3))

	var mu sync.Mutex
	degraded := map[int][]PieceFailure{}
	r, err := NewReader(context.Background(), m, ReaderOptions{Targets: targets, OnDegraded: func(seg int, f []PieceFailure) {
		mu.Lock()
		degraded[seg] = f
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("degraded read returned wrong bytes")
	}
	st := r.Stats()
	if st.SegmentsDegraded != 3 || st.PiecesReconstructed != 5 || st.PiecesBad != 5 {
		t.Errorf("stats %+v", st)
	}
	f1 := degraded[1]
	if len(f1) != 2 || f1[0].Reason != ReasonMissing || f1[1].Reason != ReasonCorrupt || f1[0].Target != m.Segments[1].Pieces[0].Target {
		t.Errorf("segment 1 failures %+v", f1)
	}
	if f := degraded[3]; len(f) != 1 || f[0].Reason != ReasonCorrupt {
		t.Errorf("segment 3 failures %+v", f)
	}
	if _, ok := degraded[4]; ok {
		t.Error("lost parity reported as degraded")
	}

	// m+1 failures in segment 2 → *SegmentError naming file and segment.
	os.Remove(pieceFile(t, m, targets, 2, 0))
	os.Remove(pieceFile(t, m, targets, 2, 4))
	p = pieceFile(t, m, targets, 2, 3)
	b, _ = os.ReadFile(p)
	b[0] ^= 1
	os.WriteFile(p, b, 0o644)
	r3, _ := NewReader(context.Background(), m, ReaderOptions{Targets: targets})
	_, err = r3.WriteTo(io.Discard)
	var se *SegmentError
	if !errors.As(err, &se) || se.Segment != 2 || se.FileID != "f" || se.Usable != 3 || se.Need != 4 || len(se.Failures) != 3 {
		t.Fatalf("want SegmentError for segment 2, got %v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "file f segment 2: only 3 of 6 pieces usable, need 4 (piece 0 on ") ||
		!strings.Contains(msg, ": missing") || !strings.Contains(msg, ": corrupt") || strings.Contains(msg, "\n") {
		t.Errorf("message: %s", msg)
	}
	// Other segments are still readable by range.
	got := make([]byte, 4096)
	if _, err := r3.ReadAt(got, 4*4096); err != nil || !bytes.Equal(got, data[4*4096:5*4096]) {
		t.Errorf("ReadAt of an intact segment: %v", err)
	}
	if _, err := r3.ReadAt(got, 2*4096+5); !errors.As(err, &se) {
		t.Errorf("ReadAt of the lost segment: %v", err)
	}
}

func TestReadAtRanges(t *testing.T) {
	targets := localStack(t, t.TempDir(), 3, 2)
	const seg = 4096
	l := Layout{4, 2, seg}
	data := randBytes(11, 20*seg+1000)
	m := writeStream(t, targets, l, "f", data)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		off := rng.Int64N(int64(len(data)) + 10)
		n := rng.IntN(3 * seg)
		r, _ := NewReader(context.Background(), m, ReaderOptions{Targets: targets, CacheSegments: 1})
		p := make([]byte, n)
		got, err := r.ReadAt(p, off)
		want := 0
		if off < int64(len(data)) {
			want = min(n, len(data)-int(off))
		}
		if got != want || (got < n && err != io.EOF) || (got == n && err != nil) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d", n, off, got, err, want)
		}
		if want > 0 && !bytes.Equal(p[:got], data[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d, %d) returned wrong bytes", n, off)
		}
		// Only the covering segments are fetched.
		segs := int64(0)
		if got > 0 {
			segs = (off+int64(got)-1)/seg - off/seg + 1
		}
		if st := r.Stats(); st.SegmentsRead != segs || st.PiecesFetched != segs*4 {
			t.Fatalf("ReadAt(%d, %d): %+v, want %d segments", n, off, st, segs)
		}
	}
	// Many small sequential reads fetch each segment once.
	r, _ := NewReader(context.Background(), m, ReaderOptions{Targets: targets})
	chunk := make([]byte, 1000)
	var out []byte
	for off := int64(0); ; off += int64(len(chunk)) {
		n, err := r.ReadAt(chunk, off)
		out = append(out, chunk[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out, data) {
		t.Fatal("sequential ReadAt differs")
	}
	if st := r.Stats(); st.SegmentsRead != int64(len(m.Segments)) {
		t.Errorf("sequential small ReadAt: %+v, want %d segments", st, len(m.Segments))
	}
	// Streams from an offset.
	for _, off := range []int64{0, 1, seg - 1, seg, 5*seg + 17, int64(len(data)) - 1, int64(len(data))} {
		s, err := r.Stream(context.Background(), off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(s)
		s.Close()
		if err != nil || !bytes.Equal(got, data[off:]) {
			t.Fatalf("Stream(%d): %v", off, err)
		}
	}
}

// TestConcurrentReadAt hammers one Reader (and its cache) from several
// goroutines, with a degraded segment in the mix; run with -race.
func TestConcurrentReadAt(t *testing.T) {
	targets := localStack(t, t.TempDir(), 3, 2)
	l := Layout{4, 2, 4096}
	data := randBytes(13, 12*4096+5)
	m := writeStream(t, targets, l, "f", data)
	os.Remove(pieceFile(t, m, targets, 5, 1))
	r, _ := NewReader(context.Background(), m, ReaderOptions{Targets: targets, Concurrency: 3})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 200 {
				off := rng.Int64N(int64(len(data)))
				p := make([]byte, 1+rng.IntN(5000))
				n, err := r.ReadAt(p, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad concurrent reads", bad.Load())
	}
}

// TestResume writes a stream in two runs: the first stops after some
// segments (simulating a crash, recorded through OnSegment), the second
// starts at the next segment. The combined manifest reads back the whole
// stream.
func TestResume(t *testing.T) {
	targets := localStack(t, t.TempDir(), 3, 2)
	const seg = 4096
	l := Layout{4, 2, seg}
	data := randBytes(17, 9*seg+333)
	ctx := context.Background()
	var saved []SegmentMeta
	crash := errors.New("simulated crash")
	w1, err := NewWriter(ctx, WriterOptions{DatasetID: "d", FileID: "f", Layout: l, Targets: targets,
		OnSegment: func(s SegmentMeta) error {
			if s.Index == 4 {
				return crash
			}
			saved = append(saved, s)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w1.Write(data)
	cerr := w1.Close()
	if !errors.Is(werr, crash) && !errors.Is(cerr, crash) {
		t.Fatalf("first run: write %v, close %v", werr, cerr)
	}
	if len(saved) != 4 {
		t.Fatalf("first run saved %d segments", len(saved))
	}
	if len(w1.Segments()) != 4 {
		t.Fatalf("Segments() = %d after failure", len(w1.Segments()))
	}
	next := len(saved)
	w2, err := NewWriter(ctx, WriterOptions{DatasetID: "d", FileID: "f", Layout: l, Targets: targets, StartSegment: next,
		OnSegment: func(s SegmentMeta) error { saved = append(saved, s); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write(data[next*seg:]); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if w2.Segments()[0].Index != next {
		t.Fatalf("resumed writer started at %d", w2.Segments()[0].Index)
	}
	m, err := NewManifest("d", "f", l, w2.HashAlg(), saved)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, m, targets); !bytes.Equal(got, data) {
		t.Fatal("resumed stream differs")
	}
}

func TestWriterErrors(t *testing.T) {
	ctx := context.Background()
	targets := localStack(t, t.TempDir(), 3, 2)
	l := Layout{4, 2, 4096}
	bad := []WriterOptions{
		{DatasetID: "../x", FileID: "f", Layout: l, Targets: targets},
		{DatasetID: "d", FileID: "", Layout: l, Targets: targets},
		{DatasetID: "d", FileID: "f", Layout: Layout{4, 2, 4097}, Targets: targets},
		{DatasetID: "d", FileID: "f", Layout: l, Targets: targets[:4]},
		{DatasetID: "d", FileID: "f", Layout: l, Targets: targets, HashAlg: "md5"},
		{DatasetID: "d", FileID: "f", Layout: l, Targets: targets, StartSegment: -1},
	}
	for i, o := range bad {
		if _, err := NewWriter(ctx, o); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	// A target failing mid-stream aborts the writer with an error naming it.
	ft := &failingTarget{Target: targets[2], after: 3}
	ts := append([]Target{ft}, targets[:2]...)
	ts = append(ts, targets[3:]...)
	w, err := NewWriter(ctx, WriterOptions{DatasetID: "d", FileID: "f", Layout: l, Targets: ts})
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write(randBytes(1, 20*4096))
	cerr := w.Close()
	if cerr == nil || !strings.Contains(cerr.Error(), "disk on fire") || !strings.Contains(cerr.Error(), ft.ID()) {
		t.Fatalf("close: %v (write: %v)", cerr, werr)
	}
	for _, s := range w.Segments() {
		if s.Index >= 20 {
			t.Fatal("impossible segment")
		}
	}
	// Cancelling the context stops the writer.
	cctx, cancel := context.WithCancel(ctx)
	w, _ = NewWriter(cctx, WriterOptions{DatasetID: "d", FileID: "g", Layout: l, Targets: targets})
	w.Write(randBytes(2, 3*4096))
	cancel()
	if _, err := w.Write(randBytes(2, 3*4096)); !errors.Is(err, context.Canceled) {
		t.Errorf("write after cancel: %v", err)
	}
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("close after cancel: %v", err)
	}
}

type failingTarget struct {
	Target
	mu    sync.Mutex
	after int
}

func (f *failingTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	f.mu.Lock()
	f.after--
	n := f.after
	f.mu.Unlock()
	if n < 0 {
		return errors.New("disk on fire")
	}
	return f.Target.Put(ctx, key, r, size)
}

// patternReader yields n deterministic pseudo-random bytes without holding
// them, hashing what it produced.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
	h   interface{ Write([]byte) (int, error) }
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	p.rng.Read(b)
	p.h.Write(b)
	p.n -= int64(len(b))
	return len(b), nil
}

// peakHeap samples live heap objects every few hundred microseconds while
// fn runs and returns the peak above the starting level.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	runtime.GC() // and empty sync.Pool victim caches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// TestMemoryBounded streams 8× and 32× the segment size through Writer and
// Reader and checks that peak heap does not grow with the stream length.
// (At 4× the reader's readahead had not always filled, so the short run's
// peak was sometimes below steady state and the comparison flaky.)
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	targets := localStack(t, t.TempDir(), 3, 2)
	const seg = 1 << 20
	l := Layout{4, 2, seg}
	run := func(mult int, file string) (wpeak, rpeak uint64) {
		h1, h2 := sha256.New(), sha256.New()
		var m *Manifest
		wpeak = peakHeap(func() {
			w, err := NewWriter(context.Background(), WriterOptions{DatasetID: "d", FileID: file, Layout: l, Targets: targets})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, &patternReader{rng: rand.NewChaCha8(seedBytes(uint64(mult))), n: int64(mult*seg) + 12345, h: h1}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			m, err = NewManifest("d", file, l, w.HashAlg(), w.Segments())
			if err != nil {
				t.Fatal(err)
			}
		})
		rpeak = peakHeap(func() {
			r, err := NewReader(context.Background(), m, ReaderOptions{Targets: targets})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.WriteTo(h2); err != nil {
				t.Fatal(err)
			}
		})
		if !bytes.Equal(h1.Sum(nil), h2.Sum(nil)) {
			t.Fatal("stream differs")
		}
		return
	}
	w4, r4 := run(8, "small")
	w16, r16 := run(32, "large")
	t.Logf("peak heap: writer 8×seg %d KiB, 32×seg %d KiB; reader 8×seg %d KiB, 32×seg %d KiB", w4>>10, w16>>10, r4>>10, r16>>10)
	// Bounds: writer 2 buffers × 1.5 seg, reader 3 segments plus slack.
	// Growth with stream length must stay far below the 24 extra segments.
	for _, c := range []struct {
		name        string
		small, big  uint64
		expectBound uint64
	}{{"writer", w4, w16, 5 * seg}, {"reader", r4, r16, 5 * seg}} {
		if c.big > c.expectBound {
			t.Errorf("%s peak %d KiB exceeds %d KiB", c.name, c.big>>10, c.expectBound>>10)
		}
		if c.big > c.small+2*seg {
			t.Errorf("%s peak grew with stream length: %d KiB → %d KiB", c.name, c.small>>10, c.big>>10)
		}
	}
}

// gatedTarget blocks Puts of segment 0 until the gate opens.
type gatedTarget struct {
	Target
	gate chan struct{}
}

func (g *gatedTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if strings.Contains(key, "/seg-00000000/") {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Target.Put(ctx, key, r, size)
}

// TestWriterPipelines checks that the next segment is accepted (filled and,
// once full, encoded) while the previous one is still uploading, and that
// the writer then waits rather than buffering without bound.
func TestWriterPipelines(t *testing.T) {
	gate := make(chan struct{})
	var targets []Target
	for _, d := range localStack(t, t.TempDir(), 3, 2) {
		targets = append(targets, &gatedTarget{Target: d, gate: gate})
	}
	const seg = 4096
	w, err := NewWriter(context.Background(), WriterOptions{DatasetID: "d", FileID: "f", Layout: Layout{4, 2, seg}, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(8, 4*seg)
	// Segment 0 goes to the (blocked) uploader; segment 1 fills and seals.
	done := make(chan struct{})
	go func() {
		w.Write(data[:2*seg])
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("second segment was handed over while the first is still uploading: unbounded buffering")
	case <-time.After(200 * time.Millisecond):
	}
	if len(w.Segments()) != 0 {
		t.Fatal("segment reported before its pieces were stored")
	}
	close(gate)
	<-done
	if _, err := w.Write(data[2*seg:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(w.Segments()) != 4 {
		t.Fatalf("%d segments", len(w.Segments()))
	}
	// Filling overlaps uploading: with segment 0 blocked, a write of one
	// segment plus a bit returns at once.
	gate2 := make(chan struct{})
	for _, tg := range targets {
		tg.(*gatedTarget).gate = gate2
	}
	w2, _ := NewWriter(context.Background(), WriterOptions{DatasetID: "d", FileID: "g", Layout: Layout{4, 2, seg}, Targets: targets})
	start := time.Now()
	if _, err := w2.Write(data[:seg+100]); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 150*time.Millisecond {
		t.Error("Write waited for the upload of the previous segment")
	}
	close(gate2)
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriterAbort: a source failure must not store the segment being
// filled as if it were the end of the stream.
func TestWriterAbort(t *testing.T) {
	targets := localStack(t, t.TempDir(), 3, 2)
	l := Layout{K: 4, M: 2, SegmentSize: 4096}
	w, err := NewWriter(context.Background(), WriterOptions{DatasetID: "d", FileID: "f", Layout: l, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randBytes(1, 2*4096+100)); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("source vanished")
	if err := w.Abort(cause); !errors.Is(err, cause) {
		t.Fatalf("Abort = %v", err)
	}
	for _, s := range w.Segments() {
		if s.Size != l.SegmentSize {
			t.Fatalf("segment %d stored short (%d bytes) after abort", s.Index, s.Size)
		}
	}
	for _, tg := range targets {
		if _, err := tg.Stat(context.Background(), PieceKey("d", "f", 2, 0)); err == nil {
			t.Fatalf("partial segment 2 reached %s", tg.ID())
		}
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after Abort succeeded")
	}
}
