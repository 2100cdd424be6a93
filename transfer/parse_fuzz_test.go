package transfer

import (
	"testing"
)

// FuzzParseRange: never panics; an accepted range is non-negative, and
// Clamp reads at least one byte and only inside the file; Covers agrees
// with Clamp on what is the whole file.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"0-9", "5-", "9223372036854775806-9223372036854775807", "-1-2", "1-0", " 3 - 4 "} {
		f.Add(s, int64(100))
	}
	f.Add("0-0", int64(0))
	f.Add("0-", int64(0))
	f.Fuzz(func(t *testing.T, s string, size int64) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if r.Start < 0 || r.Length < -1 || r.Length == 0 {
			t.Fatalf("ParseRange(%q) = %+v", s, r)
		}
		if size < 0 {
			return
		}
		off, n, err := r.Clamp(size)
		if err != nil {
			return
		}
		if off < 0 || n < 1 || off+n > size || (r.Length >= 0 && n > r.Length) {
			t.Fatalf("Clamp(%+v, %d) = %d, %d", r, size, off, n)
		}
		if r.Covers(size) != (off == 0 && n == size) {
			t.Fatalf("Covers(%+v, %d) = %v, but Clamp reads %d+%d", r, size, r.Covers(size), off, n)
		}
	})
}
