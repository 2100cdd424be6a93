package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"
)

// countingTarget counts the requests a scrub makes, to prove a light scrub
// reads no piece body.
type countingTarget struct {
	Target
	gets, stats atomic.Int64
}

func (c *countingTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Target.Get(ctx, key, off, length)
}

func (c *countingTarget) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	c.stats.Add(1)
	return c.Target.Stat(ctx, key)
}

func targetMap(ts []Target) map[string]Target {
	out := make(map[string]Target, len(ts))
	for _, t := range ts {
		out[t.ID()] = t
	}
	return out
}

func findingSet(fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%d/%d/%s/%s", f.Segment, f.Piece, f.Target, f.Kind))
	}
	sort.Strings(out)
	return out
}

type damage struct{ seg, piece int }

// scrubFixture stores two streams of several segments on a 3-domain,
// 6-target layout and returns them.
func scrubFixture(t *testing.T, servers int) ([]Target, Layout, map[string]*Manifest, map[string][]byte) {
	t.Helper()
	targets := localStack(t, t.TempDir(), servers, 2)
	l := Layout{K: 4, M: 2, SegmentSize: 64 << 10}
	ms, data := map[string]*Manifest{}, map[string][]byte{}
	for i, name := range []string{"fa", "fb"} {
		d := randBytes(uint64(i+1), 5*(64<<10)+777*(i+1)) // 6 segments, last short
		ms[name] = writeStream(t, targets, l, name, d)
		data[name] = d
	}
	return targets, l, ms, data
}

func TestScrubFindsExactlyTheDamage(t *testing.T) {
	ctx := context.Background()
	targets, _, ms, data := scrubFixture(t, 3)
	m := ms["fa"]
	var want, wantLight []string
	add := func(d damage, kind FindingKind, light bool) {
		s := fmt.Sprintf("%d/%d/%s/%s", d.seg, d.piece, m.Segments[d.seg].Pieces[d.piece].Target, kind)
		want = append(want, s)
		if light {
			wantLight = append(wantLight, s)
		}
	}
	// ≤ M=2 bad pieces per segment, of every kind.
	for _, d := range []damage{{0, 0}, {2, 5}, {5, 1}} {
		os.Remove(pieceFile(t, m, targets, d.seg, d.piece))
		add(d, FindingMissing, true)
	}
	for _, d := range []damage{{0, 3}, {1, 1}, {3, 4}, {5, 0}} {
		path := pieceFile(t, m, targets, d.seg, d.piece)
		b, _ := os.ReadFile(path)
		b[len(b)/3] ^= 0x01
		os.WriteFile(path, b, 0o644)
		add(d, FindingHash, false)
	}
	{
		d := damage{4, 2}
		path := pieceFile(t, m, targets, d.seg, d.piece)
		b, _ := os.ReadFile(path)
		os.WriteFile(path, b[:len(b)-1], 0o644)
		add(d, FindingSize, true)
	}
	sort.Strings(want)
	sort.Strings(wantLight)

	counted := make([]Target, len(targets))
	var cts []*countingTarget
	for i, tg := range targets {
		ct := &countingTarget{Target: tg}
		cts = append(cts, ct)
		counted[i] = ct
	}
	light, err := Scrub(ctx, m, targetMap(counted), ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := findingSet(light.Findings); !slices.Equal(got, wantLight) {
		t.Fatalf("light scrub found %v, want %v", got, wantLight)
	}
	var gets, stats int64
	for _, ct := range cts {
		gets += ct.gets.Load()
		stats += ct.stats.Load()
	}
	if gets != 0 || stats != int64(6*6) {
		t.Fatalf("light scrub made %d GETs and %d Stats, want 0 and %d", gets, stats, 6*6)
	}
	if light.Pieces != 36 || light.Segments != 6 {
		t.Fatalf("light report %+v", light)
	}

	var seen atomic.Int64
	deep, err := Scrub(ctx, m, targetMap(targets), ScrubOptions{Deep: true, Concurrency: 3, OnPiece: func(n int64) { seen.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := findingSet(deep.Findings); !slices.Equal(got, want) {
		t.Fatalf("deep scrub found\n%v\nwant\n%v", got, want)
	}
	if deep.Pieces != 36 || seen.Load() != deep.Bytes || deep.Bytes <= 0 {
		t.Fatalf("deep report %+v, progress %d", deep, seen.Load())
	}
	// The other file is untouched and scrubs clean.
	if r, _ := Scrub(ctx, ms["fb"], targetMap(targets), ScrubOptions{Deep: true}); len(r.Findings) != 0 {
		t.Fatalf("clean file has findings %v", r.Findings)
	}

	res, err := Repair(ctx, m, targetMap(targets), deep.Findings, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Repaired) != len(want) || res.Manifest != nil || len(res.Unrecoverable)+len(res.Deferred)+len(res.Found) != 0 {
		t.Fatalf("repair: %+v (manifest changed: %v)", res, res.Manifest != nil)
	}
	for _, r := range res.Repaired {
		if r.From != r.To {
			t.Fatalf("piece moved although its target is healthy: %+v", r)
		}
	}
	again, err := Scrub(ctx, m, targetMap(targets), ScrubOptions{Deep: true})
	if err != nil || len(again.Findings) != 0 {
		t.Fatalf("after repair: %v %v", err, again.Findings)
	}
	if got, _ := readAll(t, m, targets); !bytes.Equal(got, data["fa"]) {
		t.Fatal("repaired stream differs")
	}
}

func TestRepairMovesPiecesOffALostTarget(t *testing.T) {
	ctx := context.Background()
	// Four domains of two targets: every segment leaves two targets free.
	targets, _, ms, data := scrubFixture(t, 4)
	m := ms["fb"]
	gone := "s2-a"
	live := map[string]Target{}
	for _, tg := range targets {
		if tg.ID() != gone {
			live[tg.ID()] = tg
		}
	}
	rep, err := Scrub(ctx, m, live, ScrubOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	onGone := 0
	for _, s := range m.Segments {
		for _, p := range s.Pieces {
			if p.Target == gone {
				onGone++
			}
		}
	}
	if onGone == 0 || len(rep.Findings) != onGone {
		t.Fatalf("%d findings, want %d (pieces on %s)", len(rep.Findings), onGone, gone)
	}
	for _, f := range rep.Findings {
		if f.Kind != FindingUnreachable || f.Target != gone {
			t.Fatalf("finding %+v", f)
		}
	}
	res, err := Repair(ctx, m, live, rep.Findings, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest == nil || len(res.Repaired) != onGone || len(res.Deferred) != 0 {
		t.Fatalf("repair %+v", res)
	}
	nm := res.Manifest
	if nm.MAC != "" {
		t.Fatal("repaired manifest keeps the old MAC")
	}
	domain := map[string]string{}
	for _, tg := range targets {
		domain[tg.ID()] = tg.Domain()
	}
	for i, s := range nm.Segments {
		perDomain := map[string]int{}
		for j, p := range s.Pieces {
			if p.Target == gone {
				t.Fatalf("segment %d piece %d still on %s", i, j, gone)
			}
			if p.Hash != m.Segments[i].Pieces[j].Hash {
				t.Fatal("repair changed a piece hash")
			}
			perDomain[domain[p.Target]]++
		}
		for d, n := range perDomain {
			if n > nm.M {
				t.Fatalf("segment %d: domain %s holds %d pieces", i, d, n)
			}
		}
	}
	// The old manifest is unchanged; the new one reads with the lost target
	// absent, without parity.
	if m.Segments[0].Pieces[0].Target == "" || nm == m {
		t.Fatal("old manifest modified")
	}
	var liveList []Target
	for _, tg := range targets {
		if tg.ID() != gone {
			liveList = append(liveList, tg)
		}
	}
	got, r := readAll(t, nm, liveList)
	if !bytes.Equal(got, data["fb"]) || r.Stats().PiecesBad != 0 {
		t.Fatalf("read after move: equal=%v stats=%+v", bytes.Equal(got, data["fb"]), r.Stats())
	}
	if again, _ := Scrub(ctx, nm, live, ScrubOptions{Deep: true}); len(again.Findings) != 0 {
		t.Fatalf("after move: %v", again.Findings)
	}
}

func TestRepairDefersWithoutASuitableTarget(t *testing.T) {
	ctx := context.Background()
	// 6 targets, 4+2: every segment uses every target; nowhere to move to.
	targets, _, ms, _ := scrubFixture(t, 3)
	m := ms["fa"]
	live := targetMap(targets)
	delete(live, "s1-b")
	rep, _ := Scrub(ctx, m, live, ScrubOptions{})
	res, err := Repair(ctx, m, live, rep.Findings, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deferred) != len(m.Segments) || len(res.Repaired) != 0 || res.Manifest != nil || len(res.Unrecoverable) != 0 {
		t.Fatalf("repair %+v", res)
	}
}

func TestRepairRefusesUnrecoverableAndUnverifiable(t *testing.T) {
	ctx := context.Background()
	targets, _, ms, _ := scrubFixture(t, 3)
	m := ms["fa"]
	// Segment 1: three pieces lost (> M). Segment 3: one lost, but the
	// manifest's hash for it is wrong, so the rebuilt bytes cannot verify.
	for _, j := range []int{0, 2, 5} {
		os.Remove(pieceFile(t, m, targets, 1, j))
	}
	os.Remove(pieceFile(t, m, targets, 3, 4))
	before := listAll(t, targets)
	rep, err := Scrub(ctx, m, targetMap(targets), ScrubOptions{Deep: true})
	if err != nil || len(rep.Findings) != 4 {
		t.Fatalf("%v %v", err, rep.Findings)
	}
	bent := *m
	bent.Segments = slices.Clone(m.Segments)
	bent.Segments[3].Pieces = slices.Clone(m.Segments[3].Pieces)
	bent.Segments[3].Pieces[4].Hash = "00" + bent.Segments[3].Pieces[4].Hash[2:]
	res, err := Repair(ctx, &bent, targetMap(targets), rep.Findings, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unrecoverable) != 1 || res.Unrecoverable[0].Segment != 1 || fmt.Sprint(res.Unrecoverable[0].Pieces) != "[0 2 5]" {
		t.Fatalf("unrecoverable %+v", res.Unrecoverable)
	}
	if len(res.Deferred) != 1 || res.Deferred[0].Segment != 3 || len(res.Repaired) != 0 {
		t.Fatalf("deferred %+v repaired %+v", res.Deferred, res.Repaired)
	}
	if after := listAll(t, targets); !slices.Equal(before, after) {
		t.Fatalf("repair wrote although nothing could be repaired:\n%v\n%v", before, after)
	}
}

func listAll(t *testing.T, targets []Target) []string {
	t.Helper()
	var out []string
	for _, tg := range targets {
		tg.List(context.Background(), "", func(oi ObjectInfo) error {
			out = append(out, tg.ID()+"/"+oi.Key+fmt.Sprint(oi.Size))
			return nil
		})
	}
	sort.Strings(out)
	return out
}

func TestScrubCancelled(t *testing.T) {
	targets, _, ms, _ := scrubFixture(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scrub(ctx, ms["fa"], targetMap(targets), ScrubOptions{Deep: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestRepairRejectsForeignFindings(t *testing.T) {
	targets, _, ms, _ := scrubFixture(t, 3)
	_, err := Repair(context.Background(), ms["fa"], targetMap(targets), []Finding{{Segment: 99, Piece: 0}}, RepairOptions{})
	if err == nil {
		t.Fatal("repair accepted a finding outside the manifest")
	}
}

func TestRateLimiterReserves(t *testing.T) {
	l := NewRateLimiter(1 << 30) // fast enough not to sleep noticeably
	start := time.Now()
	for range 4 {
		if err := l.Wait(context.Background(), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	// Four MiB at 1 GiB/s reserve 4/1024 s beyond the first call.
	if got := l.next.Sub(start); got < 3900*time.Microsecond {
		t.Fatalf("reserved only %v for 4 MiB at 1 GiB/s", got)
	}
	if NewRateLimiter(0) != nil {
		t.Fatal("rate 0 should mean no limiter")
	}
	var nilL *RateLimiter
	if err := nilL.Wait(context.Background(), 1<<40); err != nil {
		t.Fatal(err)
	}
	slow := NewRateLimiter(1)
	slow.Wait(context.Background(), 1<<20) // reserves ~12 days ahead
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := slow.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

// rangeRefusingTarget refuses a ranged GET of an empty object, as S3 does
// (416 InvalidRange).
type rangeRefusingTarget struct{ Target }

func (r rangeRefusingTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if oi, err := r.Stat(ctx, key); err == nil && oi.Size == 0 && length > 0 {
		return nil, errors.New("InvalidRange: The requested range is not satisfiable")
	}
	return r.Target.Get(ctx, key, off, length)
}

func TestScrubEmptyPieceIsShortNotUnreachable(t *testing.T) {
	ctx := context.Background()
	targets, _, ms, data := scrubFixture(t, 3)
	m := ms["fa"]
	os.WriteFile(pieceFile(t, m, targets, 0, 2), nil, 0o644)
	wrapped := make([]Target, len(targets))
	for i, tg := range targets {
		wrapped[i] = rangeRefusingTarget{tg}
	}
	rep, err := Scrub(ctx, m, targetMap(wrapped), ScrubOptions{Deep: true, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0/2/%s/size", m.Segments[0].Pieces[2].Target)
	if got := findingSet(rep.Findings); len(got) != 1 || got[0] != want {
		t.Fatalf("found %v, want only %s (the target must not be marked down)", got, want)
	}
	res, err := Repair(ctx, m, targetMap(wrapped), rep.Findings, RepairOptions{})
	if err != nil || len(res.Repaired) != 1 {
		t.Fatalf("repair %+v %v", res, err)
	}
	if got, _ := readAll(t, m, targets); !bytes.Equal(got, data["fa"]) {
		t.Fatal("differs after repair")
	}
}
