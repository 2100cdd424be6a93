package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/scrub"
)

// scrubFilesDone returns when each finished file of a scrub run finished
// (done_at by seq), as the catalog has it.
func (db *catalogDB) scrubFilesDone(t testing.TB, run string) map[int]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT seq, done_at FROM scrub_files WHERE run_id = ? AND done_at IS NOT NULL`, run)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var seq int
		var at int64
		if err := rows.Scan(&seq, &at); err != nil {
			t.Fatal(err)
		}
		out[seq] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitScrubFileDone waits, two minutes at most, for a file of a scrub run
// to be done.
func (db *catalogDB) waitScrubFileDone(t testing.TB, run string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for len(db.scrubFilesDone(t, run)) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no file finished")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestShardedScrubAcrossReplicas: a paced deep scrub cut into four shards
// runs on two replicas on PostgreSQL, one shard on each at once (the jobs
// table names both as owners). Replica A is SIGKILLed in the middle of
// its shard; replica B takes that shard over after the lease and resumes
// it, then the shards left and the run's own job: every file is checked
// exactly once (those finished before the kill keep their record), the
// run ends done with one audit record of its end, and the chain
// verifies.
func TestShardedScrubAcrossReplicas(t *testing.T) {
	t.Setenv("DOZOD_SCRUB_SHARDS", "4")
	p := newReplicaPair(t)
	s := p.s
	sam, _ := s.users(t)
	admin := s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	a, b := p.urls[0], p.urls[1]
	db := &catalogDB{DB: p.db, postgres: true}
	ds := newDatasetID()
	sam.must(t, "--broker", a, "dataset", "create", ds, "--title", "sharded scrub test", "--segment-size", "1MiB")
	const n = 8
	sam.uploadRandomFiles(t, ds, t.TempDir(), "sample%02d.cram", n, 400, func(i int) int64 { return 2*mib + int64(1000*(i+1)) }, "--broker", a)

	// 3 MiB of pieces per file at 2 MiB/s: about 1.5 s a file, 3 s a shard.
	var started api.ScrubRun
	if err := json.Unmarshal([]byte(admin.must(t, "--broker", a, "scrub", ds, "--deep", "--rate", "2MiB/s", "--detach", "--json")), &started); err != nil {
		t.Fatal(err)
	}
	run := started.ID
	pidA := fmt.Sprintf(":%d:", p.procs[0].Pid)
	// shards returns the shard jobs' state and owner by id.
	shards := func() map[string][2]string {
		out := map[string][2]string{}
		for i := 1; i <= 4; i++ {
			id := scrub.ShardID(run, i)
			var state, owner string
			if err := db.QueryRow(`SELECT state, "owner" FROM jobs WHERE id = ? AND kind = ?`, id, scrub.ShardKind).Scan(&state, &owner); err != nil {
				t.Fatalf("shard job %s: %v", id, err)
			}
			out[id] = [2]string{state, owner}
		}
		return out
	}
	// Wait for a shard running on each replica at once, and for a file of
	// A's shard to be done.
	var onA string
	owners := map[string]bool{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		running := map[string]string{} // owner -> shard
		for id, so := range shards() {
			if so[0] == api.JobRunning {
				running[so[1]] = id
				owners[so[1]] = true
			}
		}
		if len(running) > 2 {
			t.Fatalf("shards running on %d owners at once: %v", len(running), running)
		}
		onA = ""
		for owner, id := range running {
			if strings.Contains(owner, pidA) {
				onA = id
			}
		}
		if len(running) == 2 && onA != "" {
			var from, to int
			var params string
			if err := db.QueryRow(`SELECT params FROM jobs WHERE id = ?`, onA).Scan(&params); err != nil {
				t.Fatal(err)
			}
			var sp scrub.ShardParams
			if err := json.Unmarshal([]byte(params), &sp); err != nil {
				t.Fatal(err)
			}
			from, to = sp.From, sp.To
			doneInShard := 0
			for seq := range db.scrubFilesDone(t, run) {
				if seq >= from && seq < to {
					doneInShard++
				}
			}
			if doneInShard > 0 && doneInShard < to-from {
				break
			}
		}
		if state, _, _ := p.job(t, run); state != api.JobRunning && state != api.JobQueued {
			t.Skipf("the scrub ended (%s) before replica A could be killed in the middle of a shard", state)
		}
		if time.Now().After(deadline) {
			t.Fatalf("never one shard on each replica with A's shard under way: %v", shards())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(owners) != 2 {
		t.Fatalf("shards owned by %v, want both replicas", owners)
	}
	p.kill(t, 0)
	before := db.scrubFilesDone(t, run)
	if len(before) >= n {
		t.Skip("the scrub finished before replica A could be killed")
	}

	j := p.watchJob(t, admin, 1, run)
	if j.Kind != scrub.Kind || j.State != api.JobDone || j.Progress.Done != n || j.Progress.Total != n {
		t.Fatalf("sharded run's job: %+v", j)
	}
	var r api.ScrubRun
	if err := json.Unmarshal([]byte(admin.must(t, "--broker", b, "scrub", "status", run, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.State != api.ScrubDone || r.Summary.Files != n || r.Summary.FilesDone != n || r.Summary.Found != 0 || r.Summary.FileErrors != 0 ||
		r.Summary.Pieces != r.Summary.PiecesTotal || len(r.Shards) != 4 {
		t.Fatalf("sharded run: %s %+v %+v", r.State, r.Summary, r.Shards)
	}
	files := 0
	for _, sh := range r.Shards {
		if sh.State != api.JobDone || sh.FilesDone != sh.Files || sh.Owner == "" {
			t.Fatalf("shard %+v", sh)
		}
		files += sh.Files
		if sh.Job == onA && (sh.Attempts != 2 || strings.Contains(sh.Owner, pidA)) {
			t.Fatalf("the shard A was running when killed: %+v, want finished by B in attempt 2", sh)
		}
	}
	if files != n {
		t.Fatalf("shards cover %d files, want %d", files, n)
	}
	after := db.scrubFilesDone(t, run)
	if len(after) != n {
		t.Fatalf("%d of %d files done", len(after), n)
	}
	for seq, at := range before {
		if after[seq] != at {
			t.Fatalf("file %d, finished before the kill, was scrubbed again", seq)
		}
	}
	var ends, resumes int
	if err := db.QueryRow(`SELECT count(*) FROM audit WHERE action = 'scrub.run' AND object = ?`, "scrub/"+run).Scan(&ends); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM audit WHERE action = 'scrub.resume' AND object = ? AND detail LIKE 'shard %'`, "scrub/"+run).Scan(&resumes); err != nil {
		t.Fatal(err)
	}
	if ends != 1 || resumes < 1 {
		t.Fatalf("audit: %d scrub.run records (want 1), %d shard resumes (want at least 1)", ends, resumes)
	}
	if out := admin.must(t, "--broker", b, "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify after the sharded scrub:\n%s", out)
	}
	status := admin.must(t, "--broker", b, "scrub", "status", run)
	if !strings.Contains(status, "Checked in 4 shards") || !strings.Contains(status, scrub.ShardID(run, 4)) {
		t.Fatalf("dozo scrub status:\n%s", status)
	}
	if out := admin.must(t, "--broker", b, "jobs", "--kind", scrub.ShardKind); strings.Count(out, run+".shard") != 4 {
		t.Fatalf("dozo jobs does not list the four shards:\n%s", out)
	}
	t.Logf("%d of %d files were done when replica A was killed in %s", len(before), n, onA)
}
