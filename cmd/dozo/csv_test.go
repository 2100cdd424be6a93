package main

import (
	"bytes"
	"encoding/csv"
	"slices"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

func TestWriteGrantsCSV(t *testing.T) {
	rev := time.Date(2026, 3, 5, 1, 2, 3, 0, time.UTC)
	gs := []api.Grant{
		{ID: 1, Dataset: "JGAD000001", User: "rita", From: "2026-03-01", Until: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC),
			ApplicationID: "J-DU000001", Institution: "Univ. of \"Tokyo\", Dept. A", Reason: "=HYPERLINK(\"x\")",
			GrantedBy: "sam", GrantedAt: rev, SupersededBy: 2, State: api.GrantSuperseded},
		{ID: 2, Dataset: "JGAD000001", User: "rita", From: "2026-03-05", Until: time.Date(2026, 4, 30, 0, 0, 0, 0, time.UTC),
			Institution: "NIG", Reason: "line\nbreak", GrantedBy: "sam", GrantedAt: rev, RevokedAt: &rev, RevokedBy: "sam",
			RevokeReason: "@cmd", State: api.GrantRevoked, Pending: true},
	}
	var b bytes.Buffer
	if err := writeGrantsCSV(&b, gs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, b.String())
	}
	if len(rows) != 3 || !slices.Equal(rows[0], api.GrantCSVHeader) {
		t.Fatalf("rows %q", rows)
	}
	want := []string{"1", "JGAD000001", "rita", "J-DU000001", "Univ. of \"Tokyo\", Dept. A", "2026-03-01", "2026-03-31", "superseded",
		"sam", "2026-03-05T01:02:03Z", "'=HYPERLINK(\"x\")", "", "", "", "2", "false", ""}
	if !slices.Equal(rows[1], want) {
		t.Errorf("row 1\n got %q\nwant %q", rows[1], want)
	}
	if rows[2][11] != "sam" || rows[2][12] != "2026-03-05T01:02:03Z" || rows[2][13] != "'@cmd" || rows[2][10] != "line\nbreak" || rows[2][14] != "" || rows[2][15] != "true" {
		t.Errorf("row 2 %q", rows[2])
	}
}

// TestCSVSafe: every lead character a spreadsheet may take as the start of
// a formula is defused, tab and carriage return included; other text is
// left as it is.
func TestCSVSafe(t *testing.T) {
	for _, s := range []string{"=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"} {
		if got := csvSafe(s); got != "'"+s {
			t.Errorf("csvSafe(%q) = %q, want it prefixed with '", s, got)
		}
	}
	for _, s := range []string{"", "NIG", "Univ. of Tokyo", " =1", "1-2"} {
		if got := csvSafe(s); got != s {
			t.Errorf("csvSafe(%q) = %q, want it unchanged", s, got)
		}
	}
}
