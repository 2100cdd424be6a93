package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
)

// refusingTarget refuses every Get once refuse is set, as a target
// reached through a broker does after the caller's access was revoked.
type refusingTarget struct {
	Target
	refuse *atomic.Bool
	gets   *atomic.Int64
}

func (t refusingTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	t.gets.Add(1)
	if t.refuse.Load() {
		return nil, fmt.Errorf("presigning GET of %s on %s: %w", key, t.ID(), errors.Join(errors.New("your access was revoked"), ErrRefused))
	}
	return t.Target.Get(ctx, key, off, length)
}

// TestReaderStopsOnRefusal: a target refusing for want of authority ends
// the read with that refusal; it is not reported as damage (SegmentError),
// no parity is fetched, and no target is marked down.
func TestReaderStopsOnRefusal(t *testing.T) {
	base := localStack(t, t.TempDir(), 3, 2)
	l := Layout{K: 4, M: 2, SegmentSize: 64 << 10}
	data := randBytes(7, 5*64<<10+99)
	m := writeStream(t, base, l, "f1", data)

	var refuse atomic.Bool
	var gets atomic.Int64
	var ts []Target
	for _, b := range base {
		ts = append(ts, refusingTarget{b, &refuse, &gets})
	}
	r, err := NewReader(context.Background(), m, ReaderOptions{Targets: ts, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadSegment(context.Background(), 0, nil)
	if err != nil || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("segment 0 before the refusal: %v", err)
	}
	refuse.Store(true)
	gets.Store(0)
	_, err = r.ReadSegment(context.Background(), 1, nil)
	var se *SegmentError
	if !errors.Is(err, ErrRefused) || errors.As(err, &se) {
		t.Fatalf("segment 1 after the refusal: %v, want the refusal and no SegmentError", err)
	}
	if n := gets.Load(); n != int64(m.K) {
		t.Errorf("%d GETs after the refusal, want the %d data pieces only (no parity)", n, m.K)
	}
	if s := r.Stats(); s.PiecesReconstructed != 0 || s.SegmentsDegraded != 0 {
		t.Errorf("stats %+v: a refusal counted as damage", s)
	}
	// Access restored: every target is still asked (none marked down).
	refuse.Store(false)
	if _, err := r.ReadSegment(context.Background(), 1, nil); err != nil {
		t.Fatalf("segment 1 after access came back: %v", err)
	}
	if s := r.Stats(); s.SegmentsDegraded != 0 {
		t.Errorf("a refusal marked targets down: %+v", s)
	}
}
