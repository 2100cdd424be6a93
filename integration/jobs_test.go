package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
)

// TestLifecycleJobs: a key rotation and a deletion asked for with the CLI
// run as jobs in dozod; `dozo jobs` shows them to the dataset's custodian
// and to admins (not to a grantee), with their results, and an ended job
// cannot be cancelled.
func TestLifecycleJobs(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	admin := s.admin(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "jobs test")
	p := filepath.Join(t.TempDir(), "a.vcf")
	writeRandomFile(t, p, 71, 5000, nil)
	sam.must(t, "upload", "--dataset", ds, p)
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 0, 7).Format(time.DateOnly), "--application", "J-DU000001", "--institution", "NIG")
	if out := sam.must(t, "dataset", "rotate-key", ds); !strings.Contains(out, "version") {
		t.Fatalf("rotate-key output: %s", out)
	}

	jobsOf := func(u *user, args ...string) []api.Job {
		t.Helper()
		var js []api.Job
		out := u.must(t, append([]string{"jobs", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &js); err != nil {
			t.Fatalf("dozo jobs --json: %v\n%s", err, out)
		}
		return js
	}
	js := jobsOf(sam, "--dataset", ds)
	if len(js) != 1 || js[0].Kind != "rotate-key" || js[0].State != api.JobDone || js[0].RequestedBy != sam.name {
		t.Fatalf("sam's jobs: %+v", js)
	}
	var rot api.RotateKeyResponse
	if err := json.Unmarshal(js[0].Result, &rot); err != nil || rot.FromVersion != 1 || rot.ToVersion != 2 || rot.Rewrapped != 1 {
		t.Fatalf("rotation job result: %s (%v)", js[0].Result, err)
	}
	id := js[0].ID
	if got := jobsOf(rita, "--dataset", ds); len(got) != 0 {
		t.Fatalf("a grantee sees jobs: %+v", got)
	}
	if got := jobsOf(admin, "--dataset", ds); len(got) != 1 || got[0].ID != id {
		t.Fatalf("admin's jobs: %+v", got)
	}
	if out := sam.must(t, "jobs", "show", id); !strings.Contains(out, "rotate-key") || !strings.Contains(out, "done") {
		t.Fatalf("dozo jobs show: %s", out)
	}
	if out := sam.must(t, "jobs"); !strings.Contains(out, id) {
		t.Fatalf("dozo jobs does not list %s:\n%s", id, out)
	}
	if line := sam.refused(t, "jobs", "cancel", id); !strings.Contains(line, "already ended") {
		t.Fatalf("cancel of an ended job: %s", line)
	}
	rita.refused(t, "jobs", "show", id)
}

// TestLifecycleJobTakenOver: a rotation job left running by a dozod that
// died (its lease expired) is taken over by the running dozod, which
// finishes it: every header ends under the new key version.
func TestLifecycleJobTakenOver(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "take-over test")
	p := filepath.Join(t.TempDir(), "a.vcf")
	writeRandomFile(t, p, 72, 3000, nil)
	sam.must(t, "upload", "--dataset", ds, p)

	ctx := testContext(t)
	cat := s.openCatalogAPI(t)
	id := "job-takeover" + ds
	now := time.Now()
	if err := cat.InsertJob(ctx, catalog.Job{ID: id, Kind: "rotate-key", DatasetID: ds, LockKey: "dataset/" + ds,
		RequestedBy: sam.name, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// Claimed by a dozod that then died: its lease ran out a minute ago.
	if _, err := cat.ClaimJob(ctx, "dead-host:1:00000000", []string{"rotate-key"}, id, now.Add(-2*time.Minute), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	var j api.Job
	out := sam.must(t, "jobs", "show", id, "--watch", "--json")
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if j.State != api.JobDone || j.Attempts != 2 || j.Owner != "" {
		t.Fatalf("taken-over job: %+v", j)
	}
	for name, f := range s.catalogFiles(t, ds) {
		if v := transitStanza(t, f.header); !strings.HasPrefix(v, "vault:v2:") {
			t.Errorf("%s: header under %.10s after the taken-over rotation", name, v)
		}
	}
}
