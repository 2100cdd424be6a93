package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestAggregateDetail(t *testing.T) {
	first := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	last := first.Add(59 * time.Second)
	d := AggregateDetail(57, first, last)
	n, f, l, ok := ParseAggregate(d)
	if !ok || n != 57 || !f.Equal(first) || !l.Equal(last) {
		t.Fatalf("ParseAggregate(%q) = %d %v %v %v", d, n, f, l, ok)
	}
	for _, bad := range []string{"", "GET /v1/x", "aggregate: count=x first=a last=b", "aggregate: count=1 first=" + first.Format(time.RFC3339)} {
		if _, _, _, ok := ParseAggregate(bad); ok {
			t.Errorf("ParseAggregate(%q) accepted", bad)
		}
	}
}

// TestAnchorInput: the MAC input changes with every field, and a stored
// anchor's check names the anchor and why.
func TestAnchorInput(t *testing.T) {
	h := strings.Repeat("ab", HashSize)
	t0 := time.Unix(1700000000, 5)
	base := AnchorInput(7, h, t0)
	for name, other := range map[string][]byte{
		"seq":  AnchorInput(8, h, t0),
		"hash": AnchorInput(7, strings.Repeat("cd", HashSize), t0),
		"time": AnchorInput(7, h, t0.Add(1)),
	} {
		if bytes.Equal(base, other) {
			t.Errorf("changing the %s leaves the anchor input unchanged", name)
		}
	}
	ok := Result{OK: true, Records: 5, Head: h}
	a := StoredAnchor{Seq: 7, Hash: h, Time: t0}
	if r := CheckStoredAnchor(ok, a, nil); r.OK || r.Kind != Truncated || r.BadSeq != 7 || !strings.Contains(r.Reason, "ends at 5 records") {
		t.Errorf("anchor beyond the log: %+v", r)
	}
	if r := CheckStoredAnchor(ok, a, &Record{Seq: 7, Hash: strings.Repeat("cd", HashSize)}); r.OK || r.Kind != Rewritten {
		t.Errorf("anchor with another hash: %+v", r)
	}
	if r := CheckStoredAnchor(ok, a, &Record{Seq: 7, Hash: h}); !r.OK {
		t.Errorf("matching anchor: %+v", r)
	}
}
