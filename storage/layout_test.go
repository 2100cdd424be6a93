package storage

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// idTarget is a Target that only has an identity; Place needs no more.
type idTarget struct{ id, domain string }

func (t idTarget) ID() string     { return t.id }
func (t idTarget) Domain() string { return t.domain }
func (idTarget) Put(context.Context, string, io.Reader, int64) error {
	panic("not used")
}
func (idTarget) Get(context.Context, string, int64, int64) (io.ReadCloser, error) {
	panic("not used")
}
func (idTarget) Stat(context.Context, string) (ObjectInfo, error) { panic("not used") }
func (idTarget) Delete(context.Context, string) error             { panic("not used") }
func (idTarget) List(context.Context, string, func(ObjectInfo) error) error {
	panic("not used")
}

func ids(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID()
	}
	return out
}

func TestParseRS(t *testing.T) {
	for s, want := range map[string][2]int{"4+2": {4, 2}, "1+0": {1, 0}, " 10+4 ": {10, 4}, "200+56": {200, 56}} {
		k, m, err := ParseRS(s)
		if err != nil || k != want[0] || m != want[1] {
			t.Errorf("ParseRS(%q) = %d, %d, %v", s, k, m, err)
		}
	}
	for _, s := range []string{"", "4", "4+", "+2", "0+2", "4+-1", "200+57", "a+b", "4+2+1", "9223372036854775807+9223372036854775807"} {
		if _, _, err := ParseRS(s); err == nil {
			t.Errorf("ParseRS(%q) accepted", s)
		}
	}
}

func TestLayoutValidate(t *testing.T) {
	if err := DefaultLayout().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Layout{{0, 2, 64}, {4, -1, 64}, {200, 57, 200 * 57}, {4, 2, 0}, {4, 2, 6}, {4, 2, MaxSegmentSize + 4}} {
		if l.Validate() == nil {
			t.Errorf("%v accepted", l)
		}
	}
	if got := (Layout{}).WithDefaults(); got != DefaultLayout() {
		t.Errorf("zero layout defaults to %v", got)
	}
	if got := (Layout{K: 3, M: 1}).WithDefaults(); got.Validate() != nil || got.SegmentSize > DefaultSegmentSize {
		t.Errorf("3+1 defaults to %v", got)
	}
	if err := (Layout{K: 200, M: 56, SegmentSize: 200}).Validate(); err != nil {
		t.Errorf("256 shards rejected: %v", err)
	}
}

func TestPlaceLocalStack(t *testing.T) {
	var ts []Target
	for s := 1; s <= 3; s++ {
		for _, b := range "ab" {
			ts = append(ts, idTarget{fmt.Sprintf("s%d-%c", s, b), fmt.Sprintf("s%d", s)})
		}
	}
	l := DefaultLayout()
	want := [][]string{
		{"s1-a", "s2-a", "s3-a", "s1-b", "s2-b", "s3-b"},
		{"s2-a", "s3-a", "s1-b", "s2-b", "s3-b", "s1-a"},
		{"s3-a", "s1-b", "s2-b", "s3-b", "s1-a", "s2-a"},
	}
	for seg := range 12 {
		got, err := Place(ts, l, seg)
		if err != nil {
			t.Fatal(err)
		}
		if seg < len(want) && !slices.Equal(ids(got), want[seg]) {
			t.Errorf("segment %d: %v, want %v", seg, ids(got), want[seg])
		}
		per := map[string]int{}
		for _, x := range got {
			per[x.Domain()]++
		}
		for d, c := range per {
			if c != 2 {
				t.Errorf("segment %d: domain %s holds %d pieces", seg, d, c)
			}
		}
	}
	// One server down: 4 targets in 2 domains cannot hold 4+2 with <= 2 per domain.
	_, err := Place(FilterTargets(ts, func(id string) bool { return !strings.HasPrefix(id, "s3") }), l, 0)
	if err == nil || !strings.Contains(err.Error(), "at most 2 per failure domain") {
		t.Errorf("impossible placement: %v", err)
	}
	// Duplicate ids are refused.
	if _, err := Place(append(ts, ts[0]), l, 0); err == nil {
		t.Error("duplicate target accepted")
	}
}

// TestPlaceProperties checks Place on random configurations against its
// contract: distinct targets, at most M per domain, independence from input
// order, rotation across segments, and an error exactly when impossible.
func TestPlaceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 3000 {
		ndom := 1 + rng.IntN(6)
		var ts []Target
		counts := map[string]int{}
		for d := range ndom {
			for j := range rng.IntN(5) {
				dom := fmt.Sprintf("d%d", d)
				ts = append(ts, idTarget{fmt.Sprintf("t%d-%d", d, j), dom})
				counts[dom]++
			}
		}
		k := 1 + rng.IntN(6)
		m := rng.IntN(4)
		l := Layout{K: k, M: m, SegmentSize: int64(k) * 64}
		limit := m
		if m == 0 {
			limit = k + m
		}
		capacity := 0
		for _, c := range counts {
			capacity += min(c, limit)
		}
		possible := capacity >= k+m
		shuffled := slices.Clone(ts)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		firsts := map[string]bool{}
		for seg := range len(ts) + 1 {
			got, err := Place(ts, l, seg)
			if !possible {
				if err == nil {
					t.Fatalf("iter %d: %d+%d on %v: placement succeeded but is impossible", iter, k, m, counts)
				}
				break
			}
			if err != nil {
				t.Fatalf("iter %d: %d+%d on %v: %v", iter, k, m, counts, err)
			}
			if len(got) != k+m {
				t.Fatalf("iter %d: got %d targets", iter, len(got))
			}
			seen := map[string]bool{}
			per := map[string]int{}
			for _, x := range got {
				if seen[x.ID()] {
					t.Fatalf("iter %d: target %s used twice", iter, x.ID())
				}
				seen[x.ID()] = true
				per[x.Domain()]++
				if per[x.Domain()] > limit {
					t.Fatalf("iter %d: domain %s holds %d > %d pieces", iter, x.Domain(), per[x.Domain()], limit)
				}
			}
			again, _ := Place(shuffled, l, seg)
			if !slices.Equal(ids(got), ids(again)) {
				t.Fatalf("iter %d: placement depends on input order", iter)
			}
			firsts[got[0].ID()] = true
		}
		// Rotation: over len(ts) segments, piece 0 visits every target
		// when nothing is ever skipped (all domains within the limit).
		if possible && len(ts) > 1 {
			all := true
			for _, c := range counts {
				all = all && c <= limit
			}
			if all && len(firsts) != len(ts) {
				t.Fatalf("iter %d: piece 0 used only %d of %d targets", iter, len(firsts), len(ts))
			}
			if len(firsts) < 2 {
				t.Fatalf("iter %d: no rotation", iter)
			}
		}
	}
}
