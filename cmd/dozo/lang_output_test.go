package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
)

// fakeRegister serves a grant register (an extension, a revoked grant, a
// renamed login), an audit log, a file list and a target list, as carol
// (a custodian and admin) sees them.
func fakeRegister(t *testing.T) []string {
	t.Helper()
	at := time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC)
	rev := at.Add(48 * time.Hour)
	grants := []api.Grant{
		{ID: 1, Dataset: "JGAD000001", User: "bob", From: "2026-04-01", Until: time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC),
			State: api.GrantSuperseded, SupersededBy: 2, ApplicationID: "J-DU000123", Institution: "東京大学医科学研究所", GrantedBy: "carol", GrantedAt: at},
		{ID: 2, Dataset: "JGAD000001", User: "bob", From: "2026-04-02", Until: time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC),
			State: api.GrantActive, ApplicationID: "J-DU000123", Institution: "東京大学医科学研究所", GrantedBy: "carol", GrantedAt: at, LoginName: "bob.tanaka"},
		{ID: 3, Dataset: "JGAD000001", User: "rita", From: "2026-04-01", Until: time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC),
			State: api.GrantRevoked, RevokedAt: &rev, RevokedBy: "carol", RevokeReason: "left", Institution: "NIG", GrantedBy: "carol", GrantedAt: at},
	}
	files := []api.File{{ID: "f1", Name: "NA12878.cram", Size: 1 << 20, State: api.FileAvailable, SHA256: strings.Repeat("ab", 32), CreatedAt: at}}
	targets := []client.TargetHealth{{ID: "s1", Domain: "d1", Up: true}, {ID: "s2", Domain: "d2", Up: false, Since: at, Failures: 3, LastError: "connection refused"}}
	return withFakeAs(t, "carol", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case api.ListGrants.Path("JGAD000001"):
			json.NewEncoder(w).Encode(grants)
		case api.ListAudit.Path():
			json.NewEncoder(w).Encode(sampleAudit())
		case api.ListFiles.Path("JGAD000001"):
			json.NewEncoder(w).Encode(files)
		case api.ListTargets.Path():
			json.NewEncoder(w).Encode(targets)
		default:
			json.NewEncoder(w).Encode(api.User{Name: "carol"})
		}
	}))
}

// runIn runs dozo with messages in language l.
func runIn(t *testing.T, l string, args ...string) string {
	t.Helper()
	lang, err := i18n.Parse(l)
	if err != nil {
		t.Fatal(err)
	}
	defer i18n.Set(i18n.English)
	i18n.Set(lang)
	out, _, err := run(t, args...)
	if err != nil && !strings.Contains(strings.Join(args, " "), "targets") { // a target down exits 1
		t.Fatalf("dozo %s (%s): %v", strings.Join(args, " "), l, err)
	}
	return out
}

// --csv and --json are for scripts and registers: byte for byte the same
// whatever the language, while the tables people read change with it.
func TestMachineOutputSameInEveryLanguage(t *testing.T) {
	base := fakeRegister(t)
	for _, cmd := range [][]string{
		{"grants", "JGAD000001", "--history", "--csv"},
		{"grants", "JGAD000001", "--history", "--csv", "--excel"},
		{"grants", "JGAD000001", "--history", "--json"},
		{"audit", "list", "--all", "--csv"},
		{"audit", "list", "--json"},
		{"ls", "JGAD000001", "--json"},
		{"admin", "targets", "--json"},
	} {
		en := runIn(t, "en", append(base, cmd...)...)
		ja := runIn(t, "ja", append(base, cmd...)...)
		if en == "" || en != ja {
			t.Errorf("dozo %s: output differs between en and ja:\n%s\n---\n%s", strings.Join(cmd, " "), en, ja)
		}
	}
	for _, cmd := range [][]string{{"grants", "JGAD000001", "--history"}, {"audit", "list"}, {"ls", "JGAD000001"}, {"admin", "targets"}} {
		if en, ja := runIn(t, "en", append(base, cmd...)...), runIn(t, "ja", append(base, cmd...)...); en == ja {
			t.Errorf("dozo %s: the table is the same in Japanese:\n%s", strings.Join(cmd, " "), ja)
		}
	}
}

// The grant register's table in Japanese: headings, states and their
// details in words, nothing English left but names and values.
func TestGrantsTableJapanese(t *testing.T) {
	base := fakeRegister(t)
	en := runIn(t, "en", append(base, "grants", "JGAD000001", "--history")...)
	for _, want := range []string{"STATE", "superseded by #2", "active", "bob (now bob.tanaka)", "revoked 2026-04-01 by carol"} {
		if !strings.Contains(en, want) {
			t.Errorf("English table lacks %q:\n%s", want, en)
		}
	}
	ja := runIn(t, "ja", append(base, "grants", "JGAD000001", "--history")...)
	for _, want := range []string{"状態", "承認者", "#2 で置き換え済み", "有効", "bob (現在は bob.tanaka)", "2026-04-01 に carol が取り消し"} {
		if !strings.Contains(ja, want) {
			t.Errorf("Japanese table lacks %q:\n%s", want, ja)
		}
	}
	for _, english := range []string{"STATE", "superseded", "active", "now", "revoked", "GRANTED"} {
		if strings.Contains(ja, english) {
			t.Errorf("Japanese table still says %q:\n%s", english, ja)
		}
	}
	// The columns line up by display width, Japanese headings included.
	lines := strings.Split(strings.TrimSpace(ja), "\n")
	col := func(line, cell string) int { return displayWidth(line[:strings.Index(line, cell)]) }
	if a, b := col(lines[0], "状態"), col(lines[2], "有効"); a != b {
		t.Errorf("STATE column at %d in the heading, %d in a row:\n%s", a, b, ja)
	}
}
