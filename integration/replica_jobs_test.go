package integration

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// replicaPair is two dozods on one private PostgreSQL catalog with a
// short job lease, for take-over tests.
type replicaPair struct {
	s     *stack
	urls  []string
	procs []*os.Process
	db    *sql.DB
}

// newReplicaPair starts two replicas with a 3 s job lease (renewed every
// second; a dead replica's job is taken over within about 4 s).
func newReplicaPair(t *testing.T) *replicaPair {
	t.Helper()
	s := needStack(t)
	pgURL := privatePostgres(t)
	conf, err := os.ReadFile(filepath.Join(s.devDir, "dozod.toml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOZOD_JOBS_LEASE", "3s")
	p := &replicaPair{s: s}
	for i := range 2 {
		r := s.startReplicaProc(t, conf, pgURL, i)
		p.urls, p.procs = append(p.urls, r.URL), append(p.procs, r.Proc)
	}
	if p.db, err = sql.Open("pgx", pgURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.db.Close() })
	return p
}

// kill SIGKILLs replica i and waits for it to be gone (a zombie until the
// replica's cleanup reaps it).
func (p *replicaPair) kill(t *testing.T, i int) {
	t.Helper()
	pid := p.procs[i].Pid
	if err := p.procs[i].Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing replica %d: %v", i, err)
	}
	for n := 0; n < 100; n++ {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(st)); err != nil || len(f) > 2 && f[2] == "Z" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("replica %d (pid %d) still running after SIGKILL", i, pid)
}

// job returns a job's state, owner and progress as the catalog has them.
func (p *replicaPair) job(t *testing.T, id string) (state, owner string, done int64) {
	t.Helper()
	if err := p.db.QueryRow(`SELECT state, "owner", progress_done FROM jobs WHERE id = $1`, id).Scan(&state, &owner, &done); err != nil {
		t.Fatal(err)
	}
	return state, owner, done
}

// watchJob follows a job through replica i to its end.
func (p *replicaPair) watchJob(t *testing.T, u *user, i int, id string) api.Job {
	t.Helper()
	var j api.Job
	out := u.must(t, "--broker", p.urls[i], "jobs", "show", id, "--watch", "--json")
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return j
}

// TestScrubJobTakenOverByReplica: a paced deep scrub started on replica A
// is running there when A is SIGKILLed; replica B takes its job over once
// the lease has run out and finishes the run: every file is checked once
// (those finished before the kill keep their record), nothing is found,
// and the job shows two attempts.
func TestScrubJobTakenOverByReplica(t *testing.T) {
	t.Setenv("DOZOD_SCRUB_SHARDS", "1") // a run in one job; TestShardedScrubAcrossReplicas cuts one
	p := newReplicaPair(t)
	s := p.s
	sam, _ := s.users(t)
	admin := s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	a, b := p.urls[0], p.urls[1]
	ds := newDatasetID()
	sam.must(t, "--broker", a, "dataset", "create", ds, "--title", "replica scrub test", "--segment-size", "1MiB")
	const n = 6
	sam.uploadRandomFiles(t, ds, t.TempDir(), "sample%02d.cram", n, 200, func(i int) int64 { return 3*mib + int64(1000*(i+1)) }, "--broker", a)

	var started api.ScrubRun
	if err := json.Unmarshal([]byte(admin.must(t, "--broker", a, "scrub", ds, "--deep", "--rate", "3MiB/s", "--detach", "--json")), &started); err != nil {
		t.Fatal(err)
	}
	db := &catalogDB{DB: p.db, postgres: true}
	doneAt := func() map[int]int64 { return db.scrubFilesDone(t, started.ID) }
	db.waitScrubFileDone(t, started.ID)
	state, ownerA, _ := p.job(t, started.ID)
	if state != api.JobRunning || ownerA == "" {
		t.Fatalf("scrub job on A: %s owner %q", state, ownerA)
	}
	p.kill(t, 0)
	before := doneAt()
	if len(before) >= n {
		t.Skip("the scrub finished before replica A could be killed")
	}

	j := p.watchJob(t, admin, 1, started.ID)
	if j.Kind != "scrub" || j.State != api.JobDone || j.Attempts != 2 || j.Progress.Done != n || j.Progress.Total != n {
		t.Fatalf("taken-over scrub job: %+v", j)
	}
	var r api.ScrubRun
	if err := json.Unmarshal([]byte(admin.must(t, "--broker", b, "scrub", "status", started.ID, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.State != api.ScrubDone || r.Summary.FilesDone != n || r.Summary.Found != 0 || r.Summary.FileErrors != 0 || r.Summary.Pieces != r.Summary.PiecesTotal {
		t.Fatalf("taken-over run: %s %+v", r.State, r.Summary)
	}
	after := doneAt()
	for seq, at := range before {
		if after[seq] != at {
			t.Fatalf("file %d, finished before the kill, was scrubbed again", seq)
		}
	}
	if out := admin.must(t, "--broker", b, "jobs", "--kind", "scrub"); !strings.Contains(out, started.ID) {
		t.Fatalf("dozo jobs does not list the scrub:\n%s", out)
	}
	t.Logf("%d of %d files were done when replica A was killed", len(before), n)
}

// TestRotationJobTakenOverByReplica: a key rotation of a dataset of many
// files started on replica A is running there when A is SIGKILLed;
// replica B takes its job over after the lease and finishes it: the key
// is rotated once (one new version) and every header ends under it.
func TestRotationJobTakenOverByReplica(t *testing.T) {
	p := newReplicaPair(t)
	s := p.s
	sam, _ := s.users(t)
	a := p.urls[0]
	ds := newDatasetID()
	sam.must(t, "--broker", a, "dataset", "create", ds, "--title", "replica rotation test")
	const n = 120
	sam.uploadRandomFiles(t, ds, t.TempDir(), "s%03d.vcf", n, 300, func(int) int64 { return 200 }, "--broker", a)

	rot := make(chan error, 1)
	go func() {
		_, _, err := sam.dozo("--broker", a, "dataset", "rotate-key", ds)
		rot <- err
	}()
	var id, owner string
	deadline := time.Now().Add(time.Minute)
	for {
		var state string
		var done int64
		err := p.db.QueryRow(`SELECT id, state, "owner", progress_done FROM jobs WHERE kind = 'rotate-key' AND dataset_id = $1`, ds).Scan(&id, &state, &owner, &done)
		if err == nil && state != api.JobRunning {
			t.Skipf("the rotation ended (%s) before replica A could be killed", state)
		}
		if err == nil && done > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rotation job under way: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill(t, 0)
	if err := <-rot; err == nil {
		t.Log("the rotation's client was answered before the kill")
	}
	j := p.watchJob(t, sam, 1, id)
	if j.State != api.JobDone || j.Attempts != 2 {
		t.Fatalf("taken-over rotation job: %+v", j)
	}
	var res api.RotateKeyResponse
	if err := json.Unmarshal(j.Result, &res); err != nil {
		t.Fatalf("result %s: %v", j.Result, err)
	}
	if res.ToVersion != 2 {
		t.Fatalf("rotated to version %d, want 2 (rotated once): %+v", res.ToVersion, res)
	}
	rows, err := p.db.Query(`SELECT name, header_object FROM files WHERE dataset_id = $1 AND state = 'available'`, ds)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	count := 0
	for rows.Next() {
		var name string
		var hdr []byte
		if err := rows.Scan(&name, &hdr); err != nil {
			t.Fatal(err)
		}
		count++
		if v := transitStanza(t, hdr); !strings.HasPrefix(v, "vault:v2:") {
			t.Errorf("%s: header under %.10s after the taken-over rotation", name, v)
		}
	}
	if count != n {
		t.Fatalf("%d files, want %d", count, n)
	}
}
