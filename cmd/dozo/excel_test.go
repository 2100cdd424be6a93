package main

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// --csv --excel starts with a UTF-8 byte order mark and is otherwise the
// same CSV; --csv alone has none; --excel without --csv is a usage error.
func TestCSVForExcel(t *testing.T) {
	grants := []api.Grant{{ID: 1, Dataset: "JGAD000001", User: "bob", From: "2026-04-01",
		Until: time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC), State: api.GrantActive,
		ApplicationID: "J-DU000123", Institution: "東京大学医科学研究所", GrantedBy: "carol",
		GrantedAt: time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC)}}
	base := withFakeAs(t, "carol", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/datasets/JGAD000001/grants":
			json.NewEncoder(w).Encode(grants)
		case "/v1/audit":
			json.NewEncoder(w).Encode(sampleAudit())
		default:
			json.NewEncoder(w).Encode(api.User{Name: "carol"})
		}
	}))
	for _, cmd := range [][]string{{"grants", "JGAD000001", "--csv"}, {"audit", "list", "--csv"}} {
		plain, _, err := run(t, append(base, cmd...)...)
		if err != nil {
			t.Fatal(err)
		}
		excel, _, err := run(t, append(append(base, cmd...), "--excel")...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(plain, utf8BOM) {
			t.Errorf("dozo %s: a byte order mark without --excel", strings.Join(cmd, " "))
		}
		if !strings.HasPrefix(excel, "\xEF\xBB\xBF") || strings.TrimPrefix(excel, "\xEF\xBB\xBF") != plain {
			t.Errorf("dozo %s --excel: want the BOM, then the same CSV; got %q", strings.Join(cmd, " "), excel[:min(len(excel), 40)])
		}
		if _, err := csv.NewReader(strings.NewReader(plain)).ReadAll(); err != nil {
			t.Errorf("dozo %s: %v", strings.Join(cmd, " "), err)
		}
	}
	if !strings.Contains(func() string { s, _, _ := run(t, append(base, "grants", "JGAD000001", "--csv")...); return s }(), "東京大学医科学研究所") {
		t.Error("grants CSV lost the institution")
	}
	for _, cmd := range [][]string{{"grants", "JGAD000001", "--excel"}, {"audit", "list", "--excel"}} {
		if code, msg := exitStatus(t, append(base, cmd...)...); code != exitUsage || !strings.Contains(msg, "--excel goes with --csv") {
			t.Errorf("dozo %s: exit %d %q", strings.Join(cmd, " "), code, msg)
		}
	}
}
