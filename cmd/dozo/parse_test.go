package main

import "testing"

func TestParseDate(t *testing.T) {
	if _, err := parseDate("2026-02-30"); err == nil {
		t.Error("parseDate accepted Feb 30")
	}
	if _, err := parseDate("2026-12-31"); err != nil {
		t.Error(err)
	}
}
