package transfer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRangeFit: a range must start inside the file; an END past the end
// stops at the end (as in HTTP). An empty file has no byte to start at.
func TestRangeFit(t *testing.T) {
	for _, c := range []struct {
		r    Range
		size int64
		ok   bool
	}{
		{Range{0, 1}, 0, false}, // 0-0 of an empty file
		{Range{0, -1}, 0, false},
		{Range{5, 1}, 5, false},
		{Range{0, 1}, 1, true},
		{Range{4, 1}, 5, true},
		{Range{0, 100}, 5, true},
	} {
		off, n, err := c.r.Clamp(c.size)
		if (err == nil) != c.ok || (err == nil && (n < 1 || off+n > c.size)) {
			t.Errorf("%+v of %d bytes: %d+%d, %v", c.r, c.size, off, n, err)
		}
	}
	for _, c := range []struct {
		r    Range
		size int64
		all  bool
	}{
		{Range{0, -1}, 10, true}, {Range{0, 10}, 10, true}, {Range{0, 11}, 10, true},
		{Range{0, 9}, 10, false}, {Range{1, -1}, 10, false}, {Range{0, -1}, 0, false},
	} {
		if got := c.r.Covers(c.size); got != c.all {
			t.Errorf("%+v covers %d bytes: %v", c.r, c.size, got)
		}
	}
}

// TestRangeOfWholeFileVerified: a range that covers the whole file is
// checked against the catalog's SHA-256 and MD5 like a whole fetch, and a
// range that does not fit an empty file is refused and leaves nothing.
func TestRangeOfWholeFileVerified(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 3*fakePlainSeg+77)
	if _, err := e.upload(t, path); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Range{{0, -1}, {0, int64(len(data))}, {0, int64(len(data)) + 100}} {
		var buf bytes.Buffer
		res, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf, Range: &r})
		if err != nil || !bytes.Equal(buf.Bytes(), data) || !res.Verified {
			t.Errorf("range %+v of the whole file: verified=%v, %v", r, res != nil && res.Verified, err)
		}
	}
	var buf bytes.Buffer
	if res, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf, Range: &Range{1, -1}}); err != nil || res.Verified || !bytes.Equal(buf.Bytes(), data[1:]) {
		t.Errorf("a part of the file: %v", err)
	}

	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := UploadFile(context.Background(), e.c, UploadOptions{Dataset: "DS1", Path: empty, Dir: e.dir, Identity: e.id}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, r := range []Range{{0, 1}, {0, -1}} {
		_, err := e.fetch(t, FetchOptions{Name: "empty", Output: out, Range: &r})
		if err == nil || !strings.Contains(message(err), "empty") {
			t.Errorf("range %+v of an empty file: %v", r, err)
		}
		if _, serr := os.Lstat(out); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("refused range left %s", out)
		}
	}
}
