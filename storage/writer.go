package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// WriterOptions configures a Writer.
type WriterOptions struct {
	DatasetID, FileID string
	// Layout; zero fields are defaulted (see Layout.WithDefaults).
	Layout Layout
	// Targets to place pieces on (see Place); filter out unhealthy ones
	// beforehand. Their IDs are what the manifest records.
	Targets []Target
	// Placement, if set, says where the pieces of a segment go, in piece
	// order, instead of Place(Targets, Layout, segment): a client writes
	// where the broker that presigns its pieces tells it to. It must return
	// Layout.Shards() targets.
	Placement func(segment int) ([]Target, error)
	// HashAlg is HashSHA256 or HashBLAKE3; empty means DefaultHashAlg.
	HashAlg string
	// StartSegment is the index of the first segment this writer writes,
	// for resuming: the bytes written must be the stream from offset
	// StartSegment*Layout.SegmentSize on. Segments before it must have been
	// stored, full-sized, by earlier writers (as reported to OnSegment).
	StartSegment int
	// Concurrency bounds parallel piece PUTs; 0 means K+M.
	Concurrency int
	// OnSegment, if set, is called in segment order after every piece of a
	// segment is durably stored, e.g. to checkpoint progress for resuming.
	// An error aborts the writer and is returned by Write/Close.
	OnSegment func(SegmentMeta) error
}

// Writer erasure-codes a byte stream into segments and stores their pieces.
// It is an io.WriteCloser (and io.ReaderFrom); it is not safe for
// concurrent use.
//
// Writes are pipelined: while the pieces of segment i upload in the
// background, segment i+1 is filled and encoded in the caller's goroutine.
// Memory stays bounded by two segment buffers (each SegmentSize*(K+M)/K
// bytes) whatever the stream length. A segment is reported (OnSegment,
// Segments) only after all its pieces were stored; on any failure the writer
// stops, and the error is returned by the next Write and by Close. Pieces of
// a failed segment may remain on targets; a resumed run overwrites them.
type Writer struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	opts    WriterOptions
	enc     reedsolomon.Encoder
	segSize int

	free chan *segBuf // buffers available for filling
	work chan *segBuf // sealed, encoded segments awaiting upload
	done chan struct{}

	cur  *segBuf
	next int // index the next sealed segment gets

	mu   sync.Mutex
	segs []SegmentMeta

	closed   bool
	closeErr error
}

// segBuf holds one segment: data (the stream bytes, zero-padded to K pieces
// when sealed) and parity. Both grow lazily so a short stream does not cost
// full-size buffers.
type segBuf struct {
	data, parity []byte
	shards       [][]byte
	index        int
	size, ps     int
}

const writerBuffers = 2

// minBufGrow is the smallest allocation of a growing segment buffer.
const minBufGrow = 64 << 10

// NewWriter validates opts and returns a Writer. It checks that a placement
// exists for the targets given, so a hopeless configuration fails before any
// data is read.
func NewWriter(ctx context.Context, opts WriterOptions) (*Writer, error) {
	if err := ValidateID(opts.DatasetID); err != nil {
		return nil, fmt.Errorf("storage: writer dataset: %w", err)
	}
	if err := ValidateID(opts.FileID); err != nil {
		return nil, fmt.Errorf("storage: writer file: %w", err)
	}
	opts.Layout = opts.Layout.WithDefaults()
	l := opts.Layout
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if opts.HashAlg == "" {
		opts.HashAlg = DefaultHashAlg
	}
	if err := checkHashAlg(opts.HashAlg); err != nil {
		return nil, err
	}
	if opts.StartSegment < 0 || opts.StartSegment >= MaxSegments {
		return nil, fmt.Errorf("storage: start segment %d out of range", opts.StartSegment)
	}
	for _, t := range opts.Targets {
		if t == nil {
			return nil, errors.New("storage: nil target")
		}
		if err := ValidateID(t.ID()); err != nil {
			return nil, fmt.Errorf("storage: target id: %w", err)
		}
	}
	if opts.Placement == nil {
		if _, err := Place(opts.Targets, l, opts.StartSegment); err != nil {
			return nil, err
		}
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = l.Shards()
	}
	enc, err := reedsolomon.New(l.K, l.M, reedsolomon.WithAutoGoroutines(int(l.PieceSize())))
	if err != nil {
		return nil, fmt.Errorf("storage: reedsolomon %d+%d: %w", l.K, l.M, err)
	}
	wctx, cancel := context.WithCancelCause(ctx)
	w := &Writer{
		ctx:     wctx,
		cancel:  cancel,
		opts:    opts,
		enc:     enc,
		segSize: int(l.SegmentSize),
		free:    make(chan *segBuf, writerBuffers),
		work:    make(chan *segBuf),
		done:    make(chan struct{}),
		next:    opts.StartSegment,
	}
	for range writerBuffers {
		w.free <- &segBuf{shards: make([][]byte, l.Shards())}
	}
	go w.uploader()
	return w, nil
}

func (w *Writer) err() error {
	if w.ctx.Err() != nil {
		return context.Cause(w.ctx)
	}
	return nil
}

var errWriterClosed = errors.New("storage: write to closed Writer")

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	n := 0
	for len(p) > 0 {
		if err := w.ensureBuf(0); err != nil {
			return n, err
		}
		b := w.cur
		c := min(len(p), w.segSize-len(b.data))
		need := len(b.data) + c
		if w.next > w.opts.StartSegment {
			// The stream already filled a segment: take the full size at
			// once rather than doubling, whose garbage (another segment's
			// worth per buffer) raised the peak RSS.
			need = w.segSize
		}
		b.data = grow(b.data, need, w.segSize)
		if aliasesSpare(b.data, p[:c]) {
			// Written in place through AvailableBuffer.
			b.data = b.data[:len(b.data)+c]
		} else {
			b.data = append(b.data, p[:c]...)
		}
		n += c
		p = p[c:]
		if len(b.data) == w.segSize {
			if err := w.seal(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// AvailableBuffer returns an empty slice whose capacity is the unfilled
// rest of the segment being filled (possibly none), for a producer to build
// its next bytes in place and pass them to Write, which then keeps them
// without a copy (the bufio.Writer convention). The slice is valid until
// the next Write; it never reaches past the segment's end.
func (w *Writer) AvailableBuffer() []byte {
	if w.closed || w.ensureBuf(0) != nil {
		return nil
	}
	b := w.cur
	if w.next > w.opts.StartSegment {
		// As in Write: after the first segment, buffers are full-sized.
		b.data = grow(b.data, w.segSize, w.segSize)
	}
	return b.data[len(b.data):len(b.data):min(cap(b.data), w.segSize)]
}

// aliasesSpare reports whether p starts exactly where buf's length ends,
// inside buf's capacity: bytes written there through AvailableBuffer.
func aliasesSpare(buf, p []byte) bool {
	return len(p) > 0 && len(p) <= cap(buf)-len(buf) && &buf[len(buf):cap(buf)][0] == &p[0]
}

// ReadFrom implements io.ReaderFrom, reading straight into segment buffers
// (io.Copy uses it and saves a copy of every byte).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	var total int64
	for {
		if err := w.ensureBuf(w.segSize); err != nil {
			return total, err
		}
		b := w.cur
		n, err := io.ReadFull(r, b.data[len(b.data):w.segSize])
		b.data = b.data[:len(b.data)+n]
		total += int64(n)
		if len(b.data) == w.segSize {
			if serr := w.seal(); serr != nil {
				return total, serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// ensureBuf makes w.cur a buffer with capacity for at least capacity bytes.
func (w *Writer) ensureBuf(capacity int) error {
	if err := w.err(); err != nil {
		return err
	}
	if w.cur == nil {
		select {
		case b := <-w.free:
			b.data = b.data[:0]
			w.cur = b
		case <-w.ctx.Done():
			return context.Cause(w.ctx)
		}
	}
	w.cur.data = grow(w.cur.data, capacity, w.segSize)
	return nil
}

// grow returns b with capacity for at least n bytes (at most limit unless n
// exceeds it), doubling so a buffer reaches full size in few steps.
func grow(b []byte, n, limit int) []byte {
	if n <= cap(b) {
		return b
	}
	c := min(max(2*cap(b), n, minBufGrow), max(limit, n))
	nb := make([]byte, len(b), c)
	copy(nb, b)
	return nb
}

// seal pads and encodes w.cur and hands it to the uploader.
func (w *Writer) seal() error {
	b := w.cur
	w.cur = nil
	k, m := w.opts.Layout.K, w.opts.Layout.M
	b.index = w.next
	w.next++
	b.size = len(b.data)
	b.ps = (b.size + k - 1) / k
	// Only a short last segment needs padding; the zeros take part in the
	// coding but SegmentMeta.Size keeps the true length.
	b.data = grow(b.data, k*b.ps, w.segSize)[:k*b.ps]
	clear(b.data[b.size:])
	if cap(b.parity) < m*b.ps {
		b.parity = make([]byte, m*b.ps)
	}
	b.parity = b.parity[:m*b.ps]
	for i := range k {
		b.shards[i] = b.data[i*b.ps : (i+1)*b.ps : (i+1)*b.ps]
	}
	for i := range m {
		b.shards[k+i] = b.parity[i*b.ps : (i+1)*b.ps : (i+1)*b.ps]
	}
	if err := w.enc.Encode(b.shards); err != nil {
		err = fmt.Errorf("storage: encoding segment %d of %s: %w", b.index, w.opts.FileID, err)
		w.cancel(err)
		return err
	}
	select {
	case w.work <- b:
		return nil
	case <-w.ctx.Done():
		w.free <- b
		return context.Cause(w.ctx)
	}
}

func (w *Writer) uploader() {
	defer close(w.done)
	for b := range w.work {
		if w.ctx.Err() == nil {
			if err := w.store(b); err != nil {
				w.cancel(err)
			}
		}
		w.free <- b
	}
}

// store hashes and uploads the pieces of b, then reports the segment.
func (w *Writer) store(b *segBuf) error {
	o := &w.opts
	place := o.Placement
	if place == nil {
		place = func(seg int) ([]Target, error) { return Place(o.Targets, o.Layout, seg) }
	}
	targets, err := place(b.index)
	if err != nil {
		return err
	}
	n := o.Layout.Shards()
	if len(targets) != n {
		return fmt.Errorf("storage: segment %d placed on %d targets, want %d", b.index, len(targets), n)
	}
	meta := SegmentMeta{Index: b.index, Size: int64(b.size), PieceSize: int64(b.ps), Pieces: make([]PieceMeta, n)}
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-w.ctx.Done():
		}
		if w.ctx.Err() != nil {
			break
		}
		t, shard := targets[i], b.shards[i]
		wg.Go(func() {
			defer func() { <-sem }()
			meta.Pieces[i] = PieceMeta{Target: t.ID(), Hash: hashHex(o.HashAlg, shard)}
			key := PieceKey(o.DatasetID, o.FileID, b.index, i)
			if err := t.Put(w.ctx, key, bytes.NewReader(shard), int64(len(shard))); err != nil {
				// Cancel the sibling PUTs: the segment has failed.
				w.cancel(fmt.Errorf("storage: %s segment %d piece %d on %s: %w", o.FileID, b.index, i, t.ID(), err))
			}
		})
	}
	wg.Wait()
	if err := w.err(); err != nil {
		return err
	}
	if o.OnSegment != nil {
		if err := o.OnSegment(meta); err != nil {
			return fmt.Errorf("storage: %s segment %d: OnSegment: %w", o.FileID, b.index, err)
		}
	}
	w.mu.Lock()
	w.segs = append(w.segs, meta)
	w.mu.Unlock()
	return nil
}

// Close stores the final (possibly short) segment, waits for all uploads and
// returns the first error of the whole write, if any. Close is idempotent.
func (w *Writer) Close() error {
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	if w.cur != nil && len(w.cur.data) > 0 && w.err() == nil {
		w.seal() // an error is also recorded in w.ctx
	}
	close(w.work)
	<-w.done
	w.closeErr = w.err()
	w.cancel(errWriterClosed) // release the context
	return w.closeErr
}

// Abort ends the writer without storing the segment being filled and
// returns cause. Use it when the source failed: Close would store a short
// final segment that is not the end of the stream. Full segments already
// sealed still upload (unless storage itself failed), so a resumed write
// has less to redo; those reported to OnSegment stay valid for resuming.
func (w *Writer) Abort(cause error) error {
	if cause == nil {
		cause = errors.New("storage: write aborted")
	}
	if w.closed {
		return cause
	}
	w.closed = true
	close(w.work)
	<-w.done
	w.cancel(cause)
	w.closeErr = cause
	return cause
}

// Segments returns the metadata of the segments this writer stored, in
// order. After a successful Close it is the complete list.
func (w *Writer) Segments() []SegmentMeta {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]SegmentMeta, len(w.segs))
	copy(out, w.segs)
	return out
}

// HashAlg returns the hash algorithm in use (after defaulting); pass it to
// NewManifest.
func (w *Writer) HashAlg() string { return w.opts.HashAlg }

// Layout returns the layout in use (after defaulting); pass it to
// NewManifest.
func (w *Writer) Layout() Layout { return w.opts.Layout }
