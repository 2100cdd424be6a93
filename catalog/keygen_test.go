package catalog

import (
	"context"
	"testing"
)

// TestFinishRotationCountsKeyGeneration: finishing a rotation counts one
// more key generation for its dataset, once however often it is called,
// and no other dataset's.
func TestFinishRotationCountsKeyGeneration(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "DS1")
	mkDataset(t, c, "DS2")
	gen := func(id string) int64 {
		t.Helper()
		d, err := c.Dataset(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.KeyGeneration
	}
	if gen("DS1") != 0 {
		t.Fatalf("new dataset at key generation %d", gen("DS1"))
	}
	for round := int64(1); round <= 2; round++ {
		r, err := c.StartRotation(ctx, "DS1", int(round)+1, "sam", t0)
		if err != nil {
			t.Fatal(err)
		}
		if gen("DS1") != round-1 {
			t.Fatalf("generation %d moved when the rotation started", gen("DS1"))
		}
		for range 2 {
			if _, err := c.FinishRotation(ctx, r.ID, t0); err != nil {
				t.Fatal(err)
			}
		}
		if g := gen("DS1"); g != round {
			t.Fatalf("after rotation %d: key generation %d", round, g)
		}
	}
	if gen("DS2") != 0 {
		t.Fatal("another dataset's key generation moved")
	}
	ds, err := c.Datasets(ctx)
	if err != nil || len(ds) != 2 || ds[0].KeyGeneration != 2 {
		t.Fatalf("datasets list: %+v %v", ds, err)
	}
	// A row created with a generation (a rebuild's) starts there.
	if err := c.CreateDataset(ctx, Dataset{ID: "DS3", Title: "t", K: 4, M: 2, PlainSegmentSize: 1 << 20, SegmentSize: 1<<20 + 16*16,
		TransitKey: "dozo-ds-DS3", CreatedBy: "sam", CreatedAt: t0, KeyGeneration: 7}); err != nil {
		t.Fatal(err)
	}
	if g := gen("DS3"); g != 7 {
		t.Fatalf("dataset created at key generation 7 reads %d", g)
	}
}
