package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
)

// TestSegmentSizeFlag: --segment-size passes the local check exactly when
// dozod's rule (api.ValidateSegmentSize) takes it, and a refusal says why.
func TestSegmentSizeFlag(t *testing.T) {
	cases := []struct{ rs, size, want string }{
		{"4+2", "65536", "at least 1MiB"},
		{"4+2", "64KiB", "at least 1MiB"},
		{"4+2", "1GiB", "at most"},
		{"4+2", "1000", "multiple of 64KiB"},
		{"6+3", "128MiB", "multiple of 192KiB"},
		{"4+2", "1MiB", ""},
		{"4+2", "32MiB", ""},
		{"4+2", "512MiB", ""}, // the values the flag's help names
		{"4+2", "1048576", ""},
		{"6+3", "96MiB", ""},
		{"4+2", fmt.Sprint(api.MaxPlainSegmentSize), ""},
	}
	for _, c := range cases {
		_, _, _, err := parseDatasetLayout(c.rs, c.size)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("--rs %s --segment-size %s: %v", c.rs, c.size, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("--rs %s --segment-size %s: %v, want an error about %q", c.rs, c.size, err, c.want)
		}
	}
}
