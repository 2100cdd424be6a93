package api

import "testing"

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "200MiB/s": 200 << 20, "200MiB": 200 << 20, "1.5GB/s": 1_500_000_000, "64kib/s": 64 << 10,
		"1000": 1000, " 2 GiB/s ": 2 << 30, "10B/s": 10,
	} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/s", "fast", "-1MiB/s", "1e30GiB", "NaN", "Inf", "12 parsecs"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}
