package main

import (
	"strings"
	"time"

	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/storage"
)

// maxConcurrency bounds parallel piece transfers: a segment has at most
// storage.MaxShards pieces, and more requests than that in flight only
// queue at the targets.
const maxConcurrency = storage.MaxShards

// validateConcurrency checks a requested number of parallel piece
// transfers: 1..maxConcurrency (0, "not set", is the caller's business).
func validateConcurrency(n int) error {
	if n < 1 || n > maxConcurrency {
		return i18n.Errorf("--concurrency %d: want 1..%d parallel piece transfers", n, maxConcurrency)
	}
	return nil
}

// parseDate checks a YYYY-MM-DD date (as grants take it) and returns it.
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, i18n.Errorf("bad date %q: want YYYY-MM-DD, e.g. %s", s, time.Now().UTC().AddDate(0, 0, 30).Format(time.DateOnly))
	}
	return t, nil
}
