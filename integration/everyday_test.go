package integration

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// TestAuditFetchByName: after an upload and a fetch, the custodian's
// `audit list --csv --file NAME` shows the fetch under the file's name and
// a client-reported completion with the bytes written; the table fits 120
// columns.
func TestAuditFetchByName(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "everyday audit")
	src := filepath.Join(t.TempDir(), "NA12878.chr20.vcf")
	const size = 3*mib + 17
	want := writeRandomFile(t, src, 77, size, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().UTC().AddDate(0, 2, 0).Format(time.DateOnly),
		"--application", "J-DU000001", "--institution", "NIG")
	out := filepath.Join(t.TempDir(), "out.vcf")
	rita.must(t, "fetch", ds+"/NA12878.chr20.vcf", "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("fetched file differs")
	}

	csvOut := sam.must(t, "audit", "list", "--dataset", ds, "--csv", "--file", "NA12878.chr20.vcf")
	rows, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, csvOut)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if strings.Join(rows[0], ",") != strings.Join(api.AuditCSVHeader, ",") {
		t.Fatalf("header %q", rows[0])
	}
	var fetch, done []string
	for _, r := range rows[1:] {
		if r[col["file"]] != "NA12878.chr20.vcf" {
			t.Errorf("a row of another file: %q", r)
		}
		if strings.Contains(r[col["action"]], "presign") {
			t.Errorf("a presign row in the default view: %q", r)
		}
		switch {
		case r[col["user"]] == rita.name && r[col["action"]] == "file.fetch":
			fetch = r
		case r[col["user"]] == rita.name && r[col["action"]] == api.ActionFetchDone:
			done = r
		}
	}
	if fetch == nil || fetch[col["result"]] != "ok" {
		t.Fatalf("no fetch of the file by name in:\n%s", csvOut)
	}
	if done == nil || done[col["result"]] != "client-reported" || !strings.HasPrefix(done[col["detail"]], strconv.Itoa(size)+" bytes in ") ||
		!strings.HasSuffix(done[col["detail"]], ", verified") {
		t.Fatalf("no completion with %d bytes in:\n%s", size, csvOut)
	}
	if _, err := time.Parse(time.RFC3339, done[col["time"]]); err != nil {
		t.Errorf("time %q: %v", done[col["time"]], err)
	}

	// The table: the name, at most 120 columns; --all adds the presigns.
	table := sam.must(t, "audit", "list", "--dataset", ds)
	for _, l := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		if n := len([]rune(l)); n > 120 {
			t.Errorf("table line of %d columns: %q", n, l)
		}
	}
	if !strings.Contains(table, "NA12878.chr20.vcf") || strings.Contains(table, "presign") || strings.Contains(table, "audit.list") {
		t.Errorf("default table:\n%s", table)
	}
	// A range fetch presigns in a batch call of its own (a whole fetch
	// of this one-window file gets its URLs with the fetch call).
	rita.must(t, "fetch", ds+"/NA12878.chr20.vcf", "-o", filepath.Join(t.TempDir(), "part"), "--range", "0-99")
	if all := sam.must(t, "audit", "list", "--dataset", ds, "--all"); !strings.Contains(all, "fetch.presign-batch") || !strings.Contains(all, "audit.list") {
		t.Errorf("--all lacks presign or audit-list rows:\n%s", all)
	}
	// The chain verifies with the client-reported record in it.
	admin := s.admin(t)
	admin.must(t, "audit", "verify")
}

// TestScheduledGrantCLI: a custodian books the next period while the
// current one runs; the register shows it scheduled beside the running
// one, the grantee keeps reading, is warned that nothing else follows only
// while that is true, and sees whom to ask.
func TestScheduledGrantCLI(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "fiscal year")
	src := filepath.Join(t.TempDir(), "a.vcf")
	writeRandomFile(t, src, 78, 1000, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	appl := []string{"--application", "J-DU000001", "--institution", "NIG"}
	// Leave no expiring grant behind for other tests' users.
	t.Cleanup(func() { sam.dozo("revoke", ds, rita.name, "--reason", "test over") })

	sam.must(t, append([]string{"grant", ds, rita.name, "--until", day(10)}, appl...)...)
	// Warned: the grant ends within 30 days and nothing follows it.
	os.Remove(filepath.Join(rita.dir, "warned-on"))
	_, errOut, err := rita.dozo("ls", ds)
	if err != nil || !strings.Contains(errOut, "dozo: warning: your grant on "+ds+" ends on "+day(10)+" (in 10 days)") {
		t.Fatalf("no warning (%v): %q", err, errOut)
	}
	if _, errOut, _ := rita.dozo("ls", ds); strings.Contains(errOut, "warning") {
		t.Errorf("warned twice in a day: %q", errOut)
	}
	if exp := grantsJSON(t, sam, ds, "--expiring", "30d"); len(exp) != 1 || exp[0].User != rita.name {
		t.Errorf("--expiring 30d: %+v", exp)
	}

	// Overlapping the running grant is refused and changes nothing.
	line := sam.refused(t, append([]string{"grant", ds, rita.name, "--from", day(10), "--until", day(100)}, appl...)...)
	if !strings.Contains(line, "overlap") || !strings.Contains(line, day(11)) {
		t.Errorf("overlap refusal: %q", line)
	}
	got := sam.must(t, append([]string{"grant", ds, rita.name, "--from", day(11), "--until", day(200), "--reason", "next fiscal year"}, appl...)...)
	if !strings.Contains(got, "(scheduled)") {
		t.Errorf("grant output: %q", got)
	}
	gs := grantsJSON(t, sam, ds)
	if len(gs) != 2 || gs[0].State != api.GrantActive || gs[0].Until.Format(time.DateOnly) != day(10) ||
		gs[1].State != api.GrantScheduled || gs[1].From != day(11) || gs[1].Follows != gs[0].ID {
		t.Fatalf("register: %+v", gs)
	}
	if table := sam.must(t, "grants", ds); !strings.Contains(table, "scheduled after #") {
		t.Errorf("grants table:\n%s", table)
	}
	rita.must(t, "ls", ds) // the running grant was not cut
	if exp := grantsJSON(t, sam, ds, "--expiring", "30d"); len(exp) != 0 {
		t.Errorf("--expiring lists a grant with its next period booked: %+v", exp)
	}
	os.Remove(filepath.Join(rita.dir, "warned-on"))
	// (Other tests' short grants to the shared researcher may warn too.)
	if _, errOut, _ := rita.dozo("ls", ds); strings.Contains(errOut, "grant on "+ds) {
		t.Errorf("warned with the next period booked: %q", errOut)
	}

	// Whom to ask: the grantee sees the custodians.
	var d api.Dataset
	if err := json.Unmarshal([]byte(rita.must(t, "dataset", "show", ds, "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Custodians) != 1 || d.Custodians[0] != sam.name {
		t.Errorf("custodians %q", d.Custodians)
	}
	if show := rita.must(t, "dataset", "show", ds); !strings.Contains(show, "custodians") || !strings.Contains(show, sam.name) {
		t.Errorf("dataset show:\n%s", show)
	}
}
