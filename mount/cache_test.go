package mount

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// fill makes a loader that writes the segment's index into every byte and
// counts its calls.
func fill(calls *atomic.Int64) func(k segKey) func([]byte) error {
	return func(k segKey) func([]byte) error {
		return func(b []byte) error {
			calls.Add(1)
			for i := range b {
				b[i] = byte(k.seg)
			}
			return nil
		}
	}
}

func TestCacheBoundAndLRU(t *testing.T) {
	const seg = 100
	c := NewCache(3 * seg)
	var calls atomic.Int64
	load := fill(&calls)
	read := func(s int64) {
		t.Helper()
		k := segKey{"f", s}
		p := make([]byte, 10)
		n, err := c.Read(k, seg, 90, p, load(k))
		if err != nil || n != 10 || !bytes.Equal(p, bytes.Repeat([]byte{byte(s)}, 10)) {
			t.Fatalf("segment %d: n=%d err=%v p=%v", s, n, err, p)
		}
		if st := c.Stats(); st.Used+st.Reserved > st.Limit {
			t.Fatalf("after segment %d: %d used + %d reserved > limit %d", s, st.Used, st.Reserved, st.Limit)
		}
	}
	for s := range int64(3) {
		read(s)
	}
	read(0) // hit; 0 becomes most recent, so 1 is evicted next
	read(3)
	if calls.Load() != 4 {
		t.Fatalf("loads = %d, want 4", calls.Load())
	}
	read(0) // still cached
	read(2) // still cached
	if calls.Load() != 4 {
		t.Fatalf("loads = %d after hits, want 4", calls.Load())
	}
	read(1) // was evicted
	if calls.Load() != 5 {
		t.Fatalf("loads = %d, want 5: segment 1 should have been evicted", calls.Load())
	}
	st := c.Stats()
	if st.Evictions != 2 || st.Used != 3*seg {
		t.Fatalf("stats %+v, want 2 evictions and %d bytes used", st, 3*seg)
	}
}

func TestCacheSharesLoadAndDoesNotCacheErrors(t *testing.T) {
	c := NewCache(1000)
	k := segKey{"f", 7}
	release := make(chan struct{})
	var calls atomic.Int64
	slow := func(b []byte) error {
		calls.Add(1)
		<-release
		for i := range b {
			b[i] = 7
		}
		return nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			p := make([]byte, 5)
			if n, err := c.Read(k, 100, 0, p, slow); err != nil || n != 5 || p[4] != 7 {
				t.Errorf("n=%d err=%v p=%v", n, err, p)
			}
		})
	}
	for c.Stats().Loads == 0 {
		// wait until the first reader started the load
	}
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d loads for 8 concurrent readers of one segment, want 1", calls.Load())
	}

	boom := errors.New("boom")
	k2 := segKey{"f", 8}
	if _, err := c.Read(k2, 100, 0, make([]byte, 1), func([]byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if st := c.Stats(); st.Used != 100 {
		t.Fatalf("a failed load left %d bytes accounted, want 100 (only the good segment)", st.Used)
	}
	p := make([]byte, 1)
	if _, err := c.Read(k2, 100, 0, p, fill(&calls)(k2)); err != nil || p[0] != 8 {
		t.Fatalf("after a failed load, reading again: %v %v", err, p)
	}
}

func TestCacheWarm(t *testing.T) {
	c := NewCache(1000)
	var calls atomic.Int64
	k := segKey{"f", 1}
	if !c.Warm(k, 100, fill(&calls)(k)) {
		t.Fatal("Warm of a missing segment started nothing")
	}
	if c.Warm(k, 100, fill(&calls)(k)) {
		t.Fatal("Warm of a segment already loading started another load")
	}
	p := make([]byte, 3)
	if _, err := c.Read(k, 100, 97, p, fill(&calls)(k)); err != nil || p[2] != 1 {
		t.Fatalf("%v %v", err, p)
	}
	if calls.Load() != 1 {
		t.Fatalf("loads = %d, want 1 (the read should use the warmed segment)", calls.Load())
	}

	// A failed warm is retried by the reader, not inherited.
	k2 := segKey{"f", 2}
	c.Warm(k2, 100, func([]byte) error { return errors.New("cut short") })
	if _, err := c.Read(k2, 100, 0, p, fill(&calls)(k2)); err != nil || p[0] != 2 {
		t.Fatalf("read after a failed warm: %v %v", err, p)
	}
}

func TestCacheReserve(t *testing.T) {
	const seg = 100
	c := NewCache(5 * seg)
	var calls atomic.Int64
	for s := range int64(5) {
		k := segKey{"f", s}
		c.Read(k, seg, 0, make([]byte, 1), fill(&calls)(k))
	}
	rel, err := c.Reserve(2*seg, seg)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Used+st.Reserved > st.Limit || st.Used != 3*seg {
		t.Fatalf("after reserving: %+v, want 300 bytes of segments left", st)
	}
	if _, err := c.Reserve(3*seg, seg); !errors.Is(err, ErrCacheFull) {
		t.Fatalf("reserving past the limit less headroom: err = %v, want ErrCacheFull", err)
	}
	rel()
	rel() // harmless
	if st := c.Stats(); st.Reserved != 0 {
		t.Fatalf("reserved = %d after release, want 0", st.Reserved)
	}
	if _, err := c.Reserve(4*seg, seg); err != nil {
		t.Fatalf("after release the bytes should be free again: %v", err)
	}
}

func TestCacheReadBounds(t *testing.T) {
	c := NewCache(1000)
	var calls atomic.Int64
	k := segKey{"f", 0}
	if _, err := c.Read(k, 100, 101, make([]byte, 1), fill(&calls)(k)); err == nil {
		t.Fatal("offset past the segment accepted")
	}
	n, err := c.Read(k, 100, 100, make([]byte, 1), fill(&calls)(k))
	if err != nil || n != 0 {
		t.Fatalf("offset at the segment end: n=%d err=%v, want 0, nil", n, err)
	}
}
