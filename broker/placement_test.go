package broker

import (
	"fmt"
	"slices"
	"testing"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
)

// The placement an upload announces is where Place, which the presign and
// commit checks use, puts every segment's pieces, for segments beyond the
// first period of rows too.
func TestPlacementRowsArePlace(t *testing.T) {
	refs := func(domains ...string) []catalog.TargetRef {
		var out []catalog.TargetRef
		for i, d := range domains {
			out = append(out, catalog.TargetRef{ID: fmt.Sprintf("t%d-%s", i, d), Domain: d})
		}
		return out
	}
	for _, c := range []struct {
		refs []catalog.TargetRef
		l    storage.Layout
	}{
		{refs("a", "a", "b", "b", "c", "c"), storage.Layout{K: 4, M: 2, SegmentSize: 1 << 20}},
		{refs("a", "b", "c", "a", "b", "c", "d"), storage.Layout{K: 3, M: 2, SegmentSize: 3 << 20}},
		{refs("a", "a", "a"), storage.Layout{K: 2, M: 0, SegmentSize: 1 << 20}},
		{refs("a", "b", "b", "b", "c"), storage.Layout{K: 2, M: 1, SegmentSize: 1 << 20}},
	} {
		rows, err := placement(c.refs, c.l)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(c.refs) {
			t.Fatalf("%d rows for %d targets", len(rows), len(c.refs))
		}
		ts := make([]storage.Target, len(c.refs))
		for i, r := range c.refs {
			ts[i] = placedRef{id: r.ID, domain: r.Domain}
		}
		for seg := range 3*len(rows) + 1 {
			placed, err := storage.Place(ts, c.l, seg)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range placed {
				ids = append(ids, p.ID())
			}
			if got := rows[seg%len(rows)]; !slices.Equal(got, ids) {
				t.Errorf("%v %d+%d segment %d: row %v, Place %v", c.refs, c.l.K, c.l.M, seg, got, ids)
			}
		}
	}
	// Targets that cannot hold a segment give no placement.
	if _, err := placement(refs("a", "a"), storage.Layout{K: 2, M: 1, SegmentSize: 1 << 20}); err == nil {
		t.Error("placement of 3 pieces on 2 targets")
	}
}
