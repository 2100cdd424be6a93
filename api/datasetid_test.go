package api

import (
	"strings"
	"testing"
)

// Moved from broker (broker_test.go), where the stricter of the two rules
// lived.
func TestValidateDatasetID(t *testing.T) {
	for _, id := range []string{"JGAD000001", "ds-1", "a.b", "x_y", strings.Repeat("x", MaxDatasetIDLen)} {
		if err := ValidateDatasetID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "-x", ".x", "a/b", "a..b", strings.Repeat("x", MaxDatasetIDLen+1), strings.Repeat("x", 125), "a b", "ä"} {
		err := ValidateDatasetID(id)
		if err == nil {
			t.Errorf("%q accepted", id)
		} else if !strings.Contains(err.Error(), "use 1-120 of A-Z a-z 0-9 . _ -") {
			t.Errorf("%q: %v does not say the rule", id, err)
		}
	}
}
