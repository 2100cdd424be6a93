package integration

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

func day(offset int) string { return time.Now().UTC().AddDate(0, 0, offset).Format(time.DateOnly) }

// grantsJSON runs `dozo grants ARGS --json` as u.
func grantsJSON(t *testing.T, u *user, args ...string) []api.Grant {
	t.Helper()
	var gs []api.Grant
	if err := json.Unmarshal([]byte(u.must(t, append(append([]string{"grants"}, args...), "--json")...)), &gs); err != nil {
		t.Fatal(err)
	}
	return gs
}

// dozodLogHas reports whether dozod's log holds a request record with all
// of the given JSON fragments, e.g. `"action":"file.fetch"`.
func dozodLogHas(t *testing.T, s *stack, frags ...string) bool {
	t.Helper()
	for _, line := range strings.Split(s.dozodLog(t), "\n") {
		ok := true
		for _, f := range frags {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestAccessLifecycle walks the NBDC register and incident freezes through
// the real CLI, dozod, Vault and MinIO: a dataset with NBDC metadata; a
// grant, its extension and revocation with history intact; expiry; user
// and dataset freezes; each refusal one clear line and a logged record.
func TestAccessLifecycle(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	admin := s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	res := s.newUser(t) // a fresh researcher: freezing the shared one could disturb other tests
	res.must(t, "keygen", "--classic")
	res.must(t, "key", "register")
	stranger := s.newUser(t)
	stranger.must(t, "keygen", "--classic")
	stranger.must(t, "key", "register")

	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "access test", "--jgad", "JGAD000123", "--jgap", "JGAP000123", "--max-use-days", "30")
	var d api.Dataset
	if err := json.Unmarshal([]byte(sam.must(t, "dataset", "show", ds, "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.AccessLevel != api.AccessControlled1 || d.NBDCID != "JGAD000123" || d.PolicyID != "JGAP000123" || d.MaxUseDays != 30 {
		t.Fatalf("dataset metadata %+v", d)
	}
	if out := sam.must(t, "dataset", "show", ds); !strings.Contains(out, "JGAP000123") || !strings.Contains(out, "30 days") {
		t.Fatalf("dataset show lacks NBDC metadata:\n%s", out)
	}
	src := filepath.Join(t.TempDir(), "sample.vcf")
	want := writeRandomFile(t, src, 41, mib+77, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	out := filepath.Join(t.TempDir(), "out.vcf")
	fetchOK := func() {
		t.Helper()
		os.Remove(out)
		res.must(t, "fetch", ds+"/sample.vcf", "-o", out)
		if fileSHA(t, out) != want {
			t.Fatal("fetched file differs")
		}
		os.Remove(out)
	}
	fetchRefused := func(u *user, words ...string) string {
		t.Helper()
		os.Remove(out)
		line := u.refused(t, "fetch", ds+"/sample.vcf", "-o", out)
		for _, w := range words {
			if !strings.Contains(line, w) {
				t.Errorf("refusal %q does not say %q", line, w)
			}
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatal("a refused fetch left a file")
		}
		return line
	}
	fetchRefused(res, "not found")

	// Bad grants change nothing.
	appl := []string{"--application", "J-DU000123", "--institution", "Univ. of Tokyo"}
	for _, args := range [][]string{
		{"grant", ds, res.name, "--until", day(10), "--institution", "NIG"},                              // controlled: no application
		{"grant", ds, res.name, "--until", day(10), "--application", "DU123", "--institution", "NIG"},    // bad application
		{"grant", ds, res.name, "--until", day(10), "--application", "J-DU000123"},                       // no institution
		{"grant", ds, res.name, "--until", day(30), "--application", "J-DU000123", "--institution", "X"}, // 31 days, both ends counted: beyond the 30-day maximum
		{"grant", ds, res.name, "--until", day(400), "--application", "J-DU000123", "--institution", "X"},
	} {
		sam.refused(t, args...)
	}
	line := sam.refused(t, append([]string{"grant", ds, res.name, "--until", day(30)}, appl...)...)
	if !strings.Contains(line, "maximum use period") {
		t.Errorf("over-long grant refusal: %q", line)
	}
	if gs := grantsJSON(t, sam, ds, "--history"); len(gs) != 0 {
		t.Fatalf("refused grants left rows: %+v", gs)
	}

	// Grant, extend, revoke: the history keeps every period and change.
	sam.must(t, append([]string{"grant", ds, res.name, "--until", day(10), "--reason", "application approved"}, appl...)...)
	fetchOK()
	sam.must(t, append([]string{"grant", ds, res.name, "--until", day(29), "--reason", "extension approved"}, appl...)...)
	fetchOK()
	sam.must(t, "revoke", ds, res.name, "--reason", "left the project")
	fetchRefused(res, "revoked")
	hist := grantsJSON(t, sam, ds, "--history")
	if len(hist) != 2 || hist[0].State != api.GrantSuperseded || hist[0].SupersededBy != hist[1].ID || hist[0].Reason != "application approved" ||
		hist[1].State != api.GrantRevoked || hist[1].RevokeReason != "left the project" || hist[1].RevokedBy != sam.name ||
		hist[1].ApplicationID != "J-DU000123" || hist[1].Institution != "Univ. of Tokyo" || hist[1].Until.Format(time.DateOnly) != day(29) {
		t.Fatalf("history after extension and revoke: %+v", hist)
	}
	if cur := grantsJSON(t, sam, ds); len(cur) != 1 || cur[0].ID != hist[1].ID {
		t.Fatalf("current register %+v", cur)
	}

	// Expiry denies at once: the test ages the grant in the catalog.
	sam.must(t, append([]string{"grant", ds, res.name, "--until", day(5)}, appl...)...)
	fetchOK()
	r, err := s.catalogDB(t).Exec(`UPDATE grants SET valid_from = ?, until = ? WHERE dataset_id = ? AND "user" = ? AND revoked_at IS NULL AND superseded_by IS NULL`,
		day(-10), day(-1), ds, res.name)
	if err != nil {
		t.Fatalf("ageing the grant: %v", err)
	}
	if n, _ := r.RowsAffected(); n != 1 {
		t.Fatalf("ageing the grant: %d rows", n)
	}
	fetchRefused(res, "expired", day(-1))
	if !dozodLogHas(t, s, `"user":"`+res.name+`"`, `"action":"file.fetch"`, `"result":"refused"`) {
		t.Error("dozod logged no refused fetch")
	}

	// A user freeze: refused at once with a clear message; whoami says so;
	// no grant can be given; unfreeze restores.
	sam.must(t, append([]string{"grant", ds, res.name, "--until", day(20)}, appl...)...)
	fetchOK()
	admin.refused(t, "admin", "freeze", "--user", res.name) // a reason is required
	sam.refused(t, "admin", "freeze", "--user", res.name, "--reason", "not an admin")
	admin.must(t, "admin", "freeze", "--user", res.name, "--reason", "laptop stolen, incident 12")
	fetchRefused(res, "access frozen by an administrator")
	res.refused(t, "ls", ds)
	var me api.User
	if err := json.Unmarshal([]byte(res.must(t, "whoami", "--json")), &me); err != nil || !me.Frozen {
		t.Fatalf("whoami of a frozen user: %+v %v", me, err)
	}
	line = sam.refused(t, append([]string{"grant", ds, res.name, "--until", day(25)}, appl...)...)
	if !strings.Contains(line, "frozen") {
		t.Errorf("grant to a frozen user: %q", line)
	}
	var fz []api.Freeze
	json.Unmarshal([]byte(admin.must(t, "admin", "frozen", "--json")), &fz)
	if !slices.ContainsFunc(fz, func(f api.Freeze) bool { return f.Kind == "user" && f.Name == res.name && f.FrozenBy == admin.name }) {
		t.Fatalf("admin frozen does not list the freeze: %+v", fz)
	}
	admin.must(t, "admin", "unfreeze", "--user", res.name, "--reason", "incident 12 closed")
	fetchOK()
	if !dozodLogHas(t, s, `"user":"`+admin.name+`"`, `"action":"admin.freeze"`, `"object":"freeze/user/`+res.name+`"`, `"result":"ok"`) ||
		!dozodLogHas(t, s, `"action":"admin.unfreeze"`, `"object":"freeze/user/`+res.name+`"`, `"result":"ok"`) {
		t.Error("dozod logged no freeze/unfreeze record")
	}

	// A dataset freeze: no reads, uploads or grants for anyone; a stranger
	// still sees only "not found"; revoking stays possible.
	admin.must(t, "admin", "freeze", "--dataset", ds, "--reason", "suspected leak, incident 13")
	fetchRefused(res, "access frozen by an administrator", ds)
	sam.refused(t, "ls", ds)
	src2 := filepath.Join(t.TempDir(), "more.vcf")
	writeRandomFile(t, src2, 42, 1000, nil)
	if line := sam.refused(t, "upload", "--dataset", ds, src2); !strings.Contains(line, "frozen") {
		t.Errorf("upload to a frozen dataset: %q", line)
	}
	sam.refused(t, append([]string{"grant", ds, stranger.name, "--until", day(5)}, appl...)...)
	strangerLine := fetchRefused(stranger, "not found")
	missingLine := stranger.refused(t, "fetch", "JGAD000000000/sample.vcf", "-o", out)
	if strings.Contains(strangerLine, "frozen") || strings.ReplaceAll(strangerLine, ds, "X") != strings.ReplaceAll(missingLine, "JGAD000000000", "X") {
		t.Errorf("a stranger can tell the frozen dataset exists:\n%s\n%s", strangerLine, missingLine)
	}
	if !strings.Contains(sam.must(t, "dataset", "show", ds), "FROZEN") {
		t.Error("dataset show does not say frozen")
	}
	admin.must(t, "admin", "unfreeze", "--dataset", ds, "--reason", "incident 13: no leak")
	fetchOK()
	var all []api.Freeze
	json.Unmarshal([]byte(admin.must(t, "admin", "frozen", "--all", "--json")), &all)
	if n := len(slices.DeleteFunc(all, func(f api.Freeze) bool { return f.Name != ds && f.Name != res.name })); n != 2 {
		t.Errorf("freeze history holds %d of our freezes, want 2", n)
	}

	// The register exports as CSV with every row of the JSON.
	hist = grantsJSON(t, sam, ds, "--history")
	rows, err := csv.NewReader(strings.NewReader(sam.must(t, "grants", ds, "--history", "--csv"))).ReadAll()
	if err != nil {
		t.Fatalf("CSV export does not parse: %v", err)
	}
	if len(rows) != len(hist)+1 || !slices.Equal(rows[0], api.GrantCSVHeader) {
		t.Fatalf("CSV has %d rows for %d grants; header %v", len(rows), len(hist), rows[0])
	}
	for i, g := range hist {
		row := rows[i+1]
		if row[1] != ds || row[2] != res.name || row[3] != g.ApplicationID || row[7] != g.State || row[6] != g.Until.Format(time.DateOnly) {
			t.Errorf("CSV row %d %v does not match %+v", i, row, g)
		}
	}
	// The researcher's own register holds exactly their rows.
	if mine := grantsJSON(t, res, "--history"); len(mine) != len(hist) {
		t.Errorf("researcher sees %d of their %d grant rows", len(mine), len(hist))
	}
	if theirs := grantsJSON(t, stranger, "--history"); len(theirs) != 0 {
		t.Errorf("a stranger sees %d grant rows", len(theirs))
	}
	sam.must(t, "revoke", ds, res.name, "--reason", "end of test")
}

// TestDatasetNBDCBadInput: bad NBDC metadata is refused by the CLI and by
// dozod itself, and creates nothing.
func TestDatasetNBDCBadInput(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	base := newDatasetID()
	for i, args := range [][]string{
		{"--access-level", "open"},
		{"--jgad", "JGAD12345"},
		{"--jgap", "JGAS000001"},
		{"--max-use-days", "400"},
		{"--max-use-days", "0"},
	} {
		id := base + string(rune('a'+i))
		sam.refused(t, append([]string{"dataset", "create", id, "--title", "bad"}, args...)...)
		sam.refused(t, "dataset", "show", id)
	}
	// Past the CLI: dozod's own checks.
	tok, err := os.ReadFile(filepath.Join(sam.dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	hc := s.brokerHTTP(t)
	for i, req := range []api.CreateDatasetRequest{
		{ID: base + "x", Title: "t", AccessLevel: "controlled-type3"},
		{ID: base + "y", Title: "t", NBDCID: "JGAD1"},
		{ID: base + "z", Title: "t", MaxUseDays: 1000},
	} {
		body, _ := json.Marshal(req)
		hr, _ := http.NewRequest("POST", s.env["DOZO_BROKER"]+"/v1/datasets", bytes.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := hc.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("request %d: status %d, want 400", i, resp.StatusCode)
		}
		sam.refused(t, "dataset", "show", req.ID)
	}
}

// TestDatasetMembersCLI: a custodian gives a second user the submitter
// role, who can then upload, and takes it away again.
func TestDatasetMembersCLI(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	dave := s.newUser(t)
	dave.must(t, "keygen", "--classic")
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "members")
	src := filepath.Join(t.TempDir(), "x.vcf")
	writeRandomFile(t, src, 43, 1000, nil)
	dave.refused(t, "upload", "--dataset", ds, src)
	sam.must(t, "dataset", "member", "add", ds, dave.name, "--role", "submitter")
	var ms []api.Member
	if err := json.Unmarshal([]byte(sam.must(t, "dataset", "members", ds, "--json")), &ms); err != nil || len(ms) != 3 {
		t.Fatalf("members %+v %v", ms, err)
	}
	dave.must(t, "upload", "--dataset", ds, src)
	dave.refused(t, "dataset", "members", ds) // submitters do not manage roles
	sam.must(t, "dataset", "member", "remove", ds, dave.name, "--role", "submitter")
	src2 := filepath.Join(t.TempDir(), "y.vcf")
	writeRandomFile(t, src2, 44, 1000, nil)
	dave.refused(t, "upload", "--dataset", ds, src2)
	if line := sam.refused(t, "dataset", "member", "remove", ds, sam.name, "--role", "custodian"); !strings.Contains(line, "last custodian") {
		t.Errorf("removing the last custodian: %q", line)
	}
}
