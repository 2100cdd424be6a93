package catalog

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestConsoleSessions(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	mk := func(b byte, seen time.Time, limit int) error {
		return c.CreateConsoleSession(ctx, ConsoleSession{IDHash: h(b), User: "cara", Sealed: []byte{b, b}, CreatedAt: seen, SeenAt: seen},
			t0.Add(-time.Hour), t0.Add(-8*time.Hour), limit)
	}
	if err := mk(1, t0, 10); err != nil {
		t.Fatal(err)
	}
	if err := mk(1, t0, 10); !errors.Is(err, ErrExists) {
		t.Fatalf("second session under one id: %v", err)
	}
	got, err := c.ConsoleSession(ctx, h(1))
	if err != nil || got.User != "cara" || !bytes.Equal(got.Sealed, []byte{1, 1}) || !got.SeenAt.Equal(t0) {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if _, err := c.ConsoleSession(ctx, h(9)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	// Activity moves seen_at forward only.
	if err := c.TouchConsoleSession(ctx, h(1), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.TouchConsoleSession(ctx, h(1), t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.ConsoleSession(ctx, h(1)); !got.SeenAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("seen_at = %v, want %v", got.SeenAt, t0.Add(time.Minute))
	}
	// Idle sessions go when a new one is made; at the limit the least
	// recently seen goes.
	if err := mk(2, t0.Add(-2*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	if err := mk(3, t0.Add(time.Second), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ConsoleSession(ctx, h(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("idle session kept: %v", err)
	}
	if err := mk(4, t0.Add(2*time.Second), 2); err != nil {
		t.Fatal(err)
	}
	if n, err := c.CountConsoleSessions(ctx); err != nil || n != 2 {
		t.Fatalf("count = %d %v, want 2", n, err)
	}
	if _, err := c.ConsoleSession(ctx, h(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("least recently seen session kept at the limit: %v", err)
	}
	for _, b := range []byte{1, 4} {
		if _, err := c.ConsoleSession(ctx, h(b)); err != nil {
			t.Fatalf("session %d: %v", b, err)
		}
	}
	if err := c.DeleteConsoleSession(ctx, h(1)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteConsoleSession(ctx, h(1)); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := c.ConsoleSession(ctx, h(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session still there: %v", err)
	}
}
