package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"io"
	"os"
	"testing"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
)

const benchSegment = DefaultSegmentSize

// BenchmarkEncodeSegment measures RS 4+2 parity computation for one 64 MiB
// segment (throughput counts the segment's data bytes).
func BenchmarkEncodeSegment(b *testing.B) {
	l := DefaultLayout()
	ps := int(l.PieceSize())
	enc, err := reedsolomon.New(l.K, l.M, reedsolomon.WithAutoGoroutines(ps))
	if err != nil {
		b.Fatal(err)
	}
	data := randBytes(1, benchSegment)
	parity := make([]byte, l.M*ps)
	shards := make([][]byte, l.Shards())
	for i := range l.K {
		shards[i] = data[i*ps : (i+1)*ps]
	}
	for i := range l.M {
		shards[l.K+i] = parity[i*ps : (i+1)*ps]
	}
	b.SetBytes(benchSegment)
	for b.Loop() {
		if err := enc.Encode(shards); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReconstructSegment measures rebuilding two lost data pieces of a
// 64 MiB segment (the worst 4+2 degraded read).
func BenchmarkReconstructSegment(b *testing.B) {
	l := DefaultLayout()
	ps := int(l.PieceSize())
	enc, _ := reedsolomon.New(l.K, l.M)
	shards := make([][]byte, l.Shards())
	for i := range shards {
		shards[i] = make([]byte, ps)
	}
	copy(shards[0], randBytes(2, ps))
	enc.Encode(shards)
	work := make([][]byte, len(shards))
	b.SetBytes(benchSegment)
	for b.Loop() {
		copy(work, shards)
		work[0], work[1] = shards[0][:0], shards[1][:0]
		if err := enc.ReconstructData(work); err != nil {
			b.Fatal(err)
		}
	}
}

func benchHash(b *testing.B, f func([]byte)) {
	piece := randBytes(3, benchSegment/4)
	b.SetBytes(int64(len(piece)))
	for b.Loop() {
		f(piece)
	}
}

// BenchmarkHashSHA256 and BenchmarkHashBLAKE3 hash one 16 MiB piece; they
// decide DefaultHashAlg.
func BenchmarkHashSHA256(b *testing.B) { benchHash(b, func(p []byte) { sha256.Sum256(p) }) }
func BenchmarkHashBLAKE3(b *testing.B) { benchHash(b, func(p []byte) { blake3.Sum256(p) }) }

// BenchmarkHashMD5 is the cost of the optional whole-file MD5 of a fetch
// (dozo fetch --md5), against the SHA-256 it always computes.
func BenchmarkHashMD5(b *testing.B) { benchHash(b, func(p []byte) { md5.Sum(p) }) }

// benchDir returns a directory on tmpfs when available, so the Dir
// benchmarks measure this package rather than the disk.
func benchDir(b *testing.B) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "dozo-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}

const benchStream = 4 * benchSegment

// BenchmarkWriterDir stores a 256 MiB stream 4+2 on six DirTargets.
func BenchmarkWriterDir(b *testing.B) {
	benchWriter(b, localStack(b, benchDir(b), 3, 2))
}

// benchWriter stores a benchStream-byte stream 4+2 on targets, b.N times.
func benchWriter(b *testing.B, targets []Target) {
	data := randBytes(4, benchStream)
	b.SetBytes(benchStream)
	for b.Loop() {
		w, err := NewWriter(context.Background(), WriterOptions{DatasetID: "d", FileID: "f", Layout: DefaultLayout(), Targets: targets})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRead(b *testing.B, degrade bool) {
	targets := localStack(b, benchDir(b), 3, 2)
	data := randBytes(5, benchStream)
	m := writeStream(b, targets, DefaultLayout(), "f", data)
	if degrade {
		for i := range m.Segments {
			os.Remove(pieceFile(b, m, targets, i, 0))
		}
	}
	b.SetBytes(benchStream)
	b.ResetTimer()
	for b.Loop() {
		r, err := NewReader(context.Background(), m, ReaderOptions{Targets: targets})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderDir streams the stream back; Degraded with one data piece
// of every segment missing.
func BenchmarkReaderDir(b *testing.B)         { benchRead(b, false) }
func BenchmarkReaderDirDegraded(b *testing.B) { benchRead(b, true) }
