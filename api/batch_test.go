package api

import "testing"

// TestFoldedCount: the segments a folded presign covers never exceed what
// the file has from first on nor one batch, and never go below zero.
func TestFoldedCount(t *testing.T) {
	for _, c := range []struct{ want, first, n, per, got int }{
		{16, 0, 1, 6, 1},                       // a small file: its one segment
		{16, 0, 100, 6, 16},                    // the ask
		{16, 0, 100, 20, MaxPresignBatch / 20}, // one batch of wide segments
		{16, 0, 100, MaxPresignBatch, 1},
		{16, 0, 100, MaxPresignBatch + 1, 0}, // not even one segment fits
		{16, 90, 100, 4, 10},
		{16, 100, 100, 4, 0},
		{16, 120, 100, 4, 0},
		{0, 0, 100, 4, 0},
		{-5, 0, 100, 4, 0},
		{16, 0, 100, 0, 16},
	} {
		if got := FoldedCount(c.want, c.first, c.n, c.per); got != c.got {
			t.Errorf("FoldedCount(%d, %d, %d, %d) = %d, want %d", c.want, c.first, c.n, c.per, got, c.got)
		}
	}
}
