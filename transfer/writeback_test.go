package transfer

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// writeBehind writes what it is given, in order, whether it goes direct
// (aligned blocks, where the file system allows) or buffered (a short
// tail, an odd buffer): and once it has left direct I/O it stays out.
func TestWriteBehindContent(t *testing.T) {
	data := make([]byte, 5<<20+777)
	rand.Read(data)
	for name, c := range map[string]struct {
		from   int64
		blocks []int // lengths of the writes, in order
	}{
		"aligned, then a tail":    {0, []int{1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 777}},
		"odd write in the middle": {0, []int{1 << 20, 100, 1<<20 - 100, 3 << 20, 777}},
		"resumed at a segment":    {1 << 20, []int{1 << 20, 1 << 20, 1 << 20, 1 << 20, 777}},
	} {
		path := filepath.Join(t.TempDir(), "out")
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data[:c.from]); err != nil {
			t.Fatal(err)
		}
		w := newWriteBehind(f, c.from)
		direct := w.direct
		t.Logf("%s: direct I/O at first: %v", name, direct)
		off := c.from
		for i, n := range c.blocks {
			// Page-aligned copies, as the fetch's pipe blocks are.
			buf := alignedCopy(data[off : off+int64(n)])
			if _, err := w.Write(buf); err != nil {
				t.Fatalf("%s: write %d: %v", name, i, err)
			}
			if w.direct && n%directAlign != 0 {
				t.Fatalf("%s: still direct after a write of %d bytes", name, n)
			}
			off += int64(n)
		}
		if w.direct {
			t.Errorf("%s: direct after the tail", name)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s (direct at first: %v): the file differs (%d bytes, %v)", name, direct, len(got), err)
		}
	}
}

// alignedCopy returns a copy of p that starts on a directAlign boundary.
func alignedCopy(p []byte) []byte {
	buf := make([]byte, len(p)+directAlign)
	for i := range directAlign {
		if w := (&writeBehind{}); w.aligned(buf[i:i+directAlign]) {
			return append(buf[i:i], p...)
		}
	}
	panic("no aligned offset")
}
