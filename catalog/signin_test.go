package catalog

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestPendingSignIns: a pending sign-in is read without being used up,
// taken at most once, and the table stays bounded: stale rows go first,
// then the oldest.
func TestPendingSignIns(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	mk := func(b byte, at time.Time, limit int) error {
		return c.CreatePendingSignIn(ctx, PendingSignIn{IDHash: h(b), Sealed: []byte{b}, CreatedAt: at}, t0.Add(-10*time.Minute), limit)
	}
	if err := mk(1, t0, 3); err != nil {
		t.Fatal(err)
	}
	if err := mk(1, t0, 3); !errors.Is(err, ErrExists) {
		t.Fatalf("second sign-in under one id: %v", err)
	}
	for range 2 {
		got, err := c.PendingSignIn(ctx, h(1))
		if err != nil || !bytes.Equal(got.Sealed, []byte{1}) || !got.CreatedAt.Equal(t0) {
			t.Fatalf("read back: %+v %v", got, err)
		}
	}
	if ok, err := c.TakePendingSignIn(ctx, h(1)); err != nil || !ok {
		t.Fatalf("take: %v %v", ok, err)
	}
	if ok, err := c.TakePendingSignIn(ctx, h(1)); err != nil || ok {
		t.Fatalf("taken twice: %v %v", ok, err)
	}
	if _, err := c.PendingSignIn(ctx, h(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a taken sign-in is still there: %v", err)
	}

	// Stale rows go before anything else; then the oldest make room.
	mk(2, t0.Add(-time.Hour), 0)
	mk(3, t0.Add(-2*time.Minute), 0)
	mk(4, t0.Add(-time.Minute), 0)
	if err := mk(5, t0, 2); err != nil {
		t.Fatal(err)
	}
	for b, want := range map[byte]bool{2: false, 3: false, 4: true, 5: true} {
		if _, err := c.PendingSignIn(ctx, h(b)); (err == nil) != want {
			t.Errorf("row %d kept = %v, want %v", b, err == nil, want)
		}
	}
	if n, err := c.CountPendingSignIns(ctx); err != nil || n != 2 {
		t.Fatalf("%d rows, want 2 (%v)", n, err)
	}
}
