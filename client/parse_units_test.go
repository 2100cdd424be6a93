package client

import "testing"

// Ranges take sizes with units, as every other size does, and START+LENGTH.
func TestParseRangeUnits(t *testing.T) {
	for in, want := range map[string]Range{
		"0-1048575": {0, 1 << 20},
		"1M-2M":     {1 << 20, 1<<20 + 1}, // END is inclusive, as in HTTP
		"1MiB-":     {1 << 20, -1},
		"1M+1M":     {1 << 20, 1 << 20},
		"0+1k":      {0, 1024},
		"1.5k-2k":   {1536, 513},
	} {
		got, err := ParseRange(in)
		if err != nil || got != want {
			t.Errorf("ParseRange(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"1M", "2M-1M", "-5", "x-1", "1M+0", "1M+", "1M+-1", "0-1x"} {
		if r, err := ParseRange(in); err == nil {
			t.Errorf("ParseRange(%q) = %+v, want an error", in, r)
		}
	}
}
