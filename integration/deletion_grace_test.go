package integration

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/broker"
	"github.com/dozo-vault/dozo/vault"
)

// deleteWhenDue repeats `dozo dataset delete ID --confirm ID` until the
// deletion has run: while it is scheduled it waits for its due time, and
// while dozod's reaper is running it, a moment. It returns the final
// status, or the first other refusal line.
func deleteWhenDue(t testing.TB, u *user, ds string, extra ...string) (*api.DeletionStatus, string) {
	t.Helper()
	for range 100 {
		out, errOut, err := u.dozo(append([]string{"dataset", "delete", ds, "--confirm", ds, "--json"}, extra...)...)
		if err != nil {
			line := strings.TrimSpace(errOut)
			if strings.Contains(line, "already running") {
				time.Sleep(time.Second)
				continue
			}
			return nil, line
		}
		var st api.DeletionStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("delete --json: %v: %s", err, out)
		}
		switch {
		case st.State == api.DeletionComplete && st.Report != nil:
			return &st, ""
		case st.State != api.DeletionScheduled:
			t.Fatalf("delete: %+v", st)
		case st.RunsAt.Sub(st.ScheduledAt) > 2*time.Minute:
			t.Fatalf("the stack's deletion grace period is %v; these tests need seconds (scripts/dev.sh: DOZO_DEV_DELETION_GRACE)", st.RunsAt.Sub(st.ScheduledAt))
		}
		time.Sleep(max(time.Until(st.RunsAt), 0) + 200*time.Millisecond)
	}
	t.Fatalf("deletion of %s never ran", ds)
	return nil, ""
}

// TestDeletionGrace: through the CLI on the real stack, `dozo dataset
// delete` hides the dataset from its grantee at once and destroys nothing;
// `dozo dataset delete --cancel` brings it back as it was (the grantee
// fetches the same bytes, the grant keeps its dates); scheduled again, it
// runs when the grace period ends: every object version and the Vault key
// are gone, it can no longer be cancelled, and its report states what it
// cannot reach.
func TestDeletionGrace(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	admin := s.admin(t)
	ds := newDatasetID()
	key := "dozo-ds-" + ds
	dir := t.TempDir()
	sam.must(t, "dataset", "create", ds, "--title", "grace test", "--segment-size", "1MiB")
	src := filepath.Join(dir, "g.vcf")
	sha := writeRandomFile(t, src, 77, 2*mib+5, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	until := time.Now().AddDate(0, 0, 7).Format(time.DateOnly)
	sam.must(t, "grant", ds, rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
	rita.must(t, "fetch", ds+"/g.vcf", "-o", filepath.Join(dir, "a.vcf"))
	grantsBefore := sam.must(t, "grants", ds, "--json")
	versions := s.allVersions(t, ds)

	// Scheduled: hidden from the grantee, and nothing destroyed.
	var st api.DeletionStatus
	if err := json.Unmarshal([]byte(sam.must(t, "dataset", "delete", ds, "--confirm", ds, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != api.DeletionScheduled || st.ScheduledBy != sam.name || !st.RunsAt.After(st.ScheduledAt) {
		t.Fatalf("schedule: %+v", st)
	}
	line := rita.refused(t, "fetch", ds+"/g.vcf", "-o", filepath.Join(dir, "b.vcf"))
	missing := rita.refused(t, "fetch", "JGAD999999999/g.vcf", "-o", filepath.Join(dir, "b.vcf"))
	if strings.ReplaceAll(missing, "JGAD999999999", ds) != line {
		t.Errorf("grantee's refusal differs from a missing dataset's:\n  %s\n  %s", line, missing)
	}
	rita.refused(t, "ls", ds)
	if out := rita.must(t, "dataset", "list"); strings.Contains(out, ds) {
		t.Errorf("rita still lists %s:\n%s", ds, out)
	}
	if line := sam.refused(t, "dataset", "show", ds); !strings.Contains(line, "deletion scheduled at") || !strings.Contains(line, "runs at") {
		t.Errorf("custodian's view of the scheduled dataset: %s", line)
	}
	if _, err := s.vault(t).ReadKey(testContext(t), key); err != nil {
		t.Fatalf("key gone while scheduled: %v", err)
	}
	if got := s.allVersions(t, ds); len(got) != len(versions) {
		t.Fatalf("objects changed while scheduled: %d -> %d", len(versions), len(got))
	}

	// Cancelled: as it was.
	rita.refused(t, "dataset", "undelete", ds)
	if out := sam.must(t, "dataset", "delete", "--cancel", ds); !strings.Contains(out, "Cancelled the deletion of "+ds) {
		t.Errorf("cancel: %s", out)
	}
	rita.must(t, "fetch", ds+"/g.vcf", "-o", filepath.Join(dir, "c.vcf"))
	if fileSHA(t, filepath.Join(dir, "c.vcf")) != sha {
		t.Fatal("fetched bytes differ after the cancel")
	}
	if after := sam.must(t, "grants", ds, "--json"); after != grantsBefore {
		t.Errorf("grants changed:\n%s\n%s", grantsBefore, after)
	}
	if got := s.allVersions(t, ds); len(got) != len(versions) {
		t.Fatalf("objects changed by schedule and cancel: %d -> %d", len(versions), len(got))
	}

	// Scheduled again by an admin, run once due.
	admin.must(t, "dataset", "delete", ds, "--confirm", ds)
	done, line := deleteWhenDue(t, sam, ds, "--report", filepath.Join(dir, "rep"))
	if done == nil {
		t.Fatalf("deletion: %s", line)
	}
	rep := done.Report
	if left := s.allVersions(t, ds); len(left) != 0 {
		t.Fatalf("after deletion %d object versions remain", len(left))
	}
	if _, err := s.vault(t).ReadKey(testContext(t), key); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("key still in Vault: %v", err)
	}
	if rep.StartedBy != admin.name || rep.RunStartedAt.Before(done.RunsAt) || !strings.Contains(rep.Statement, broker.DeletionLimits) ||
		strings.Contains(rep.Statement, "no remaining copy") {
		t.Errorf("report: %+v", rep)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "rep.txt"))
	if err != nil || !strings.Contains(string(txt), "Outside the reach of this deletion") {
		t.Errorf("text report: %v\n%s", err, txt)
	}
	if line := sam.refused(t, "dataset", "undelete", ds); !strings.Contains(line, "cannot be undone") {
		t.Errorf("undelete after the run: %s", line)
	}
	rita.refused(t, "fetch", ds+"/g.vcf", "-o", filepath.Join(dir, "d.vcf"))
	acts := map[string]bool{}
	for _, r := range auditList(t, admin, "--dataset", ds) {
		acts[r.Action] = true
	}
	for _, a := range []string{"dataset.delete.schedule", "dataset.delete.cancel", "dataset.undelete", "dataset.delete.start", "dataset.delete.done"} {
		if !acts[a] {
			t.Errorf("no %s record in the audit", a)
		}
	}
}
