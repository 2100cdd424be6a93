package storage

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
)

// FindingKind classifies a bad piece found by Scrub.
type FindingKind string

const (
	FindingMissing     FindingKind = "missing"     // the target says the object does not exist
	FindingSize        FindingKind = "size"        // the object has the wrong length
	FindingHash        FindingKind = "hash"        // deep only: the bytes do not match the manifest's hash, or the target holds the object but refuses to deliver its bytes
	FindingUnreachable FindingKind = "unreachable" // the target did not answer, or is not configured
)

// Lost reports whether the kind means the piece's bytes are gone (as
// opposed to a target that may come back).
func (k FindingKind) Lost() bool { return k != FindingUnreachable }

// Finding is one bad piece.
type Finding struct {
	Segment int         `json:"segment"`
	Piece   int         `json:"piece"`
	Target  string      `json:"target"`
	Kind    FindingKind `json:"kind"`
	Detail  string      `json:"detail,omitempty"`
}

// ScrubOptions configures Scrub.
type ScrubOptions struct {
	// Deep reads every piece and checks its hash; otherwise (light) every
	// piece is only Stat-ed: it must exist with the right size, and no
	// piece body is read.
	Deep bool
	// Concurrency bounds parallel piece requests; 0 means K+M.
	Concurrency int
	// Limiter, if set, paces deep reads (shared by several Scrub calls to
	// bound a whole run). Light scrubs read no bodies and are not paced.
	Limiter *RateLimiter
	// Down, if set, is shared across Scrub and Repair calls: a target that
	// failed with an unreachable error is not asked again while marked, so
	// a stopped server costs one timeout, not one per piece.
	Down *DownTargets
	// OnPiece, if set, is called (from any goroutine) after each piece is
	// checked, with the bytes read (deep) or stat-ed (light).
	OnPiece func(bytes int64)
}

// ScrubReport is the outcome of scrubbing one stored stream.
type ScrubReport struct {
	Segments int       `json:"segments"`
	Pieces   int       `json:"pieces"`
	Bytes    int64     `json:"bytes"` // piece bytes read (deep) or whose size was checked (light)
	Findings []Finding `json:"findings,omitempty"`
}

// RateLimiter paces byte transfers to a rate; safe for concurrent use.
type RateLimiter struct {
	mu   sync.Mutex
	rate float64 // bytes per second
	next time.Time
}

// NewRateLimiter returns a limiter of bytesPerSec, or nil (no limit) when
// bytesPerSec <= 0.
func NewRateLimiter(bytesPerSec int64) *RateLimiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return &RateLimiter{rate: float64(bytesPerSec)}
}

// Wait blocks until n more bytes may be transferred. A nil limiter never
// waits. Each call reserves its slot at once, so concurrent callers queue
// fairly and the long-run rate holds whatever the piece sizes.
func (l *RateLimiter) Wait(ctx context.Context, n int64) error {
	if l == nil || n <= 0 {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	start := l.next
	if start.Before(now) {
		start = now
	}
	l.next = start.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	d := time.Until(start)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newPieceHash returns a streaming hash for alg (checked by checkHashAlg):
// deep scrubs hash a piece as it arrives instead of buffering it.
func newPieceHash(alg string) hash.Hash {
	if alg == HashSHA256 {
		return sha256.New()
	}
	return blake3.New()
}

// scrubCopyBuf is the read size of a deep scrub: large enough that BLAKE3
// gets whole SIMD batches per Write.
const scrubCopyBuf = 1 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, scrubCopyBuf); return &b }}

// Scrub checks every piece of the stream m describes. It returns the
// findings; an error only for an invalid manifest or a cancelled ctx. m must
// have been verified (Manifest.Verify) by the caller: a scrub against an
// unauthenticated manifest would prove nothing.
//
// Light mode (opts.Deep false) only Stat-s pieces and never GETs a body.
// Deep mode streams every piece through its hash and compares it with the
// manifest's.
func Scrub(ctx context.Context, m *Manifest, targets map[string]Target, opts ScrubOptions) (*ScrubReport, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = m.K + m.M
	}
	if opts.Down == nil {
		opts.Down = &DownTargets{}
	}
	rep := &ScrubReport{Segments: len(m.Segments)}
	var mu sync.Mutex
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range m.Segments {
		seg := &m.Segments[i]
		for j := range seg.Pieces {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			wg.Go(func() {
				defer func() { <-sem }()
				f, n := checkPiece(ctx, m, seg, j, targets, &opts)
				if opts.OnPiece != nil {
					opts.OnPiece(n)
				}
				mu.Lock()
				defer mu.Unlock()
				rep.Pieces++
				rep.Bytes += n
				if f != nil {
					rep.Findings = append(rep.Findings, *f)
				}
			})
		}
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sortFindings(rep.Findings)
	return rep, nil
}

func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Segment, b.Segment), cmp.Compare(a.Piece, b.Piece))
	})
}

// checkPiece checks one piece; it returns a finding (nil when good) and
// the bytes read or size-checked.
func checkPiece(ctx context.Context, m *Manifest, seg *SegmentMeta, j int, targets map[string]Target, opts *ScrubOptions) (*Finding, int64) {
	p := seg.Pieces[j]
	bad := func(kind FindingKind, format string, args ...any) *Finding {
		return &Finding{Segment: seg.Index, Piece: j, Target: p.Target, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	}
	t := targets[p.Target]
	if t == nil {
		return bad(FindingUnreachable, "target %s is not configured", p.Target), 0
	}
	if opts.Down.IsDown(p.Target) {
		return bad(FindingUnreachable, "target %s marked down after an earlier failure", p.Target), 0
	}
	key := PieceKey(m.DatasetID, m.FileID, seg.Index, j)
	if !opts.Deep {
		oi, err := t.Stat(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound):
			return bad(FindingMissing, "not found"), 0
		case err != nil:
			if ctx.Err() == nil {
				opts.Down.Mark(p.Target)
			}
			return bad(FindingUnreachable, "%v", err), 0
		case oi.Size != seg.PieceSize:
			return bad(FindingSize, "%d bytes, want %d", oi.Size, seg.PieceSize), seg.PieceSize
		}
		return nil, seg.PieceSize
	}
	if err := opts.Limiter.Wait(ctx, seg.PieceSize); err != nil {
		return bad(FindingUnreachable, "%v", err), 0
	}
	// Ask for one byte more than the piece: a longer object is then seen
	// as a size finding rather than passing on its first PieceSize bytes.
	failed := func(err error) *Finding {
		kind, detail := readFault(ctx, t, key, seg.PieceSize, err)
		if kind == FindingUnreachable && ctx.Err() == nil {
			opts.Down.Mark(p.Target)
		}
		return bad(kind, "%s", detail)
	}
	rc, err := t.Get(ctx, key, 0, seg.PieceSize+1)
	if err != nil {
		return failed(err), 0
	}
	defer rc.Close()
	h := newPieceHash(m.HashAlg)
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(h, io.LimitReader(rc, seg.PieceSize+1), *buf)
	copyBufs.Put(buf)
	switch {
	case err != nil:
		return failed(err), n
	case n != seg.PieceSize:
		if n > seg.PieceSize {
			return bad(FindingSize, "longer than %d bytes", seg.PieceSize), n
		}
		return bad(FindingSize, "%d bytes, want %d", n, seg.PieceSize), n
	}
	if hex.EncodeToString(h.Sum(nil)) != p.Hash {
		return bad(FindingHash, "hash mismatch"), n
	}
	return nil, n
}

// RepairOptions configures Repair.
type RepairOptions struct {
	// Down is shared with Scrub: marked targets receive no rebuilt piece
	// and are not read.
	Down *DownTargets
	// Limiter paces the reads of surviving pieces.
	Limiter *RateLimiter
}

// RepairedPiece is one piece rebuilt and stored.
type RepairedPiece struct {
	Segment int    `json:"segment"`
	Piece   int    `json:"piece"`
	From    string `json:"from"` // target in the old manifest
	To      string `json:"to"`   // target now holding it (From when rewritten in place)
}

// UnrecoverableSegment is a segment with more than M lost pieces: its
// data is gone and nothing was written for it.
type UnrecoverableSegment struct {
	Segment int   `json:"segment"`
	Pieces  []int `json:"pieces"` // the lost pieces
}

// DeferredPiece is a bad piece left alone for now, with the reason
// (no healthy target to take it, or too few reachable survivors while
// some targets are down).
type DeferredPiece struct {
	Segment int    `json:"segment"`
	Piece   int    `json:"piece"`
	Reason  string `json:"reason"`
}

// RepairResult is what Repair did.
type RepairResult struct {
	// Manifest is the new, unsigned manifest when any piece moved to
	// another target; nil when the old one still describes the stream. The
	// caller signs it and replaces the old one atomically.
	Manifest      *Manifest              `json:"-"`
	Repaired      []RepairedPiece        `json:"repaired,omitempty"`
	Unrecoverable []UnrecoverableSegment `json:"unrecoverable,omitempty"`
	Deferred      []DeferredPiece        `json:"deferred,omitempty"`
	// Found lists bad pieces Repair met while reading survivors that the
	// scrub had not reported (they went bad in between).
	Found []Finding `json:"found,omitempty"`
}

// Repair rebuilds the bad pieces named by findings (from Scrub of the same
// verified manifest m) from the surviving pieces of their segments.
//
// It never writes unverified bytes: survivors are checked against their
// hashes before use, and every rebuilt piece must hash to the manifest's
// value before it is stored. A piece goes back to its own target when that
// target is configured and not marked down; otherwise to a healthy target
// that holds no other piece of the segment and whose failure domain holds
// fewer than M of them, so the placement rule still holds. Keys do not name
// targets (PieceKey), so a moved piece keeps its key. A segment with more
// than M lost pieces is reported unrecoverable and nothing is written for
// it. A bad piece that cannot be repaired now (no suitable target, or
// survivors unreachable) is reported deferred.
//
// targets must hold every configured target (not only those in m), since
// pieces may move to any of them.
func Repair(ctx context.Context, m *Manifest, targets map[string]Target, findings []Finding, opts RepairOptions) (*RepairResult, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if opts.Down == nil {
		opts.Down = &DownTargets{}
	}
	bySeg := map[int]map[int]Finding{}
	for _, f := range findings {
		if f.Segment < 0 || f.Segment >= len(m.Segments) || f.Piece < 0 || f.Piece >= m.K+m.M {
			return nil, fmt.Errorf("storage: repair of %s: finding for segment %d piece %d outside the manifest", m.FileID, f.Segment, f.Piece)
		}
		if bySeg[f.Segment] == nil {
			bySeg[f.Segment] = map[int]Finding{}
		}
		bySeg[f.Segment][f.Piece] = f
	}
	enc, err := reedsolomon.New(m.K, m.M)
	if err != nil {
		return nil, fmt.Errorf("storage: reedsolomon %d+%d: %w", m.K, m.M, err)
	}
	res := &RepairResult{}
	var nm *Manifest
	segs := make([]int, 0, len(bySeg))
	for s := range bySeg {
		segs = append(segs, s)
	}
	slices.Sort(segs)
	for _, si := range segs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		moved, err := repairSegment(ctx, m, si, bySeg[si], targets, enc, &opts, res)
		if err != nil {
			return nil, err
		}
		if len(moved) > 0 {
			if nm == nil {
				c := *m
				c.MAC = ""
				c.Segments = slices.Clone(m.Segments)
				nm = &c
			}
			seg := &nm.Segments[si]
			seg.Pieces = slices.Clone(seg.Pieces)
			for j, to := range moved {
				seg.Pieces[j].Target = to
			}
		}
	}
	if nm != nil {
		if err := nm.Validate(); err != nil {
			return nil, fmt.Errorf("storage: repaired manifest of %s: %w", m.FileID, err)
		}
		res.Manifest = nm
	}
	sortFindings(res.Found)
	slices.SortFunc(res.Deferred, func(a, b DeferredPiece) int {
		return cmp.Or(cmp.Compare(a.Segment, b.Segment), cmp.Compare(a.Piece, b.Piece))
	})
	return res, nil
}

// repairSegment repairs one segment; it returns the pieces moved to other
// targets (piece -> new target).
func repairSegment(ctx context.Context, m *Manifest, si int, bad map[int]Finding, targets map[string]Target,
	enc reedsolomon.Encoder, opts *RepairOptions, res *RepairResult) (map[int]string, error) {
	seg := &m.Segments[si]
	n := m.K + m.M
	ps := int(seg.PieceSize)
	lost := func() []int {
		var out []int
		for j, f := range bad {
			if f.Kind.Lost() {
				out = append(out, j)
			}
		}
		slices.Sort(out)
		return out
	}
	if l := lost(); len(l) > m.M {
		res.Unrecoverable = append(res.Unrecoverable, UnrecoverableSegment{Segment: si, Pieces: l})
		return nil, nil
	}
	// Read survivors (verified) until K are at hand.
	shards := make([][]byte, n)
	good := 0
	for j := 0; j < n && good < m.K; j++ {
		if _, isBad := bad[j]; isBad {
			continue
		}
		buf := make([]byte, ps)
		f := readPiece(ctx, m, seg, j, targets, opts, buf)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f != nil {
			bad[j] = *f
			res.Found = append(res.Found, *f)
			continue
		}
		shards[j] = buf
		good++
	}
	if good < m.K {
		if l := lost(); len(l) > m.M {
			res.Unrecoverable = append(res.Unrecoverable, UnrecoverableSegment{Segment: si, Pieces: l})
			return nil, nil
		}
		for j, f := range bad {
			res.Deferred = append(res.Deferred, DeferredPiece{Segment: si, Piece: j,
				Reason: fmt.Sprintf("only %d of the %d pieces needed could be read (%s)", good, m.K, f.Kind)})
		}
		return nil, nil
	}
	if err := enc.Reconstruct(shards); err != nil {
		return nil, fmt.Errorf("storage: %s segment %d: reconstruction: %w", m.FileID, si, err)
	}
	// Current holders of the segment's pieces, updated as pieces move.
	holder := make([]string, n)
	for j, p := range seg.Pieces {
		holder[j] = p.Target
	}
	moved := map[int]string{}
	pieces := make([]int, 0, len(bad))
	for j := range bad {
		pieces = append(pieces, j)
	}
	slices.Sort(pieces)
	for _, j := range pieces {
		if hashHex(m.HashAlg, shards[j]) != seg.Pieces[j].Hash {
			// Only a hash collision or corrupt survivors that still hashed
			// right could get here; write nothing.
			res.Deferred = append(res.Deferred, DeferredPiece{Segment: si, Piece: j, Reason: "rebuilt piece does not match its hash"})
			continue
		}
		to := pickTarget(m, holder, j, targets, opts.Down)
		if to == "" {
			res.Deferred = append(res.Deferred, DeferredPiece{Segment: si, Piece: j,
				Reason: "no healthy target outside this segment's other pieces keeps the failure-domain rule"})
			continue
		}
		key := PieceKey(m.DatasetID, m.FileID, si, j)
		t := targets[to]
		if err := t.Put(ctx, key, bytes.NewReader(shards[j]), int64(ps)); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			opts.Down.Mark(to)
			res.Deferred = append(res.Deferred, DeferredPiece{Segment: si, Piece: j, Reason: fmt.Sprintf("storing on %s failed: %v", to, err)})
			continue
		}
		if oi, err := t.Stat(ctx, key); err != nil || oi.Size != int64(ps) {
			res.Deferred = append(res.Deferred, DeferredPiece{Segment: si, Piece: j, Reason: fmt.Sprintf("stored piece on %s did not check out: %v", to, err)})
			continue
		}
		res.Repaired = append(res.Repaired, RepairedPiece{Segment: si, Piece: j, From: seg.Pieces[j].Target, To: to})
		if to != seg.Pieces[j].Target {
			moved[j] = to
			holder[j] = to
		}
	}
	return moved, nil
}

// pickTarget chooses where piece j goes: its own target if usable, else
// the healthy target (by domain load, then id) that holds no other piece of
// the segment and keeps every domain at M pieces or fewer. "" if none.
func pickTarget(m *Manifest, holder []string, j int, targets map[string]Target, down *DownTargets) string {
	usable := func(id string) bool { return targets[id] != nil && !down.IsDown(id) }
	if own := holder[j]; usable(own) {
		return own
	}
	load := map[string]int{}
	taken := map[string]bool{}
	for i, id := range holder {
		if i == j {
			continue
		}
		taken[id] = true
		if t := targets[id]; t != nil {
			load[t.Domain()]++
		}
	}
	limit := m.M
	if limit == 0 {
		limit = m.K + m.M
	}
	var cands []Target
	for id, t := range targets {
		if !taken[id] && usable(id) && load[t.Domain()] < limit {
			cands = append(cands, t)
		}
	}
	if len(cands) == 0 {
		return ""
	}
	slices.SortFunc(cands, func(a, b Target) int {
		return cmp.Or(cmp.Compare(load[a.Domain()], load[b.Domain()]), cmp.Compare(a.ID(), b.ID()))
	})
	return cands[0].ID()
}

// readPiece reads piece j into buf and verifies it; nil on success.
func readPiece(ctx context.Context, m *Manifest, seg *SegmentMeta, j int, targets map[string]Target, opts *RepairOptions, buf []byte) *Finding {
	p := seg.Pieces[j]
	bad := func(kind FindingKind, format string, args ...any) *Finding {
		return &Finding{Segment: seg.Index, Piece: j, Target: p.Target, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	}
	t := targets[p.Target]
	if t == nil {
		return bad(FindingUnreachable, "target %s is not configured", p.Target)
	}
	if opts.Down.IsDown(p.Target) {
		return bad(FindingUnreachable, "target %s marked down after an earlier failure", p.Target)
	}
	if err := opts.Limiter.Wait(ctx, int64(len(buf))); err != nil {
		return bad(FindingUnreachable, "%v", err)
	}
	key := PieceKey(m.DatasetID, m.FileID, seg.Index, j)
	failed := func(err error) *Finding {
		kind, detail := readFault(ctx, t, key, seg.PieceSize, err)
		if kind == FindingUnreachable && ctx.Err() == nil {
			opts.Down.Mark(p.Target)
		}
		return bad(kind, "%s", detail)
	}
	rc, err := t.Get(ctx, key, 0, int64(len(buf))+1)
	if err != nil {
		return failed(err)
	}
	defer rc.Close()
	// A short body is either a short object or a read the target broke
	// off; readFault tells them apart.
	if _, err := io.ReadFull(rc, buf); err != nil {
		return failed(err)
	}
	if extra, _ := io.Copy(io.Discard, io.LimitReader(rc, 1)); extra > 0 {
		return bad(FindingSize, "longer than %d bytes", len(buf))
	}
	if hashHex(m.HashAlg, buf) != p.Hash {
		return bad(FindingHash, "hash mismatch")
	}
	return nil
}

// readFault classifies a failed read of a piece of size bytes under key:
// a GET that was refused, or a body that broke off or came up short.
//
// Only a target that does not answer is unreachable, which callers take as
// a fact about the whole target: the GET got no answer at all (noAnswer),
// or the target no longer answers a Stat of the same object. A target that
// did answer has said something about this one object: it is gone
// (missing), has the wrong length (size), or will not deliver its bytes,
// reported as a hash finding. The last is how a server with its own
// integrity check reports rot: MinIO ends a read whose bytes fail its
// bitrot check with an error (or cuts the body short) rather than return
// them. Such a piece is rebuilt in place, and its target stays in use for
// every other piece. A target without Stat (presigned URLs) gets the same
// verdicts except size.
func readFault(ctx context.Context, t Target, key string, size int64, err error) (FindingKind, string) {
	switch {
	case ctx.Err() != nil:
		return FindingUnreachable, ctx.Err().Error()
	case errors.Is(err, ErrNotFound):
		return FindingMissing, "not found"
	case noAnswer(err):
		return FindingUnreachable, err.Error()
	}
	oi, serr := t.Stat(ctx, key)
	switch {
	case errors.Is(serr, ErrNotFound):
		return FindingMissing, "not found"
	case serr != nil && (noAnswer(serr) || ctx.Err() != nil):
		return FindingUnreachable, err.Error()
	case serr == nil && oi.Size != size:
		return FindingSize, fmt.Sprintf("%d bytes, want %d", oi.Size, size)
	}
	return FindingHash, fmt.Sprintf("the target did not deliver the bytes: %v", err)
}

// noAnswer reports whether err says a request got no answer from the
// target (no connection, a reset or timed-out one), as opposed to an answer
// the target gave about the request or the object.
func noAnswer(err error) bool {
	var (
		opErr  *net.OpError
		dnsErr *net.DNSError
		urlErr *url.Error
	)
	return errors.Is(err, ErrUnreachable) || errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.As(err, &urlErr)
}
