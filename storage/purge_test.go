package storage

import (
	"bytes"
	"context"
	"testing"
)

func TestPurgeDirTarget(t *testing.T) {
	ctx := context.Background()
	d, err := NewDirTarget("t1", "d1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{PieceKey("DS1", "f1", 0, 0), PieceKey("DS1", "f1", 0, 1), HeaderKey("DS1", "f1"), ManifestKey("DS1", "f2")}
	other := PieceKey("DS10", "f9", 0, 0) // shares the text prefix "DS1" but not the dataset prefix
	for _, k := range append(keys, other) {
		if err := d.Put(ctx, k, bytes.NewReader([]byte("x")), 1); err != nil {
			t.Fatal(err)
		}
	}
	var got []PurgedObject
	if err := Purge(ctx, d, DatasetPrefix("DS1"), func(o PurgedObject) error { got = append(got, o); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) {
		t.Fatalf("purged %d objects, want %d: %+v", len(got), len(keys), got)
	}
	n := 0
	d.List(ctx, "", func(oi ObjectInfo) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d objects left, want only the other dataset's", n)
	}
	if _, err := d.Stat(ctx, other); err != nil {
		t.Fatalf("purge touched another dataset: %v", err)
	}
	if err := Purge(ctx, d, "", func(PurgedObject) error { return nil }); err == nil {
		t.Fatal("an empty prefix was purged")
	}
}
