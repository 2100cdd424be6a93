package mount

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// memFile is a stored file in memory that records the offsets read.
type memFile struct {
	data []byte
	mu   sync.Mutex
	offs []int64
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	m.offs = append(m.offs, off)
	m.mu.Unlock()
	return copy(p, m.data[off:]), nil
}
func (m *memFile) Size() int64  { return int64(len(m.data)) }
func (m *memFile) ID() string   { return "f1" }
func (m *memFile) Close() error { return nil }

func (m *memFile) reads() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.offs)
}

// TestReadLoadsCoveringSegments: a read loads exactly the segments it
// covers, each once; a read that follows on from the last warms the next
// segment; reads at and past the end are cut at the file's size.
func TestReadLoadsCoveringSegments(t *testing.T) {
	const seg = 64 << 10 // one chunk: the reader reserves two stored segments
	data := make([]byte, 4*seg+seg/2)
	for i := range data {
		data[i] = byte(i * 7)
	}
	cat := &catalog{datasets: []api.Dataset{{ID: "D1", PlainSegmentSize: seg, Access: []string{"grantee"}}}}
	f := New(context.Background(), cat, Options{CacheSize: 1 << 20})
	ctx := context.Background()
	if err := f.Check(ctx); err != nil {
		t.Fatal(err)
	}
	mf := &memFile{data: data}
	o, err := f.acquire("D1", "a.bam", seg, mf)
	if err != nil {
		t.Fatal(err)
	}
	h := &handle{fsys: f, of: o}
	read := func(off int64, n int) []byte {
		t.Helper()
		res, errno := h.Read(ctx, make([]byte, n), off)
		if errno != 0 {
			t.Fatalf("read %d@%d: errno %v", n, off, errno)
		}
		b, _ := res.Bytes(nil)
		want := data[min(off, int64(len(data))):min(off+int64(n), int64(len(data)))]
		if !bytes.Equal(b, want) {
			t.Fatalf("read %d@%d: %d bytes, not the file's", n, off, len(b))
		}
		return b
	}

	read(2*seg+seg/2, 100) // inside segment 2; not where a sequential reader would be
	if got := mf.reads(); !slices.Equal(got, []int64{2 * seg}) {
		t.Fatalf("a read inside segment 2 loaded %v, want [2*seg]", got)
	}
	read(2*seg+seg/2+100, seg) // follows on: segment 2 from the cache, 3 loaded, 4 warmed
	for deadline := time.Now().Add(5 * time.Second); len(mf.reads()) < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := mf.reads(); !slices.Equal(got, []int64{2 * seg, 3 * seg, 4 * seg}) {
		t.Fatalf("after a sequential read: loads at %v, want segments 2, 3, 4", got)
	}
	if b := read(4*seg+seg/2-100, seg); len(b) != 100 {
		t.Fatalf("read across the end returned %d bytes, want 100", len(b))
	}
	if b := read(4*seg+seg/2, 10); len(b) != 0 {
		t.Fatalf("read at the end returned %d bytes", len(b))
	}
	if got := mf.reads(); len(got) != 3 {
		t.Fatalf("the last segment was loaded again: %v", got)
	}
	read(0, len(data)) // the whole file in one request
	if got := mf.reads(); !slices.Equal(got, []int64{2 * seg, 3 * seg, 4 * seg, 0, seg}) {
		t.Fatalf("a whole-file read loaded %v, want segments 0 and 1 added", got)
	}

	// A refusal denies reads even of cached segments.
	f.deny("D1", revoked())
	if _, errno := h.Read(ctx, make([]byte, 10), 2*seg); errno != 13 {
		t.Fatalf("read of a cached segment after a refusal: errno %v, want EACCES", errno)
	}
	if st := f.cache.Stats(); st.Reserved != 2*storedSegment(seg) {
		t.Fatalf("%d bytes reserved for the open file, want two stored segments (%d)", st.Reserved, 2*storedSegment(seg))
	}
	h.Release(ctx)
	if st := f.cache.Stats(); st.Reserved != 0 {
		t.Fatalf("%d bytes still reserved after the last handle closed", st.Reserved)
	}

	// An index smaller than a segment reserves its own stored size only.
	small := &memFile{data: make([]byte, 100)}
	if _, err := f.acquire("D1", "a.bam.bai", seg, small); err != nil {
		t.Fatal(err)
	}
	if st := f.cache.Stats(); st.Reserved != 100+16 {
		t.Fatalf("a 100-byte file reserved %d bytes, want 116 (one chunk)", st.Reserved)
	}
}
