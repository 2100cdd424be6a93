package storage

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// A Writer given a Placement stores each segment's pieces where it says,
// in piece order, and stops on a placement of the wrong size.
func TestWriterPlacementOption(t *testing.T) {
	var ts []Target
	for i := range 4 {
		dt, err := NewDirTarget(fmt.Sprintf("t%d", i), fmt.Sprintf("d%d", i), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, dt)
	}
	l := Layout{K: 2, M: 1, SegmentSize: 4 << 10}
	// Backwards from the last target: not where Place puts them.
	place := func(seg int) ([]Target, error) {
		n := len(ts)
		return []Target{ts[(n-1-seg%n+n)%n], ts[(n-2-seg%n+n)%n], ts[(n-3-seg%n+n)%n]}, nil
	}
	w, err := NewWriter(context.Background(), WriterOptions{DatasetID: "ds", FileID: "f", Layout: l, Targets: ts, Placement: place})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte{7}, 3*int(l.SegmentSize))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, seg := range w.Segments() {
		want, _ := place(seg.Index)
		for i, p := range seg.Pieces {
			if p.Target != want[i].ID() {
				t.Errorf("segment %d piece %d on %s, placed on %s", seg.Index, i, p.Target, want[i].ID())
			}
		}
	}

	short := func(int) ([]Target, error) { return ts[:2], nil }
	w, err = NewWriter(context.Background(), WriterOptions{DatasetID: "ds", FileID: "g", Layout: l, Targets: ts, Placement: short})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, l.SegmentSize))
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "placed on 2 targets, want 3") {
		t.Errorf("a placement of 2 targets for 3 pieces: %v", err)
	}
}
