package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dozo-vault/dozo/filestore"
)

// heapSampler tracks how far the Go heap (object bytes, live or not yet
// swept) rises above its level at the start, so that data the caller
// already holds (a benchmark's input) does not count.
type heapSampler struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func sampleHeap() *heapSampler {
	runtime.GC()
	h := &heapSampler{stop: make(chan struct{})}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	h.base = s[0].Value.Uint64()
	h.peak.Store(h.base)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak.Load() - h.base
}

// TestMemoryBounded streams files of 4x and 16x the segment size through
// encryption, erasure coding and S3, and back, and checks the peak heap
// does not grow with the file size.
func TestMemoryBounded(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	d := newDataset(t, s)
	targets := s.targets(t)
	const seg = 16 * mib
	// A low GC target makes the heap track live data closely, so what is
	// measured is what the code holds, not when the collector ran.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	peaks := map[int64][2]uint64{}
	for _, size := range []int64{4 * seg, 16 * seg} {
		id := fmt.Sprintf("mem-%d", size)
		h := sampleHeap()
		writeFile(t, ctx, d, targets, id, randomReader(7, size), seg)
		wpeak := h.Stop()
		f := openFile(t, ctx, d, targets, id)
		h = sampleHeap()
		if _, err := f.WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
		rpeak := h.Stop()
		peaks[size] = [2]uint64{wpeak, rpeak}
		t.Logf("%4d MiB file, %d MiB segments: peak heap write %.1f MiB, read %.1f MiB",
			size/mib, seg/mib, float64(wpeak)/mib, float64(rpeak)/mib)
	}
	small, large := peaks[4*seg], peaks[16*seg]
	for i, what := range []string{"write", "read"} {
		// 4x the data may not cost more than a quarter more memory plus
		// one piece of slack; growth with size would be ~4x.
		if limit := small[i] + small[i]/4 + seg/4; large[i] > limit {
			t.Errorf("%s peak heap grew with file size: %d MiB for 4x, %d MiB for 16x the segment size",
				what, small[i]/mib, large[i]/mib)
		}
	}
}

// BenchmarkEndToEnd compares, in the same run on the same MinIO, a plain
// minio-go PutObject/GetObject of a file's bytes (the baseline: no
// encryption, no parity, one server) with dozo writing the same bytes
// (age encryption, 4+2 Reed-Solomon, six targets on three servers) and
// reading them back. The reported ratios are dozo/baseline throughput.
func BenchmarkEndToEnd(b *testing.B) {
	for _, size := range []int64{256 * mib, 1024 * mib} {
		b.Run(fmt.Sprintf("%dMiB", size/mib), func(b *testing.B) { benchEndToEnd(b, size) })
	}
}

func benchEndToEnd(b *testing.B, size int64) {
	s := needStack(b)
	ctx := context.Background()
	d := newDataset(b, s)
	targets := s.targets(b)
	// The input is a file (in the page cache after the first pass), as a
	// researcher's would be, not a buffer: a 1 GiB live buffer would skew
	// the heap figures through the GC's pacing.
	path := filepath.Join(b.TempDir(), "input")
	writeRandomFile(b, path, 9, size, nil)
	open := func() *os.File {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	mc, err := minio.New(s.endpoints[0], &minio.Options{Creds: credentials.NewStaticV4(s.accessKey, s.secretKey, "")})
	if err != nil {
		b.Fatal(err)
	}
	bucket := s.buckets[0]
	var basePut, baseGet, dozoPut, dozoGet time.Duration
	var wPeak, rPeak uint64
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("bench/baseline-%d", i)
		t0 := time.Now()
		in := open()
		if _, err := mc.PutObject(ctx, bucket, key, in, size,
			minio.PutObjectOptions{PartSize: 64 * mib}); err != nil {
			b.Fatal(err)
		}
		in.Close()
		t1 := time.Now()
		obj, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, obj); err != nil || n != size {
			b.Fatalf("baseline get: %d %v", n, err)
		}
		obj.Close()
		t2 := time.Now()

		id := fmt.Sprintf("bench-%d", i)
		h := sampleHeap()
		t3 := time.Now()
		in = open()
		writeFile(b, ctx, d, targets, id, in, filestore.DefaultPlainSegmentSize)
		in.Close()
		t4 := time.Now()
		wPeak = max(wPeak, h.Stop())
		f := openFile(b, ctx, d, targets, id)
		h = sampleHeap()
		t5 := time.Now()
		if n, err := f.WriteTo(io.Discard); err != nil || n != size {
			b.Fatalf("dozo read: %d %v", n, err)
		}
		t6 := time.Now()
		rPeak = max(rPeak, h.Stop())
		basePut += t1.Sub(t0)
		baseGet += t2.Sub(t1)
		dozoPut += t4.Sub(t3)
		dozoGet += t6.Sub(t5)
		_ = mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / mib / d.Seconds() }
	b.ReportMetric(mbps(basePut), "baseline-put-MiB/s")
	b.ReportMetric(mbps(dozoPut), "dozo-write-MiB/s")
	b.ReportMetric(basePut.Seconds()/dozoPut.Seconds(), "write-ratio")
	b.ReportMetric(mbps(baseGet), "baseline-get-MiB/s")
	b.ReportMetric(mbps(dozoGet), "dozo-read-MiB/s")
	b.ReportMetric(baseGet.Seconds()/dozoGet.Seconds(), "read-ratio")
	b.ReportMetric(float64(wPeak)/mib, "write-peak-heap-MiB")
	b.ReportMetric(float64(rPeak)/mib, "read-peak-heap-MiB")
}
