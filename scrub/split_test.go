package scrub

import (
	"encoding/binary"
	"testing"
)

// checkSplit fails unless ranges put every one of files files in exactly
// one range, in order, with min(n, files) non-empty ranges (one range for
// n <= 1 or no files).
func checkSplit(t *testing.T, ranges []Range, files, n int) {
	t.Helper()
	want := min(max(n, 1), files)
	if files == 0 {
		want = 1
	}
	if len(ranges) != want {
		t.Fatalf("%d files, %d shards: %d ranges %v, want %d", files, n, len(ranges), ranges, want)
	}
	seen := make([]int, files)
	next := 0
	for _, r := range ranges {
		if r.From != next || (r.To <= r.From && files > 0) {
			t.Fatalf("%d files, %d shards: ranges %v are not contiguous and non-empty", files, n, ranges)
		}
		for i := r.From; i < r.To; i++ {
			seen[i]++
		}
		next = r.To
	}
	if next != files {
		t.Fatalf("%d files, %d shards: ranges %v end at %d", files, n, ranges, next)
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("file %d is in %d ranges: %v", i, k, ranges)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		costs []int64
		n     int
		want  []Range
	}{
		{nil, 4, []Range{{0, 0}}},
		{[]int64{5}, 4, []Range{{0, 1}}},
		{[]int64{5, 5, 5, 5}, 1, []Range{{0, 4}}},
		{[]int64{5, 5, 5, 5}, 0, []Range{{0, 4}}},
		{[]int64{5, 5, 5, 5}, 2, []Range{{0, 2}, {2, 4}}},
		{[]int64{9, 9, 9}, 8, []Range{{0, 1}, {1, 2}, {2, 3}}},
		// One large file first: it is a shard of its own.
		{[]int64{100, 1, 1, 1, 1}, 2, []Range{{0, 1}, {1, 5}}},
		// ... and last.
		{[]int64{1, 1, 1, 1, 100}, 2, []Range{{0, 4}, {4, 5}}},
		// Zero costs split by count.
		{[]int64{0, 0, 0, 0, 0, 0}, 3, []Range{{0, 2}, {2, 4}, {4, 6}}},
	} {
		got := Split(c.costs, c.n)
		checkSplit(t, got, len(c.costs), c.n)
		if len(got) != len(c.want) {
			t.Errorf("Split(%v, %d) = %v, want %v", c.costs, c.n, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("Split(%v, %d) = %v, want %v", c.costs, c.n, got, c.want)
				break
			}
		}
	}
}

// TestSplitBalances: equal files split into shards whose sizes differ by
// at most one file.
func TestSplitBalances(t *testing.T) {
	for files := 1; files < 60; files++ {
		for n := 1; n < 12; n++ {
			costs := make([]int64, files)
			for i := range costs {
				costs[i] = 1 << 20
			}
			rs := Split(costs, n)
			checkSplit(t, rs, files, n)
			lo, hi := files, 0
			for _, r := range rs {
				lo, hi = min(lo, r.To-r.From), max(hi, r.To-r.From)
			}
			if hi-lo > 1 {
				t.Fatalf("%d equal files, %d shards: %v", files, n, rs)
			}
		}
	}
}

// FuzzSplit: for any file costs and shard count, every file is in
// exactly one shard.
func FuzzSplit(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 3)
	f.Add([]byte{}, 0)
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 127}, 2)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		n %= 300
		var costs []int64
		for len(b) >= 2 {
			// Sizes from 0 to far beyond any store, negative ones too
			// (treated as 0).
			v := int64(binary.LittleEndian.Uint16(b)) << (b[0] % 48)
			if b[1]&0x80 != 0 {
				v = -v
			}
			costs = append(costs, v)
			b = b[2:]
		}
		checkSplit(t, Split(costs, n), len(costs), n)
	})
}
