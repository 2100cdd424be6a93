package storage

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// localStack returns DirTargets shaped like the local MinIO stack: servers
// × buckets targets named "s<i>-<letter>", domain "s<i>".
func localStack(tb testing.TB, base string, servers, buckets int) []Target {
	tb.Helper()
	var ts []Target
	for s := 1; s <= servers; s++ {
		for b := 0; b < buckets; b++ {
			id := fmt.Sprintf("s%d-%c", s, 'a'+b)
			dir := filepath.Join(base, id)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				tb.Fatal(err)
			}
			d, err := NewDirTarget(id, fmt.Sprintf("s%d", s), dir)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { d.Close() })
			ts = append(ts, d)
		}
	}
	return ts
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(seedBytes(seed)).Read(b)
	return b
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

// writeStream stores data with a fresh Writer and returns the manifest.
func writeStream(tb testing.TB, targets []Target, l Layout, file string, data []byte) *Manifest {
	tb.Helper()
	ctx := context.Background()
	w, err := NewWriter(ctx, WriterOptions{DatasetID: "ds1", FileID: file, Layout: l, Targets: targets})
	if err != nil {
		tb.Fatal(err)
	}
	// Odd-sized writes exercise segment boundaries inside one Write.
	for p := data; len(p) > 0; {
		n := min(len(p), 1+len(p)%7777)
		if _, err := w.Write(p[:n]); err != nil {
			tb.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	m, err := NewManifest("ds1", file, l, w.HashAlg(), w.Segments())
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func readAll(tb testing.TB, m *Manifest, targets []Target) ([]byte, *Reader) {
	tb.Helper()
	r, err := NewReader(context.Background(), m, ReaderOptions{Targets: targets})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := r.WriteTo(&buf)
	if err != nil {
		tb.Fatalf("WriteTo: %v", err)
	}
	if n != m.Size || int64(buf.Len()) != m.Size {
		tb.Fatalf("WriteTo returned %d bytes (%d buffered), want %d", n, buf.Len(), m.Size)
	}
	return buf.Bytes(), r
}

// pieceFile returns the path of piece j of segment i of m on its DirTarget.
func pieceFile(tb testing.TB, m *Manifest, targets []Target, i, j int) string {
	tb.Helper()
	id := m.Segments[i].Pieces[j].Target
	for _, t := range targets {
		if t.ID() == id {
			return filepath.Join(t.(*DirTarget).Dir(), filepath.FromSlash(PieceKey(m.DatasetID, m.FileID, i, j)))
		}
	}
	tb.Fatalf("no target %s", id)
	return ""
}
