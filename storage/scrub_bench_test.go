package storage

import (
	"context"
	"io"
	"sync"
	"testing"
)

// scrubBenchLayout: 4+2 with 16 MiB segments, 4 MiB pieces; a 64 MiB
// stream is 4 segments, 24 pieces, 96 MiB stored.
var scrubBenchLayout = Layout{K: 4, M: 2, SegmentSize: 16 << 20}

const scrubBenchStream = 64 << 20

func scrubBenchFixture(b *testing.B, targets []Target) (*Manifest, int64) {
	m := writeStream(b, targets, scrubBenchLayout, "f", randBytes(7, scrubBenchStream))
	var total int64
	for _, s := range m.Segments {
		total += s.PieceSize * int64(len(s.Pieces))
	}
	return m, total
}

// benchScrubDeep deep-scrubs every piece (GET + hash); throughput counts
// piece bytes, as benchPlainGet does, so the two compare directly.
func benchScrubDeep(b *testing.B, targets []Target) {
	m, total := scrubBenchFixture(b, targets)
	tm := targetMap(targets)
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		r, err := Scrub(context.Background(), m, tm, ScrubOptions{Deep: true})
		if err != nil || len(r.Findings) != 0 || r.Bytes != total {
			b.Fatalf("scrub: %v, %d findings, %d bytes", err, len(r.Findings), r.Bytes)
		}
	}
}

// benchPlainGet is the baseline: a GET of every piece, bytes discarded,
// with the same concurrency (K+M) and no hashing.
func benchPlainGet(b *testing.B, targets []Target) {
	m, total := scrubBenchFixture(b, targets)
	tm := targetMap(targets)
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		sem := make(chan struct{}, m.K+m.M)
		var wg sync.WaitGroup
		for _, s := range m.Segments {
			for j, p := range s.Pieces {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					rc, err := tm[p.Target].Get(context.Background(), PieceKey(m.DatasetID, m.FileID, s.Index, j), 0, s.PieceSize)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, rc)
					rc.Close()
				})
			}
		}
		wg.Wait()
	}
}

// BenchmarkScrubDeep vs BenchmarkScrubPlainGet: the cost of hashing every
// piece on top of reading it, on DirTargets (tmpfs) and, with
// DOZO_TEST_S3_*, on S3.
func BenchmarkScrubDeep(b *testing.B) {
	b.Run("Dir", func(b *testing.B) { benchScrubDeep(b, localStack(b, benchDir(b), 3, 2)) })
	b.Run("S3", func(b *testing.B) { benchScrubDeep(b, s3BenchTargets(b)) })
}

func BenchmarkScrubPlainGet(b *testing.B) {
	b.Run("Dir", func(b *testing.B) { benchPlainGet(b, localStack(b, benchDir(b), 3, 2)) })
	b.Run("S3", func(b *testing.B) { benchPlainGet(b, s3BenchTargets(b)) })
}

// BenchmarkScrubLight stats every piece: no body is read, so throughput
// (piece bytes covered per second) is far above any read.
func BenchmarkScrubLight(b *testing.B) {
	targets := localStack(b, benchDir(b), 3, 2)
	m, total := scrubBenchFixture(b, targets)
	tm := targetMap(targets)
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Scrub(context.Background(), m, tm, ScrubOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
