package transfer

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

func TestParseRange(t *testing.T) {
	good := map[string]Range{
		"0-0": {0, 1}, "0-65535": {0, 65536}, "100-": {100, -1}, " 5 - 9 ": {5, 5},
	}
	for in, want := range good {
		got, err := ParseRange(in)
		if err != nil || got != want {
			t.Errorf("ParseRange(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5", "-5", "9-5", "a-b", "1-x", "-"} {
		if _, err := ParseRange(in); err == nil {
			t.Errorf("ParseRange(%q) succeeded", in)
		}
	}
	off, n, err := Range{10, -1}.Clamp(100)
	if err != nil || off != 10 || n != 90 {
		t.Errorf("Clamp to end: %d %d %v", off, n, err)
	}
	off, n, err = Range{90, 50}.Clamp(100)
	if err != nil || off != 90 || n != 10 {
		t.Errorf("Clamp past end: %d %d %v", off, n, err)
	}
	if _, _, err := (Range{100, 1}).Clamp(100); err == nil {
		t.Error("Clamp beyond the end succeeded")
	}
}
