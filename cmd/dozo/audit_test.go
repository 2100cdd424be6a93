package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/client"
)

// fakeDozod answers /v1/audit with rs and /v1/whoami with warnings, and
// remembers the audit queries it was sent and how many whoamis.
type fakeDozod struct {
	mu       sync.Mutex
	rs       []api.AuditEntry
	warnings []string
	queries  []string
	whoamis  int
}

func (f *fakeDozod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/whoami":
		f.whoamis++
		for _, s := range f.warnings {
			w.Header().Add(api.WarningHeader, s)
		}
		json.NewEncoder(w).Encode(api.User{Name: "rita"})
	case "/v1/audit":
		f.queries = append(f.queries, r.URL.RawQuery)
		json.NewEncoder(w).Encode(f.rs)
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.Error{Error: "no such endpoint"})
	}
}

// withFake starts a fake dozod (f) and a config dir logged in as rita; it
// returns the arguments that point dozo at them.
func withFake(t *testing.T, f http.Handler) []string {
	t.Helper()
	return withFakeAs(t, "rita", f)
}

// withFakeAs is withFake with the config dir logged in as user.
func withFakeAs(t *testing.T, user string, f http.Handler) []string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := filepath.Join(t.TempDir(), "cfg")
	d, err := client.OpenDir(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SaveLogin("hvs.test-token", client.Login{Username: user, Broker: srv.URL}); err != nil {
		t.Fatal(err)
	}
	return []string{"--config-dir", cfg, "--broker", srv.URL}
}

// inTokyo runs the test with the local time zone set to Asia/Tokyo (as
// TZ=Asia/Tokyo would).
func inTokyo(t *testing.T) {
	t.Helper()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	local := time.Local
	time.Local = tokyo
	t.Cleanup(func() { time.Local = local })
}

func sampleAudit() []api.AuditEntry {
	at := time.Date(2026, 11, 30, 11, 33, 6, 0, time.UTC)
	long := strings.Repeat("x", 300)
	return []api.AuditEntry{
		{Record: audit.Record{Seq: 1, Time: at, Actor: "rita", Action: "file.fetch", Object: "file/f9c3e1a2b4c6d8e0f1a3b5c7d9e1f3a5b", Dataset: "JGAD000001",
			Result: "ok", Status: 200, Source: "192.0.2.7:51234", RequestID: "0123456789abcdef01234567", Hash: strings.Repeat("a", 64)}, File: "NA12878.final.cram"},
		{Record: audit.Record{Seq: 2, Time: at.Add(time.Minute), Actor: "rita", Action: "file.fetch.done", Object: "file/f9c3e1a2b4c6d8e0f1a3b5c7d9e1f3a5b",
			Dataset: "JGAD000001", Result: audit.ResultClientReported, Status: 204, Detail: "123456789 bytes in 2m3.4s, verified"}, File: "NA12878.final.cram"},
		{Record: audit.Record{Seq: 3, Time: at.Add(2 * time.Minute), Actor: "a-very-long-user-name-indeed", Action: "dataset.some-very-long-action-name",
			Object: "dataset/JGAD000001/file/" + long, Dataset: "JGAD000001", Result: "refused", Status: 404, Source: "[2001:db8::1]:443",
			Detail: "=HYPERLINK(\"http://evil.example\",\"click\") " + long}, File: "=cmd|' /C calc'!A0" + long},
		{Record: audit.Record{Seq: 4, Time: at.Add(3 * time.Minute), Actor: "", Action: "whoami", Result: "refused", Status: 401,
			Detail: "missing token\x1b[31m"}},
		{Record: audit.Record{Seq: 5, Time: at.Add(4 * time.Minute), Actor: "sam", Action: "upload.complete", Object: "upload/u0123456789abcdef0123456789abcdef",
			Result: "ok", Status: 200}, File: "NA12878.final.cram", FileSize: 123456789},
	}
}

// TestAuditTableFits: the default table is at most 120 columns wide
// whatever the records hold, names the file, and shows local times with
// their offset.
func TestAuditTableFits(t *testing.T) {
	inTokyo(t)
	f := &fakeDozod{rs: sampleAudit()}
	out, _, err := run(t, append(withFake(t, f), "audit", "list")...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 120 {
			t.Errorf("line of %d columns: %q", n, l)
		}
		if strings.ContainsRune(l, '\x1b') {
			t.Errorf("control character reached the terminal: %q", l)
		}
	}
	for i, want := range []string{"2026-11-30 20:33:06+09:00", "NA12878.final.cram", "client-reported", "refused 404", "123456789 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("check %d: table lacks %q:\n%s", i, want, out)
		}
	}
	// The reading view leaves out presign and audit-list records.
	if q := f.queries[0]; !strings.Contains(q, "exclude_action=") || !strings.Contains(q, "audit.list") || !strings.Contains(q, "fetch.presign-batch") {
		t.Errorf("default query %q does not hide presigns and audit listings", q)
	}

	// --utc; --wide prints the whole file name and the source.
	out, _, err = run(t, append(withFake(t, f), "audit", "list", "--utc", "--wide", "--all")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "2026-11-30 11:33:06Z") || !strings.Contains(out, strings.Repeat("x", 300)) || !strings.Contains(out, "192.0.2.7:51234") {
		t.Errorf("--utc --wide:\n%s", out)
	}
	if q := f.queries[len(f.queries)-1]; strings.Contains(q, "exclude_action") {
		t.Errorf("--all still hides: %q", q)
	}
}

// TestAuditCSV: the CSV parses, has local times with offsets, and no cell
// a spreadsheet would run as a formula.
func TestAuditCSV(t *testing.T) {
	inTokyo(t)
	f := &fakeDozod{rs: sampleAudit()}
	out, _, err := run(t, append(withFake(t, f), "audit", "list", "--csv", "--file", "NA12878.final.cram", "--action", "file.fetch,file.fetch.done")...)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 || strings.Join(rows[0], ",") != strings.Join(api.AuditCSVHeader, ",") {
		t.Fatalf("csv:\n%s", out)
	}
	if rows[1][1] != "2026-11-30T20:33:06+09:00" || rows[1][5] != "NA12878.final.cram" || rows[2][8] != "client-reported" {
		t.Errorf("rows %q %q", rows[1], rows[2])
	}
	for _, r := range rows[1:] {
		for i, cell := range r {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("column %s holds a formula: %q", rows[0][i], cell)
			}
		}
	}
	if q := f.queries[0]; !strings.Contains(q, "file=NA12878.final.cram") || !strings.Contains(q, "action=file.fetch%2Cfile.fetch.done") || strings.Contains(q, "exclude") {
		t.Errorf("query %q", q)
	}
}

// TestAuditListUsage: bad filters are refused before any request.
func TestAuditListUsage(t *testing.T) {
	f := &fakeDozod{}
	for want, args := range map[string][]string{
		"--result":      {"--result", "fine"},
		"--until":       {"--until", "tomorrow"},
		"choose one":    {"--csv", "--json"},
		"--action":      {"--action", "a,,b"},
		"--limit 20000": {"--limit", "20000"},
	} {
		_, _, err := run(t, append(append(withFake(t, f), "audit", "list"), args...)...)
		if err == nil || !strings.Contains(errorLine(err, false), want) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if len(f.queries) != 0 {
		t.Errorf("refused input reached dozod: %q", f.queries)
	}
}

// TestWarningsOncePerDay: dozod's warning is printed to standard error by
// the first command of a day, once, and not again that day.
func TestWarningsOncePerDay(t *testing.T) {
	pinned := today
	defer func() { today = pinned }()
	today = func() time.Time { return time.Date(2026, 12, 19, 0, 0, 0, 0, time.UTC) }
	w := "your grant on JGAD000001 ends on 2026-12-31 (in 12 days); ask the dataset's custodian"
	f := &fakeDozod{warnings: []string{w}}
	args := withFake(t, f)
	var errs []string
	for range 3 {
		_, stderr, err := run(t, append(args, "audit", "list")...)
		if err != nil {
			t.Fatal(err)
		}
		errs = append(errs, stderr)
	}
	if errs[0] != "dozo: warning: "+w+"\n" || errs[1] != "" || errs[2] != "" || f.whoamis != 1 {
		t.Fatalf("stderr of three commands on one day: %q (%d whoamis)", errs, f.whoamis)
	}
	today = func() time.Time { return time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC) }
	if _, stderr, _ := run(t, append(args, "audit", "list")...); !strings.Contains(stderr, "ends on 2026-12-31") {
		t.Errorf("next day: %q", stderr)
	}
}

// TestLoginShowsWarnings: the day's warnings come with the login, and the
// commands after it that day print none (their output stays the command's
// own).
func TestLoginShowsWarnings(t *testing.T) {
	pinned := today
	defer func() { today = pinned }()
	today = func() time.Time { return time.Date(2026, 12, 19, 0, 0, 0, 0, time.UTC) }
	w := "your grant on JGAD000001 ends on 2026-12-31 (in 12 days); ask the dataset's custodian"
	f := &fakeDozod{warnings: []string{w}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	args := []string{"--config-dir", filepath.Join(t.TempDir(), "cfg"), "--broker", srv.URL}
	app := newApp()
	var o, e bytes.Buffer
	app.Writer, app.ErrWriter = &o, &e
	app.Reader = strings.NewReader("hvs.test-token\n")
	if err := app.Run(reorderArgs(app, append([]string{"dozo"}, append(args, "login", "--method", "token")...))); err != nil {
		t.Fatalf("login: %v (%s)", err, e.String())
	}
	if e.String() != "dozo: warning: "+w+"\n" {
		t.Fatalf("login's stderr %q, want the warning", e.String())
	}
	if _, stderr, err := run(t, append(args, "audit", "list")...); err != nil || stderr != "" {
		t.Fatalf("the next command: %v, stderr %q; want no warning again", err, stderr)
	}
}
