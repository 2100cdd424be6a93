package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/lifecycle"
	"github.com/dozo-vault/dozo/vault"
)

// TestDeletionJobTakenOverByReplica: the deletion of a dataset of many
// objects is purging them on one replica when that replica is SIGKILLed;
// the other replica takes its job over after the lease and finishes it:
// every object version of the dataset is gone from every target, the
// Vault key is destroyed, the report lists every object version that was
// stored exactly once, and the audit chain verifies.
func TestDeletionJobTakenOverByReplica(t *testing.T) {
	p := newReplicaPair(t)
	s := p.s
	sam, _ := s.users(t)
	admin := s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	a := p.urls[0]
	ds := newDatasetID()
	key := "dozo-ds-" + ds
	sam.must(t, "--broker", a, "dataset", "create", ds, "--title", "replica deletion test")
	dir := t.TempDir()
	const n = 120
	sam.uploadRandomFiles(t, ds, dir, "s%03d.vcf", n, 500, func(int) int64 { return 200 }, "--broker", a)
	stored := s.allVersions(t, ds)
	if len(stored) < n {
		t.Fatalf("%d object versions stored for %d files", len(stored), n)
	}

	// Scheduled, then run on A once the grace period is over.
	var st api.DeletionStatus
	if err := json.Unmarshal([]byte(sam.must(t, "--broker", a, "dataset", "delete", ds, "--confirm", ds, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != api.DeletionScheduled {
		t.Fatalf("schedule: %+v", st)
	}
	if g := st.RunsAt.Sub(st.ScheduledAt); g > 2*time.Minute {
		t.Fatalf("the stack's deletion grace period is %v; this test needs seconds (scripts/dev.sh: DOZO_DEV_DELETION_GRACE)", g)
	}
	time.Sleep(max(time.Until(st.RunsAt), 0) + 200*time.Millisecond)
	run := make(chan error, 1)
	go func() {
		_, _, err := sam.dozo("--broker", a, "dataset", "delete", ds, "--confirm", ds, "--report", filepath.Join(dir, "first"))
		run <- err
	}()

	// Mid-purge: some objects removed and recorded, the job still running.
	// Either replica's reaper may have taken the run first; the one whose
	// process owns the job is killed.
	var id, owner string
	deadline := time.Now().Add(time.Minute)
	for {
		var state string
		var purged int
		err := p.db.QueryRow(`SELECT j.id, j.state, j."owner", (SELECT count(*) FROM deleted_objects d WHERE d.dataset_id = $2)
			FROM jobs j WHERE j.kind = $1 AND j.dataset_id = $2 ORDER BY (j.state = 'running') DESC LIMIT 1`,
			lifecycle.KindDeleteDataset, ds).Scan(&id, &state, &owner, &purged)
		if err == nil && state != api.JobRunning {
			t.Skipf("the deletion ended (%s) before its replica could be killed", state)
		}
		if err == nil && purged > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no deletion job under way: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	victim := -1
	for i, pr := range p.procs {
		if strings.Contains(owner, fmt.Sprintf(":%d:", pr.Pid)) {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("job %s is owned by %q, neither replica", id, owner)
	}
	p.kill(t, victim)
	other := 1 - victim
	var purgedAtKill int
	p.db.QueryRow(`SELECT count(*) FROM deleted_objects WHERE dataset_id = $1`, ds).Scan(&purgedAtKill)
	if victim == 0 {
		if err := <-run; err == nil {
			t.Log("the deletion's client was answered before the kill")
		}
	}

	j := p.watchJob(t, sam, other, id)
	if j.Kind != lifecycle.KindDeleteDataset || j.State != api.JobDone || j.Attempts != 2 {
		t.Fatalf("taken-over deletion job: %+v", j)
	}
	b := p.urls[other]
	if left := s.allVersions(t, ds); len(left) != 0 {
		t.Fatalf("after the taken-over deletion %d object versions remain: %v", len(left), left)
	}
	if _, err := s.vault(t).ReadKey(testContext(t), key); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("key still in Vault after the taken-over deletion: %v", err)
	}

	sam.must(t, "--broker", b, "dataset", "deletion-report", ds, "--report", filepath.Join(dir, "rep"))
	raw, err := os.ReadFile(filepath.Join(dir, "rep.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep api.DeletionReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, raw)
	}
	listed := map[string]int{}
	for _, o := range rep.Objects {
		listed[o.Target+"/"+o.Key+"@"+o.VersionID]++
	}
	for obj, c := range listed {
		if c != 1 {
			t.Errorf("the report lists %s %d times", obj, c)
		}
	}
	for _, v := range stored {
		if listed[v] == 0 {
			t.Errorf("the report does not list %s", v)
		}
	}
	if len(rep.Objects) != len(stored) {
		t.Errorf("the report lists %d objects; %d were stored", len(rep.Objects), len(stored))
	}
	if rep.Status != "complete" || rep.Key.Name != key || rep.Key.DestroyedAt.IsZero() || len(rep.Files) != n {
		t.Errorf("report: status %q key %+v, %d files", rep.Status, rep.Key, len(rep.Files))
	}
	if out := admin.must(t, "--broker", b, "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify after the taken-over deletion:\n%s", out)
	}
	t.Logf("%d of %d object versions were purged when replica %d was killed", purgedAtKill, len(stored), victim)
}
