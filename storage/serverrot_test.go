package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
)

// rotCheckingTarget behaves like an S3 server with its own integrity check
// (MinIO's bitrot check) holding rotten objects: Stat answers as usual,
// but a read of a rotten object either is refused outright (MinIO's
// answer for small objects kept inline in xl.meta: 503 SlowDownRead) or
// breaks off in the middle of the body (larger objects, whose headers are
// already sent). A Put of the key replaces the rotten object. With noStat
// it has no Stat, as a target of presigned URLs (the CLI's fetch) has not.
type rotCheckingTarget struct {
	Target
	noStat bool
	mu     sync.Mutex
	rotten map[string]bool // key -> refused at once (true) or cut short (false)
}

func (r *rotCheckingTarget) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if r.noStat {
		return ObjectInfo{}, fmt.Errorf("stat on %s: not supported", r.ID())
	}
	return r.Target.Stat(ctx, key)
}

func (r *rotCheckingTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	r.mu.Lock()
	refuse, rotten := r.rotten[key]
	r.mu.Unlock()
	if !rotten {
		return r.Target.Get(ctx, key, off, length)
	}
	if refuse {
		return nil, fmt.Errorf("get %s on %s: Resource requested is unreadable, please reduce your request rate", key, r.ID())
	}
	rc, err := r.Target.Get(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	return &brokenBody{rc: rc, left: 1000}, nil
}

func (r *rotCheckingTarget) Put(ctx context.Context, key string, rd io.Reader, size int64) error {
	err := r.Target.Put(ctx, key, rd, size)
	if err == nil {
		r.mu.Lock()
		delete(r.rotten, key)
		r.mu.Unlock()
	}
	return err
}

// brokenBody delivers left bytes, then fails as net/http does when a
// server closes the connection before the promised Content-Length.
type brokenBody struct {
	rc   io.ReadCloser
	left int
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	p = p[:min(len(p), b.left)]
	n, err := b.rc.Read(p)
	b.left -= n
	return n, err
}

func (b *brokenBody) Close() error { return b.rc.Close() }

// unansweringTarget fails every request the way S3Target does when the
// server is gone.
type unansweringTarget struct{ Target }

func (u unansweringTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	return nil, fmt.Errorf("get %s on %s: %w: dial tcp: connection refused", key, u.ID(), ErrUnreachable)
}

func (u unansweringTarget) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	return ObjectInfo{}, fmt.Errorf("stat %s on %s: %w: dial tcp: connection refused", key, u.ID(), ErrUnreachable)
}

// TestScrubServerDetectedRot: pieces whose reads the server itself refuses
// or breaks off (its own integrity check failed) are corrupt pieces, found
// one by one and rebuilt in place; their target is not taken for down, so
// its other pieces are checked and read as usual.
func TestScrubServerDetectedRot(t *testing.T) {
	ctx := context.Background()
	targets, _, ms, data := scrubFixture(t, 3)
	m := ms["fa"]
	// Two rotten pieces on the same target, in different segments.
	victim := m.Segments[1].Pieces[0].Target
	rot := &rotCheckingTarget{Target: targetMap(targets)[victim], rotten: map[string]bool{}}
	var want []string
	for i := range m.Segments {
		for j, p := range m.Segments[i].Pieces {
			if p.Target == victim && len(want) < 2 {
				rot.rotten[PieceKey(m.DatasetID, m.FileID, i, j)] = len(want) == 0
				want = append(want, fmt.Sprintf("%d/%d/%s/hash", i, j, victim))
			}
		}
	}
	if len(want) != 2 {
		t.Fatalf("target %s holds %d pieces of the stream", victim, len(want))
	}
	wrapped := make([]Target, len(targets))
	for i, tg := range targets {
		wrapped[i] = tg
		if tg.ID() == victim {
			wrapped[i] = rot
		}
	}

	// A fetch reads around the rotten pieces and keeps using the target,
	// even without Stat to ask it about them.
	rot.noStat = true
	r, err := NewReader(ctx, m, ReaderOptions{Targets: wrapped, Concurrency: 1, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := r.WriteTo(&got); err != nil || !bytes.Equal(got.Bytes(), data["fa"]) {
		t.Fatalf("read with rotten pieces: %v (identical: %v)", err, bytes.Equal(got.Bytes(), data["fa"]))
	}
	if r.down.IsDown(victim) {
		t.Fatalf("reader took %s for down after object-level read errors", victim)
	}
	if st := r.Stats(); st.PiecesBad != 2 {
		t.Fatalf("reader saw %d bad pieces, want 2", st.PiecesBad)
	}

	rot.noStat = false
	down := &DownTargets{}
	rep, err := Scrub(ctx, m, targetMap(wrapped), ScrubOptions{Deep: true, Concurrency: 1, Down: down})
	if err != nil {
		t.Fatal(err)
	}
	if got := findingSet(rep.Findings); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deep scrub found %v, want %v", got, want)
	}
	if down.IsDown(victim) {
		t.Fatalf("scrub marked %s down after object-level read errors", victim)
	}
	res, err := Repair(ctx, m, targetMap(wrapped), rep.Findings, RepairOptions{Down: down})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest != nil || len(res.Repaired) != 2 || len(res.Deferred) != 0 {
		t.Fatalf("repair: %+v", res)
	}
	for _, p := range res.Repaired {
		if p.To != victim || p.From != victim {
			t.Fatalf("piece %d/%d rebuilt from %s to %s, want in place", p.Segment, p.Piece, p.From, p.To)
		}
	}
	again, err := Scrub(ctx, m, targetMap(wrapped), ScrubOptions{Deep: true})
	if err != nil || len(again.Findings) != 0 {
		t.Fatalf("after repair: %v %v", findingSet(again.Findings), err)
	}
}

// TestScrubUnansweringTargetIsUnreachable: a target that does not answer
// is unreachable (not lost), is marked down after its first failure, and
// is not asked again during the run.
func TestScrubUnansweringTargetIsUnreachable(t *testing.T) {
	ctx := context.Background()
	targets, _, ms, _ := scrubFixture(t, 3)
	m := ms["fa"]
	victim := m.Segments[0].Pieces[0].Target
	wrapped := make([]Target, len(targets))
	for i, tg := range targets {
		wrapped[i] = tg
		if tg.ID() == victim {
			wrapped[i] = unansweringTarget{tg}
		}
	}
	down := &DownTargets{}
	rep, err := Scrub(ctx, m, targetMap(wrapped), ScrubOptions{Deep: true, Concurrency: 1, Down: down})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) == 0 {
		t.Fatal("no findings")
	}
	for _, f := range rep.Findings {
		if f.Target != victim || f.Kind != FindingUnreachable {
			t.Fatalf("finding %+v", f)
		}
	}
	if !down.IsDown(victim) {
		t.Fatalf("%s not marked down", victim)
	}
}
