package suggest

import (
	"slices"
	"testing"
)

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{
		{"rita", "rita", 0}, {"ritaa", "rita", 1}, {"rtia", "rita", 1}, {"carol", "caroll", 1},
		{"", "abc", 3}, {"sam", "eve", 3}, {"ca", "abc", 3}, {"bob", "rob", 1}, {"zoë", "zoe", 1},
		{"uplaod", "upload", 1}, {"fetc", "fetch", 1},
	} {
		if got := Distance(c.a, c.b); got != c.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"rita", "ritz", "rit", "ruth", "sam", "rima", "anita"}
	if got := Closest("ritaa", names, 2, 3); !slices.Equal(got, []string{"rita", "rima", "rit"}) {
		t.Errorf("Closest = %v", got)
	}
	if got := Closest("zzzzzz", names, 2, 3); got == nil || len(got) != 0 {
		t.Errorf("Closest of a stranger = %#v, want an empty slice", got)
	}
}
