package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/catalog"
)

// TestGrantPeriodBoundaries: a grant's from..until counts both days, so it
// lasts until-from+1 days; that may not exceed the dataset's maximum use
// period, nor one calendar year (365 days, 366 when the period holds a
// 29 February).
func TestGrantPeriodBoundaries(t *testing.T) {
	s := &Server{now: func() time.Time { return time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC) }}
	cases := []struct {
		max         int
		from, until string
		ok          bool
	}{
		{1, "", "2026-11-30", true},            // today only: 1 day
		{1, "", "2026-12-01", false},           // 2 days
		{1, "2026-12-05", "2026-12-05", true},  // one later day
		{30, "2026-12-01", "2026-12-30", true}, // exactly 30
		{30, "2026-12-01", "2026-12-31", false},
		{365, "", "2027-11-29", true}, // exactly 365
		{365, "", "2027-11-30", false},
		{366, "", "2027-11-29", true},
		{366, "", "2027-11-30", false}, // 366 days but no 29 February: more than a year
		{365, "2028-02-01", "2029-01-30", true},
		{365, "2028-02-01", "2029-01-31", false},
		{366, "2028-02-01", "2029-01-31", true}, // 366 days holding 2028-02-29
		{366, "2028-02-01", "2029-02-01", false},
		{366, "2027-03-01", "2028-02-29", true}, // ends on the leap day
		{366, "2027-03-01", "2028-03-01", false},
		{366, "2028-02-29", "2029-02-28", true}, // starts on it
		{366, "2028-02-29", "2029-03-01", false},
		{366, "2028-03-01", "2029-02-28", true}, // 365: the leap day is before the period
		{366, "2028-03-01", "2029-03-01", false},
	}
	for _, c := range cases {
		ds := &catalog.Dataset{ID: "JGAD000001", MaxUseDays: c.max}
		from, err := s.checkPeriod(ds, c.from, c.until)
		if (err == nil) != c.ok {
			t.Errorf("max %d, %q..%s: err %v, want ok=%v", c.max, c.from, c.until, err, c.ok)
			continue
		}
		if c.ok && c.from == "" && from != "2026-11-30" {
			t.Errorf("max %d, ..%s: from %s, want today", c.max, c.until, from)
		}
		if !c.ok && !strings.Contains(err.Error(), "inclusive") {
			t.Errorf("max %d, %q..%s: message does not say how days are counted: %v", c.max, c.from, c.until, err)
		}
	}
}
