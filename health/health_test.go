package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

type event struct{ action, object, result, detail string }

// recorder is an EventFunc's sink; probes call it from their goroutines.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) record(_ context.Context, action, object, result, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{action, object, result, detail})
}

// sixTargets is three servers of two targets each, in plain directories.
func sixTargets(t *testing.T) []storage.Target {
	var out []storage.Target
	for _, srv := range []string{"s1", "s2", "s3"} {
		for _, b := range []string{"a", "b"} {
			d, err := storage.NewDirTarget(srv+"-"+b, srv, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

func TestTargetsTransitions(t *testing.T) {
	down := map[string]bool{}
	var rec recorder
	var logs bytes.Buffer
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := NewTargets(TargetsConfig{
		Targets: sixTargets(t),
		Probe: func(ctx context.Context, tg storage.Target) error {
			if down[tg.ID()] {
				return errors.New("dial tcp: connection refused\nsecond line")
			}
			return StatProbe(ctx, tg) // a dir target answers "not found"
		},
		Event: rec.record, Now: func() time.Time { return now },
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	h.ProbeAll(context.Background())
	if len(rec.events) != 0 || !h.Up("s1-a") || h.Up("nonesuch") {
		t.Fatalf("all up: events %v, s1-a up %v", rec.events, h.Up("s1-a"))
	}
	now = now.Add(time.Minute)
	down["s2-a"] = true
	h.ProbeAll(context.Background())
	h.ProbeAll(context.Background())
	if h.Up("s2-a") || len(rec.events) != 1 || rec.events[0].action != "target.down" || rec.events[0].object != "target/s2-a" {
		t.Fatalf("one down: events %v", rec.events)
	}
	st := h.Status()
	if len(st) != 6 || st[2].ID != "s2-a" || st[2].Up || st[2].Failures != 2 || !st[2].Since.Equal(now) ||
		strings.Contains(st[2].LastError, "\n") || !st[3].Up {
		t.Fatalf("status %+v", st)
	}
	// Request-path failures: "not found" and a cancelled caller say nothing.
	h.NoteError(context.Background(), "s1-a", storage.ErrNotFound)
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.NoteError(cctx, "s1-a", errors.New("refused"))
	if !h.Up("s1-a") {
		t.Fatal("not found or a cancelled caller marked a target down")
	}
	h.NoteError(context.Background(), "s1-a", errors.New("refused"))
	if h.Up("s1-a") {
		t.Fatal("a request-path failure did not mark the target down")
	}
	down["s2-a"] = false
	h.ProbeAll(context.Background())
	if !h.Up("s2-a") || !h.Up("s1-a") || rec.events[len(rec.events)-1].action != "target.up" {
		t.Fatalf("after recovery: events %v", rec.events)
	}
	if !strings.Contains(logs.String(), "storage target down") {
		t.Fatalf("no log line:\n%s", logs.String())
	}
}

func TestPlacement(t *testing.T) {
	down := map[string]bool{}
	var probes atomic.Int64
	h := NewTargets(TargetsConfig{Targets: sixTargets(t), Probe: func(_ context.Context, tg storage.Target) error {
		probes.Add(1)
		if down[tg.ID()] {
			return errors.New("connection refused")
		}
		return nil
	}})
	l42 := storage.Layout{K: 4, M: 2, SegmentSize: 1 << 20}
	if ts, err := h.Placement(context.Background(), l42); err != nil || len(ts) != 6 {
		t.Fatalf("all up: %d targets, %v", len(ts), err)
	}
	down["s2-a"], down["s2-b"] = true, true
	h.ProbeAll(context.Background())
	probes.Store(0)
	_, err := h.Placement(context.Background(), l42)
	var pe *PlacementError
	if !errors.As(err, &pe) || pe.Up != 4 || pe.Capacity != 4 || fmt.Sprint(pe.Down) != "[s2-a s2-b]" {
		t.Fatalf("s2 down, 4+2: %v", err)
	}
	if probes.Load() != 2 {
		t.Fatalf("the refusal re-probed %d targets, want the 2 down", probes.Load())
	}
	for _, want := range []string{"only 4 of 6 storage targets are up", "down: s2-a, s2-b", "a 4+2 upload needs 6 targets", "allow only 4", "try again later"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	ts, err := h.Placement(context.Background(), storage.Layout{K: 2, M: 2, SegmentSize: 1 << 20})
	if err != nil || len(ts) != 4 {
		t.Fatalf("2+2 with s2 down: %d targets, %v", len(ts), err)
	}
	for _, tg := range ts {
		if tg.Domain() == "s2" {
			t.Fatalf("placed on down target %s", tg.ID())
		}
	}
	// Back up since the last probe: the re-probe before refusing sees it.
	down["s2-a"], down["s2-b"] = false, false
	if ts, err := h.Placement(context.Background(), l42); err != nil || len(ts) != 6 {
		t.Fatalf("after a re-probe: %d targets, %v", len(ts), err)
	}
}

func TestDeps(t *testing.T) {
	var vaultErr error
	var rec recorder
	d := NewDeps(DepsConfig{Interval: time.Second, Vault: func(context.Context) error { return vaultErr },
		Catalog: func(context.Context) error { return nil }, Event: rec.record})
	if v, c := d.State(); v.State != Unknown || c.State != Unknown {
		t.Fatalf("before a check: %s %s", v.State, c.State)
	}
	d.Check(context.Background())
	if v, c := d.State(); v.State != Up || c.State != Up || d.VaultDown() != nil {
		t.Fatalf("after a check: %s %s", v.State, c.State)
	}
	vaultErr = errors.New("connection refused")
	d.Check(context.Background())
	if v, _ := d.State(); v.State != Up || d.VaultDown() != nil {
		t.Fatal("one failed check took Vault down")
	}
	d.Check(context.Background())
	if err := d.VaultDown(); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("two failed checks: %v", err)
	}
	vaultErr = nil
	d.Check(context.Background())
	if d.VaultDown() != nil || len(rec.events) != 2 || rec.events[0].action != "vault.down" || rec.events[1].action != "vault.up" {
		t.Fatalf("events %v", rec.events)
	}
	// Without a Vault check, Vault stays unknown.
	n := NewDeps(DepsConfig{Catalog: func(context.Context) error { return nil }})
	n.Check(context.Background())
	if v, _ := n.State(); v.State != Unknown {
		t.Fatalf("no Vault check: %s", v.State)
	}
}
