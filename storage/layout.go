package storage

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

const (
	// MaxShards bounds K+M. klauspost/reedsolomon's classic GF(2^8) codec,
	// which this package uses, supports at most 256 shards; above that
	// reedsolomon.New silently switches to the Leopard GF(2^16) codec, which
	// has different shard-size rules and is not what manifests describe.
	MaxShards = 256

	// MaxSegmentSize bounds Layout.SegmentSize. Readers and writers hold a
	// few segments in memory, so a hostile or mistaken manifest must not be
	// able to demand an arbitrary allocation.
	MaxSegmentSize = 1 << 30

	// DefaultSegmentSize is 64 MiB of stored bytes per segment: large enough
	// for efficient object PUTs (16 MiB pieces at 4+2), small enough that a
	// few segment buffers fit comfortably in memory.
	DefaultSegmentSize = 64 << 20
)

// Layout is the erasure-coding shape of a stored stream.
type Layout struct {
	K, M int // data and parity pieces per segment
	// SegmentSize is the number of stored bytes per full segment. It must
	// be a multiple of K so full segments split into equal pieces without
	// padding; only a short final segment is padded (inside the coding).
	SegmentSize int64
}

// DefaultLayout is 4+2 with 64 MiB segments: any two of six pieces may be
// lost, at 1.5× storage.
func DefaultLayout() Layout {
	return Layout{K: 4, M: 2, SegmentSize: DefaultSegmentSize}
}

// WithDefaults fills in a zero layout as DefaultLayout, and a zero
// SegmentSize as DefaultSegmentSize rounded down to a multiple of K.
func (l Layout) WithDefaults() Layout {
	if l == (Layout{}) {
		return DefaultLayout()
	}
	if l.SegmentSize == 0 && l.K > 0 {
		l.SegmentSize = DefaultSegmentSize - DefaultSegmentSize%int64(l.K)
	}
	return l
}

// Shards returns K+M.
func (l Layout) Shards() int { return l.K + l.M }

// PieceSize returns the piece size of a full segment.
func (l Layout) PieceSize() int64 { return l.SegmentSize / int64(l.K) }

// String formats the layout as "K+M/SegmentSize".
func (l Layout) String() string {
	return fmt.Sprintf("%d+%d/%d", l.K, l.M, l.SegmentSize)
}

// Validate checks 1 <= K, 0 <= M, K+M <= MaxShards,
// 0 < SegmentSize <= MaxSegmentSize and SegmentSize % K == 0.
func (l Layout) Validate() error {
	if l.K < 1 || l.M < 0 {
		return fmt.Errorf("storage: invalid layout %d+%d: need K >= 1 and M >= 0", l.K, l.M)
	}
	if l.K > MaxShards || l.M > MaxShards || l.K+l.M > MaxShards {
		return fmt.Errorf("storage: invalid layout %d+%d: K+M must be at most %d", l.K, l.M, MaxShards)
	}
	if l.SegmentSize <= 0 || l.SegmentSize > MaxSegmentSize {
		return fmt.Errorf("storage: invalid segment size %d: must be in 1..%d", l.SegmentSize, MaxSegmentSize)
	}
	if l.SegmentSize%int64(l.K) != 0 {
		return fmt.Errorf("storage: invalid segment size %d: must be a multiple of K=%d", l.SegmentSize, l.K)
	}
	return nil
}

// ParseRS parses "K+M", e.g. "4+2".
func ParseRS(s string) (k, m int, err error) {
	ks, ms, ok := strings.Cut(strings.TrimSpace(s), "+")
	if !ok {
		return 0, 0, fmt.Errorf("storage: bad erasure code %q: want K+M, e.g. 4+2", s)
	}
	k, err1 := strconv.Atoi(ks)
	m, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || k < 1 || m < 0 || k > MaxShards || m > MaxShards || k+m > MaxShards {
		return 0, 0, fmt.Errorf("storage: bad erasure code %q: want K+M with K >= 1, M >= 0, K+M <= %d", s, MaxShards)
	}
	return k, m, nil
}

// Place chooses the K+M targets that store the pieces of segment `segment`;
// element i of the result stores piece i.
//
// Targets are ordered by interleaving failure domains (domains sorted by
// name, round-robin, targets within a domain sorted by ID), the order is
// rotated by the segment index, and targets are taken in that order skipping
// any whose domain already holds M pieces of the segment. Hence:
//   - the result is K+M distinct targets;
//   - no domain holds more than M pieces, so losing any one whole domain
//     never loses a segment (with M == 0 there is no redundancy to protect,
//     and no per-domain limit is applied);
//   - the result depends only on the set of targets, not on their order in
//     the argument, and successive segments start on successive targets so
//     data pieces (read first) and parity pieces spread evenly.
//
// Because the limit is per domain, the greedy walk succeeds whenever any
// valid placement exists. Otherwise Place returns an error saying which
// limit made placement impossible. To skip targets that are down, pass a
// filtered list (see FilterTargets); the manifest records the placement that
// was actually used, so readers never recompute it.
func Place(targets []Target, layout Layout, segment int) ([]Target, error) {
	if err := layout.Validate(); err != nil {
		return nil, err
	}
	if segment < 0 {
		return nil, fmt.Errorf("storage: negative segment index %d", segment)
	}
	order, domains, err := interleave(targets)
	if err != nil {
		return nil, err
	}
	n := layout.Shards()
	limit := layout.M
	if limit == 0 {
		limit = n
	}
	capacity := 0
	for _, c := range domains {
		capacity += min(c, limit)
	}
	if capacity < n {
		return nil, fmt.Errorf("storage: cannot place %d+%d pieces: need %d distinct targets with at most %d per failure domain, "+
			"but %d targets in %d domains (%s) allow only %d", layout.K, layout.M, n, limit,
			len(order), len(domains), domainSummary(domains), capacity)
	}
	out := make([]Target, 0, n)
	used := make(map[string]int, len(domains))
	start := segment % len(order)
	for i := 0; i < len(order) && len(out) < n; i++ {
		t := order[(start+i)%len(order)]
		if used[t.Domain()] < limit {
			used[t.Domain()]++
			out = append(out, t)
		}
	}
	return out, nil
}

// interleave orders targets round-robin across domains and counts targets
// per domain. Duplicate IDs are an error: they would defeat "distinct".
func interleave(targets []Target) ([]Target, map[string]int, error) {
	if len(targets) == 0 {
		return nil, nil, fmt.Errorf("storage: no targets")
	}
	byDomain := make(map[string][]Target)
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		if t == nil {
			return nil, nil, fmt.Errorf("storage: nil target")
		}
		if seen[t.ID()] {
			return nil, nil, fmt.Errorf("storage: duplicate target id %q", t.ID())
		}
		seen[t.ID()] = true
		byDomain[t.Domain()] = append(byDomain[t.Domain()], t)
	}
	names := make([]string, 0, len(byDomain))
	counts := make(map[string]int, len(byDomain))
	for d, ts := range byDomain {
		names = append(names, d)
		counts[d] = len(ts)
		slices.SortFunc(ts, func(a, b Target) int { return cmp.Compare(a.ID(), b.ID()) })
	}
	slices.Sort(names)
	order := make([]Target, 0, len(targets))
	for round := 0; len(order) < len(targets); round++ {
		for _, d := range names {
			if ts := byDomain[d]; round < len(ts) {
				order = append(order, ts[round])
			}
		}
	}
	return order, counts, nil
}

func domainSummary(counts map[string]int) string {
	names := make([]string, 0, len(counts))
	for d := range counts {
		names = append(names, d)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, d := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", d, counts[d])
	}
	return b.String()
}
