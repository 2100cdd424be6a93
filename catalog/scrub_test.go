package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/storage"
)

func TestScrubRunsAndRepairSwap(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D1")
	if err := mkUpload(t, c, "D1", "u1", "a.bam", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitSegment(ctx, "u1", seg(0), t0, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteUpload(ctx, "u1", strings.Repeat("0", 64), strings.Repeat("0", 32), []byte("m1"), t0); err != nil {
		t.Fatal(err)
	}
	// 26 stored bytes in one short segment of a 4+2 dataset: 6 pieces of 7.
	cands, err := c.ScrubCandidates(ctx, "D1", "")
	if err != nil || len(cands) != 1 || cands[0].Pieces != 6 || cands[0].Bytes != 42 {
		t.Fatalf("candidates %+v %v", cands, err)
	}
	if cs, _ := c.ScrubCandidates(ctx, "D1", "nope"); len(cs) != 0 {
		t.Fatalf("a missing name matched %+v", cs)
	}

	run := ScrubRun{ID: "r1", Trigger: ScrubManual, StartedBy: "admin", DatasetID: "D1", Deep: true, StartedAt: t0}
	if err := c.CreateScrubRun(ctx, run, cands); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateScrubRun(ctx, ScrubRun{ID: "r2", Trigger: ScrubScheduled, StartedBy: "dozod", StartedAt: t0}, nil); !errors.Is(err, ErrState) {
		t.Fatalf("second running run: %v", err)
	}
	if r, err := c.RunningScrub(ctx); err != nil || r.ID != "r1" || !r.Deep || r.DatasetID != "D1" {
		t.Fatalf("running %+v %v", r, err)
	}
	if err := c.FinishScrubFile(ctx, "r1", 0, []byte(`{}`), t0); err != nil {
		t.Fatal(err)
	}
	if err := c.EndScrubRun(ctx, "r1", ScrubDone, "", t0.Add(1)); err != nil {
		t.Fatal(err)
	}
	if err := c.EndScrubRun(ctx, "r1", ScrubFailed, "x", t0); !errors.Is(err, ErrState) {
		t.Fatalf("ending an ended run: %v", err)
	}
	if err := c.FinishScrubFile(ctx, "r1", 0, []byte(`{}`), t0); !errors.Is(err, ErrState) {
		t.Fatalf("progress on an ended run: %v", err)
	}
	if last, err := c.LastScrubStart(ctx, ScrubManual, true); err != nil || !last.Equal(t0) {
		t.Fatalf("last deep manual start %v %v", last, err)
	}
	if last, _ := c.LastScrubStart(ctx, ScrubScheduled, false); !last.IsZero() {
		t.Fatalf("no scheduled run yet, got %v", last)
	}

	// Compare-and-swap: the old manifest must still be there.
	moved := seg(0)
	moved.Pieces[0].Target = "s2-a"
	if err := c.ReplaceManifest(ctx, "f-u1", []byte("stale"), []byte("m2"), []storage.SegmentMeta{moved}); !errors.Is(err, ErrState) {
		t.Fatalf("swap against a stale manifest: %v", err)
	}
	if err := c.ReplaceManifest(ctx, "f-u1", []byte("m1"), []byte("m2"), []storage.SegmentMeta{moved}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.File(ctx, "f-u1")
	s, _ := c.Segment(ctx, "f-u1", 0)
	if string(f.Manifest) != "m2" || s.Pieces[0].Target != "s2-a" {
		t.Fatalf("after swap: manifest %q, segment %+v", f.Manifest, s)
	}
	if err := c.MarkFileDamaged(ctx, "f-u1"); err != nil {
		t.Fatal(err)
	}
	if f, _ := c.File(ctx, "f-u1"); f.State != FileDamaged {
		t.Fatalf("state %s", f.State)
	}
	// A damaged file is not swapped into, nor scrubbed again.
	if err := c.ReplaceManifest(ctx, "f-u1", []byte("m2"), []byte("m3"), nil); !errors.Is(err, ErrState) {
		t.Fatalf("swap on a damaged file: %v", err)
	}
	if cs, _ := c.ScrubCandidates(ctx, "", ""); len(cs) != 0 {
		t.Fatalf("damaged file still a candidate: %+v", cs)
	}
}
