package client

import (
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/api"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "MiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseSize parses a byte count: "65536", "64MiB", "1GiB", "1.5GiB",
// "500MB" (decimal units: kB MB GB TB) or "64M" (a bare letter is binary).
// Case is ignored.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, errors.New("empty size")
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			mult, t = u.mult, strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || (mult > 1 && n > math.MaxInt64/mult) {
			return 0, fmt.Errorf("bad size %q: out of range", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q: want a number of bytes like 65536, 64MiB or 1GiB", s)
	}
	v := f * float64(mult)
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("bad size %q: not a whole number of bytes", s)
	}
	return int64(v), nil
}

// FormatSize renders n bytes in binary units, e.g. "64.0 MiB".
func FormatSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := "KMGTPE"
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// Range is a byte range of a file: Length < 0 means to the end.
type Range struct {
	Start, Length int64
}

// ParseRange parses "START-END" (inclusive byte offsets, like HTTP),
// "START-" (to the end of the file) or "START+LENGTH". Each number may have
// a unit as in ParseSize: "1MiB+1MiB" is the second mebibyte, "1M-2M" the
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
		n, err := ParseSize(t)
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

// MaxConcurrency bounds parallel piece transfers: a segment has at most
// storage.MaxShards pieces, and more requests than that in flight only
// queue at the targets.
const MaxConcurrency = storage.MaxShards

// Covers reports whether r covers the whole of a non-empty file of size
// bytes, in which case fetching it is fetching the file, whole-file
// checksums included.
func (r Range) Covers(size int64) bool {
	return size > 0 && r.Start == 0 && (r.Length < 0 || r.Length >= size)
}

// ValidateConcurrency checks a requested number of parallel piece
// transfers: 1..MaxConcurrency (0, "not set", is the caller's business).
func ValidateConcurrency(n int) error {
	if n < 1 || n > MaxConcurrency {
		return fmt.Errorf("--concurrency %d: want 1..%d parallel piece transfers", n, MaxConcurrency)
	}
	return nil
}

// ValidateName checks a file's name in dozo before anything is sent; it is
// dozod's own rule, api.ValidateFileName.
var ValidateName = api.ValidateFileName

// DefaultName is the name a local file gets in dozo: its base name, in
// NFC (api.NormalizeFileName).
func DefaultName(path string) string {
	return api.NormalizeFileName(filepath.Base(filepath.Clean(path)))
}

// ParseFileRef splits "DATASET/NAME". The dataset id is checked like
// storage ids; the name is put in NFC (api.NormalizeFileName) and checked
// with ValidateName.
func ParseFileRef(s string) (dataset, name string, err error) {
	dataset, name, ok := strings.Cut(api.NormalizeFileName(s), "/")
	if !ok || dataset == "" || name == "" {
		return "", "", fmt.Errorf("bad file reference %q: want DATASET/NAME, e.g. JGAD000001/sample1.cram", s)
	}
	if err := storage.ValidateID(dataset); err != nil {
		return "", "", fmt.Errorf("bad dataset id %q: use A-Z a-z 0-9 . _ - (not starting with . or -)", dataset)
	}
	if err := ValidateName(name); err != nil {
		return "", "", err
	}
	return dataset, name, nil
}

// ParseDate checks a YYYY-MM-DD date (as grants take it) and returns it.
func ParseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("bad date %q: want YYYY-MM-DD, e.g. %s", s, time.Now().UTC().AddDate(0, 0, 30).Format(time.DateOnly))
	}
	return t, nil
}
