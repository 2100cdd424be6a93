package transfer

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/dozo-vault/dozo/internal/units"
)

// Range is a byte range of a file: Length < 0 means to the end.
type Range struct {
	Start, Length int64
}

// ParseRange parses "START-END" (inclusive byte offsets, like HTTP),
// "START-" (to the end of the file) or "START+LENGTH". Each number may have
// a unit as in units.ParseSize: "1MiB+1MiB" is the second mebibyte, "1M-2M" the
// same plus the byte at 2M (END is inclusive).
func ParseRange(s string) (Range, error) {
	bad := func(why string) (Range, error) {
		return Range{}, fmt.Errorf("bad range %q: %s (want START-END, inclusive byte offsets, START- for the rest, or START+LENGTH; units like 1M allowed)", s, why)
	}
	offset := func(t string) (int64, bool) {
		t = strings.TrimSpace(t)
		if t == "" || t[0] == '-' || t[0] == '+' {
			return 0, false
		}
		n, err := units.ParseSize(t)
		return n, err == nil
	}
	if a, b, ok := strings.Cut(strings.TrimSpace(s), "+"); ok {
		start, ok := offset(a)
		if !ok {
			return bad("START is not a byte offset")
		}
		n, ok := offset(b)
		if !ok || n == 0 {
			return bad("LENGTH is not a positive number of bytes")
		}
		if n > math.MaxInt64-start {
			return Range{Start: start, Length: -1}, nil
		}
		return Range{Start: start, Length: n}, nil
	}
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return bad("no '-'")
	}
	start, ok := offset(a)
	if !ok {
		return bad("START is not a byte offset")
	}
	if strings.TrimSpace(b) == "" {
		return Range{Start: start, Length: -1}, nil
	}
	end, ok := offset(b)
	if !ok {
		return bad("END is not a byte offset")
	}
	if end < start {
		return bad("END is before START")
	}
	if end == math.MaxInt64 {
		return Range{Start: start, Length: -1}, nil
	}
	return Range{Start: start, Length: end - start + 1}, nil
}

// Clamp fits r to a file of size bytes and returns the offset and length
// to read, at least one byte. The range must start inside the file (so an
// empty file has no range); an end past the file's end stops at the end,
// as in HTTP.
func (r Range) Clamp(size int64) (off, n int64, err error) {
	if size == 0 {
		return 0, 0, errors.New("the file is empty: it has no byte range (fetch it without --range)")
	}
	if r.Start >= size {
		return 0, 0, fmt.Errorf("range starts at byte %d, beyond the end of the %d-byte file (the last byte is %d)", r.Start, size, size-1)
	}
	n = size - r.Start
	if r.Length >= 0 && r.Length < n {
		n = r.Length
	}
	return r.Start, n, nil
}

// Covers reports whether r covers the whole of a non-empty file of size
// bytes, in which case fetching it is fetching the file, whole-file
// checksums included.
func (r Range) Covers(size int64) bool {
	return size > 0 && r.Start == 0 && (r.Length < 0 || r.Length >= size)
}
