package transfer

import (
	"io"

	"github.com/dozo-vault/dozo/crypto"

	"math"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// The data path hashes every plaintext byte (SHA-256 and MD5 for the
// catalog) besides encrypting it. Done in line, those passes serialise with
// encryption and I/O; a fan-out hands each block of bytes to one goroutine
// per consumer instead, so on a multi-core machine hashing, encryption and
// writing overlap. Blocks come from a fixed pool, so memory is bounded by
// pipeBlocks*pipeBlockSize whatever the file size.
const (
	pipeBlockSize = 1 << 20
	pipeBlocks    = 8
)

// block is one buffer of bytes on its way through a fanout.
type block struct {
	buf  []byte
	n    int
	seg  int  // segment the bytes belong to (uploads)
	last bool // the last block of segment seg
	refs atomic.Int32
}

func (b *block) bytes() []byte { return b.buf[:b.n] }

// newBlockBuf returns a block's buffer: pipeBlockSize bytes, and room
// past them for a chunk's authentication tag, so a decryptor can read a
// whole chunk into a block's last 64 KiB (asyncSink.AvailableBuffer).
// Buffers come from blockBufs, where each fanout leaves its own when it
// closes: a batch of small files then reuses a few buffers instead of
// allocating (and clearing, and collecting) fresh megabytes per file. The
// pool holds no more than the fanouts last had at once, and the GC
// empties it.
func newBlockBuf() []byte { return *blockBufs.Get().(*[]byte) }

var blockBufs = sync.Pool{New: func() any {
	b := make([]byte, pipeBlockSize, pipeBlockSize+crypto.ChunkOverhead)
	return &b
}}

// fanout sends blocks to consumers, each running in its own goroutine and
// seeing every block in order. A block returns to the pool once every
// consumer has released it.
type fanout struct {
	pool chan *block
	subs []chan *block
	wg   sync.WaitGroup
	once sync.Once
}

// newFanout starts one goroutine per consumer function. A consumer is
// called once per block and must not keep the block's bytes after
// returning.
func newFanout(consumers ...func(*block)) *fanout {
	f := &fanout{pool: make(chan *block, pipeBlocks)}
	for range pipeBlocks {
		f.pool <- &block{}
	}
	for _, c := range consumers {
		ch := make(chan *block, pipeBlocks)
		f.subs = append(f.subs, ch)
		f.wg.Go(func() {
			for b := range ch {
				c(b)
				f.release(b)
			}
		})
	}
	return f
}

// get returns a free block (waiting for one), with a buffer of
// pipeBlockSize allocated on first use.
func (f *fanout) get() *block {
	b := <-f.pool
	if b.buf == nil {
		b.buf = newBlockBuf()
	}
	b.n, b.seg, b.last = 0, 0, false
	return b
}

// send hands b to every consumer; extra is how many more releases (by the
// caller) it waits for before returning to the pool.
func (f *fanout) send(b *block, extra int) {
	b.refs.Store(int32(len(f.subs) + extra))
	if len(f.subs)+extra == 0 {
		f.pool <- b
		return
	}
	for _, ch := range f.subs {
		ch <- b
	}
}

func (f *fanout) release(b *block) {
	if b.refs.Add(-1) == 0 {
		f.pool <- b
	}
}

// close ends the consumers and waits until they have seen every block,
// then gives the buffers of the blocks back in the pool to blockBufs (a
// block still held elsewhere keeps its buffer; a get after close
// allocates anew).
func (f *fanout) close() {
	f.once.Do(func() {
		for _, ch := range f.subs {
			close(ch)
		}
	})
	f.wg.Wait()
	for range len(f.pool) {
		select {
		case b := <-f.pool:
			if b.buf != nil {
				buf := b.buf[:pipeBlockSize]
				b.buf = nil
				blockBufs.Put(&buf)
			}
			f.pool <- b
		default:
			return
		}
	}
}

// asyncSink is an io.Writer (and io.ReaderFrom) that passes bytes to
// consumer goroutines — the output and each hash — so that writing and
// hashing overlap with the decryption producing the bytes. Close waits for
// them and returns the output's first error.
type asyncSink struct {
	fan  *fanout
	cur  *block // being filled by Write
	mu   sync.Mutex
	werr error
}

// newAsyncSink writes to out and hashes into each of hs, each in its own
// goroutine.
func newAsyncSink(out io.Writer, hs ...io.Writer) *asyncSink {
	s := &asyncSink{}
	consumers := []func(*block){func(b *block) {
		if s.failed() != nil {
			return
		}
		if _, err := out.Write(b.bytes()); err != nil {
			s.mu.Lock()
			s.werr = err
			s.mu.Unlock()
		}
	}}
	for _, h := range hs {
		consumers = append(consumers, func(b *block) { h.Write(b.bytes()) })
	}
	s.fan = newFanout(consumers...)
	return s
}

func (s *asyncSink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.werr
}

func (s *asyncSink) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := s.failed(); err != nil {
			return n, err
		}
		if s.cur == nil {
			s.cur = s.fan.get()
		}
		var c int
		if s.cur.n+len(p) <= len(s.cur.buf) && cap(s.cur.buf) > s.cur.n && &s.cur.buf[s.cur.n:cap(s.cur.buf)][0] == &p[0] {
			c = len(p) // built in place through AvailableBuffer
		} else {
			c = copy(s.cur.buf[s.cur.n:], p)
		}
		s.cur.n += c
		p = p[c:]
		n += c
		if s.cur.n == len(s.cur.buf) {
			s.flush()
		}
	}
	return n, nil
}

// AvailableBuffer returns an empty slice whose capacity is the free rest
// of the block being filled (plus room for a chunk's tag), for a producer
// to build its next bytes in place and pass them to Write, which then
// keeps them without a copy (the bufio.Writer convention). It is valid
// until the next Write.
func (s *asyncSink) AvailableBuffer() []byte {
	if s.failed() != nil {
		return nil
	}
	if s.cur == nil {
		s.cur = s.fan.get()
	}
	return s.cur.buf[s.cur.n:s.cur.n:cap(s.cur.buf)]
}

func (s *asyncSink) flush() {
	if s.cur != nil {
		s.fan.send(s.cur, 0)
		s.cur = nil
	}
}

// ReadFrom reads straight into the blocks, saving a copy per byte.
func (s *asyncSink) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	s.flush()
	for {
		if err := s.failed(); err != nil {
			return total, err
		}
		b := s.fan.get()
		n, err := io.ReadFull(r, b.buf)
		b.n = n
		total += int64(n)
		s.fan.send(b, 0)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close waits until every block is written and hashed.
func (s *asyncSink) Close() error {
	s.flush()
	s.fan.close()
	return s.failed()
}

// heapSlack is what a transfer's heap may hold besides its segment
// buffers: HTTP and TLS state, pipe blocks, journal and manifest.
const heapSlack = 48 << 20

// boundHeap sets a soft memory limit of buffers+heapSlack bytes for the
// duration of one transfer, unless the user set one (GOMEMLIMIT). The
// transfer's large buffers are long-lived, so the GC's default pacing (a
// new cycle only when the heap doubles) let small per-segment garbage pile
// up to another buffer's worth on long files: peak RSS grew from 156 MiB
// for 1 GiB to 224 MiB for 8 GiB. With the limit, it stays flat.
func boundHeap(buffers int64) (restore func()) {
	prev := debug.SetMemoryLimit(-1)
	if prev != math.MaxInt64 || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	debug.SetMemoryLimit(buffers + heapSlack)
	return func() { debug.SetMemoryLimit(prev) }
}
