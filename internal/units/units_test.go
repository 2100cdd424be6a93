package units

import "testing"

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"65536": 65536, "64MiB": 64 << 20, "1GiB": 1 << 30, "1gib": 1 << 30, "64M": 64 << 20,
		"512KiB": 512 << 10, "1.5GiB": 3 << 29, "500MB": 500e6, "2 TiB": 2 << 40, "0": 0, "10B": 10,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5", "abc", "1XB", "99999999999TiB", "NaN"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

// FuzzParseSize: never panics; accepted sizes are non-negative.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64MiB", "1.5GiB", "65536", "1e30", "-1", "NaN", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
