package storage

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// TestReaderWithEntrySource: a Reader given a manifest's head reads the
// stream with entries fetched on demand, asks only for the segments it
// reads, and refuses an entry that does not fit the head (another
// segment's, a different piece size) instead of reading with it; a
// forged hash in a well-formed entry fails the piece check as ever, and
// no bytes come back.
func TestReaderWithEntrySource(t *testing.T) {
	ts := localStack(t, t.TempDir(), 3, 2)
	l := Layout{K: 4, M: 2, SegmentSize: 64 << 10}
	data := randBytes(7, 5*int(l.SegmentSize)+333)
	m := writeStream(t, ts, l, "f1", data)
	ctx := context.Background()

	// The reader asks from several goroutines (readahead), as the client's
	// source is asked: the stand-in locks as that one does.
	var mu sync.Mutex
	asked := map[int]int{}
	var edit func(i int, s *SegmentMeta)
	src := func(_ context.Context, i int) (*SegmentMeta, error) {
		mu.Lock()
		defer mu.Unlock()
		asked[i]++
		s := m.Segments[i]
		s.Pieces = append([]PieceMeta(nil), s.Pieces...)
		if edit != nil {
			edit(i, &s)
		}
		return &s, nil
	}
	head := m.Head()
	if len(head.Segments) != 0 || head.SegmentCount() != 6 {
		t.Fatalf("head has %d entries, counts %d segments", len(head.Segments), head.SegmentCount())
	}
	if _, err := NewReader(ctx, head, ReaderOptions{Targets: ts}); err == nil {
		t.Fatal("a head without an entry source was accepted")
	}
	r, err := NewReader(ctx, head, ReaderOptions{Targets: ts, Entries: src})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := r.WriteTo(&got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read with entries on demand: %v", err)
	}
	mu.Lock()
	clear(asked)
	mu.Unlock()
	buf := make([]byte, 10)
	_, err = r.ReadAt(buf, 3*l.SegmentSize+5)
	mu.Lock()
	n3, nAsked := asked[3], len(asked)
	mu.Unlock()
	if err != nil || !bytes.Equal(buf, data[3*l.SegmentSize+5:][:10]) || nAsked != 1 || n3 != 1 {
		t.Fatalf("ReadAt in segment 3: %v, asked for %d segments, segment 3 %d times", err, nAsked, n3)
	}

	for name, e := range map[string]func(int, *SegmentMeta){
		"another segment's entry": func(i int, s *SegmentMeta) { *s = m.Segments[(i+1)%len(m.Segments)] },
		"wrong piece size":        func(_ int, s *SegmentMeta) { s.PieceSize++ },
		"a missing piece":         func(_ int, s *SegmentMeta) { s.Pieces = s.Pieces[1:] },
	} {
		edit = e
		r, _ := NewReader(ctx, head, ReaderOptions{Targets: ts, Entries: src})
		if _, err := r.ReadSegment(ctx, 1, nil); err == nil || !strings.Contains(err.Error(), "segment") {
			t.Errorf("%s: %v, want a refused entry", name, err)
		}
	}
	edit = func(_ int, s *SegmentMeta) { s.Pieces[0].Hash = strings.Repeat("0", 64) }
	r, _ = NewReader(ctx, head, ReaderOptions{Targets: ts, Entries: src})
	if seg, err := r.ReadSegment(ctx, 1, nil); err == nil || seg != nil || r.Stats().PiecesBad != 1 {
		t.Fatalf("forged hash of piece 0: %v, %+v; want the piece refused and no bytes (the rebuilt piece cannot match either)", err, r.Stats())
	}
	edit = nil
	boom := errors.New("dozod unreachable")
	r, _ = NewReader(ctx, head, ReaderOptions{Targets: ts, Entries: func(context.Context, int) (*SegmentMeta, error) { return nil, boom }})
	if _, err := r.ReadSegment(ctx, 0, nil); !errors.Is(err, boom) {
		t.Fatalf("entry source error: %v", err)
	}
}
