package scrub

// Range is a shard's part of a run: the run's files From..To-1 in run
// order (catalog.ScrubFile.Seq).
type Range struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// Split cuts a run's files, in run order, into min(n, len(costs))
// contiguous non-empty ranges of about equal cost (one range, maybe
// empty, for n <= 1 or no files). Every file is in exactly one range.
//
// A file's cost is costs[i] (its bytes for a deep run, its pieces for a
// light one) plus one, for the work every file takes whatever its size:
// reading its record and verifying its manifest. Ranges rather than
// datasets: one large dataset splits as well as many small ones, and a
// range is two numbers a shard's job carries, with no new catalog record.
func Split(costs []int64, n int) []Range {
	if n > len(costs) {
		n = len(costs)
	}
	if n <= 1 {
		return []Range{{0, len(costs)}}
	}
	prefix := make([]float64, len(costs)+1)
	for i, c := range costs {
		prefix[i+1] = prefix[i] + float64(max(c, 0)) + 1
	}
	total := prefix[len(costs)]
	out := make([]Range, 0, n)
	from := 0
	for i := 0; i < n-1; i++ {
		target := total * float64(i+1) / float64(n)
		// At least one file, and one left for each shard after this.
		to, last := from+1, len(costs)-(n-1-i)
		for to < last && prefix[to] < target {
			to++
		}
		// The cut nearer the target of the two around it.
		if to > from+1 && target-prefix[to-1] < prefix[to]-target {
			to--
		}
		out = append(out, Range{from, to})
		from = to
	}
	return append(out, Range{from, len(costs)})
}
