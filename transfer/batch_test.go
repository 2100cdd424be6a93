package transfer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestPresignBatching: an upload and a fetch of a 6-segment file presign
// through a handful of batch calls, not one call per piece; against a
// dozod without the upload batch endpoint the upload falls back to single
// presigns and still round-trips (a fetch always batches: its batches
// carry the manifest entries).
func TestPresignBatching(t *testing.T) {
	for _, old := range []bool{false, true} {
		e := newEnv(t)
		e.fk.noBatch = old
		path, data := writeRandom(t, 5*fakePlainSeg+12345)
		if _, err := e.upload(t, path); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		if _, err := e.fetch(t, FetchOptions{Output: out}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
			t.Fatal("fetched file differs")
		}
		single, batches := e.fk.presigns.Load(), e.fk.batches.Load()
		if old {
			// One batch attempt, then 36 PUTs singly; the fetch in one batch.
			if single != 6*6 {
				t.Errorf("older dozod: %d single presigns, want 36", single)
			}
			continue
		}
		// 6 segments fit the first batch each way, which comes with the
		// begin and with the fetch: no batch call of its own.
		if single != 0 || batches != 0 {
			t.Errorf("%d single presigns and %d batches, want 0 and 0", single, batches)
		}
	}
}

// TestPresignBatchingPastFirstWindow: a file longer than the window that
// comes with the begin and the fetch presigns the rest in one batch each
// way, and a segment of the first window is not presigned again.
func TestPresignBatchingPastFirstWindow(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, (batchSegments+3)*fakePlainSeg)
	if _, err := e.upload(t, path); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := e.fetch(t, FetchOptions{Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("fetched file differs")
	}
	if single, batches, puts := e.fk.presigns.Load(), e.fk.batches.Load(), e.fk.puts.Load(); single != 0 || batches != 2 || puts != int64(6*(batchSegments+3)) {
		t.Errorf("%d single presigns, %d batches and %d PUTs, want 0, 2 and %d", single, batches, puts, 6*(batchSegments+3))
	}
}
