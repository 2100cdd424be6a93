package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/internal/envconfig"
	"github.com/dozo-vault/dozo/scrub"
	"github.com/dozo-vault/dozo/storage"
)

// newScrubEnv is newEnv with cfg as the [scrub] section and no log kept.
func newScrubEnv(t *testing.T, cfg ScrubConfig) *env {
	t.Helper()
	e, _ := newEnvOn(t, asDirTarget, func(_ *env, o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.Scrub = cfg
	})
	return e
}

// waitScrub polls a run until it is no longer running.
func (e *env) waitScrub(id string) api.ScrubRun {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var r api.ScrubRun
		e.must(200, "tok-admin", "GET", "/v1/scrubs/"+id, nil, &r)
		if r.State != api.ScrubRunning {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("scrub %s still running: %+v", id, r.Summary)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitJob polls a job until it has ended. A scrub run's record ends
// inside its job's handler, so the job itself is marked done a moment
// after the run reads done.
func (e *env) waitJob(id string) api.Job {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var j api.Job
		e.must(200, "tok-admin", "GET", "/v1/jobs/"+id, nil, &j)
		if j.State != api.JobQueued && j.State != api.JobRunning {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s has not ended: %+v", id, j)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) scrub(req api.ScrubRequest) api.ScrubRun {
	e.t.Helper()
	var r api.ScrubRun
	e.must(202, "tok-admin", "POST", "/v1/scrubs", req, &r)
	// A small run may be over before the answer to its start is written:
	// the answer then says so.
	if r.State != api.ScrubRunning && r.State != api.ScrubDone || r.ID == "" {
		e.t.Fatalf("started scrub %+v", r)
	}
	return e.waitScrub(r.ID)
}

// piecePath is where piece j of segment i of a file lives, by the
// catalog's manifest.
func (e *env) manifest(fileID string) *storage.Manifest {
	e.t.Helper()
	f, err := e.cat.File(context.Background(), fileID)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := storage.ParseManifest(f.Manifest)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) piecePath(m *storage.Manifest, i, j int) string {
	for _, t := range e.targets {
		if t.ID() == m.Segments[i].Pieces[j].Target {
			return filepath.Join(t.(*storage.DirTarget).Dir(), storage.PieceKey(m.DatasetID, m.FileID, i, j))
		}
	}
	e.t.Fatalf("no target for segment %d piece %d", i, j)
	return ""
}

func findingKeys(fs []api.ScrubFinding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s/%d/%d/%s", f.FileID, f.Segment, f.Piece, f.Kind))
	}
	sort.Strings(out)
	return out
}

func TestScrubFindRepairAndDamage(t *testing.T) {
	e := newScrubEnv(t, ScrubConfig{})
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	var files []api.File
	for i := range 3 {
		files = append(files, e.upload("tok-sam", "JGAD1", fmt.Sprintf("f%d.bam", i), randBytes(3<<20+1000*(i+1)), randBytes(16), randBytes(16)))
	}

	// Only admins scrub; bad requests change nothing.
	e.must(403, "tok-sam", "POST", "/v1/scrubs", api.ScrubRequest{}, nil)
	e.must(403, "tok-sam", "GET", "/v1/scrubs", nil, nil)
	e.must(400, "tok-admin", "POST", "/v1/scrubs", api.ScrubRequest{File: "f0.bam"}, nil)
	e.must(400, "tok-admin", "POST", "/v1/scrubs", api.ScrubRequest{RateBytesPerSec: -1}, nil)
	e.must(400, "tok-admin", "POST", "/v1/scrubs", `{"deep":true,"bogus":1}`, nil)
	e.must(404, "tok-admin", "POST", "/v1/scrubs", api.ScrubRequest{Dataset: "JGAD9"}, nil)
	e.must(404, "tok-admin", "POST", "/v1/scrubs", api.ScrubRequest{Dataset: "JGAD1", File: "nope"}, nil)
	e.must(404, "tok-admin", "GET", "/v1/scrubs/scrub-nope", nil, nil)
	var runs []api.ScrubRun
	if e.must(200, "tok-admin", "GET", "/v1/scrubs", nil, &runs); len(runs) != 0 {
		t.Fatalf("refused requests recorded runs: %+v", runs)
	}

	clean := e.scrub(api.ScrubRequest{Deep: true})
	if clean.State != api.ScrubDone || clean.Summary.Files != 3 || clean.Summary.FilesDone != 3 || clean.Summary.Found != 0 ||
		clean.Summary.Segments != 12 || clean.Summary.Pieces != 12*6 || clean.Summary.Pieces != clean.Summary.PiecesTotal || clean.Summary.Bytes != clean.Summary.BytesTotal {
		t.Fatalf("clean scrub %+v", clean)
	}

	// Damage: deleted and corrupted pieces, at most m=2 per segment, in
	// two files.
	var want, wantLight []string
	for fi, d := range []struct {
		file          int
		seg, piece    int
		del, truncate bool
	}{
		{0, 0, 1, true, false}, {0, 0, 4, false, false}, {0, 2, 0, false, false}, {0, 3, 5, true, false},
		{2, 1, 2, false, true}, {2, 1, 3, true, false}, {2, 3, 0, false, false},
	} {
		_ = fi
		m := e.manifest(files[d.file].ID)
		path := e.piecePath(m, d.seg, d.piece)
		kind := "hash"
		switch {
		case d.del:
			os.Remove(path)
			kind = "missing"
		case d.truncate:
			b, _ := os.ReadFile(path)
			os.WriteFile(path, b[:len(b)-7], 0o600)
			kind = "size"
		default:
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 0x80
			os.WriteFile(path, b, 0o600)
		}
		k := fmt.Sprintf("%s/%d/%d/%s", files[d.file].ID, d.seg, d.piece, kind)
		want = append(want, k)
		if kind != "hash" {
			wantLight = append(wantLight, k)
		}
	}
	sort.Strings(want)
	sort.Strings(wantLight)

	light := e.scrub(api.ScrubRequest{Dataset: "JGAD1"})
	if got := findingKeys(light.Findings); !slices.Equal(got, wantLight) || light.Deep {
		t.Fatalf("light scrub found %v, want %v", got, wantLight)
	}
	deep := e.scrub(api.ScrubRequest{Deep: true})
	if got := findingKeys(deep.Findings); !slices.Equal(got, want) {
		t.Fatalf("deep scrub found %v, want %v", got, want)
	}
	for _, f := range deep.Findings {
		if f.Action != api.ActionFound || f.File == "" || f.Dataset != "JGAD1" {
			t.Fatalf("finding %+v", f)
		}
	}
	// Scoped to one file.
	one := e.scrub(api.ScrubRequest{Dataset: "JGAD1", File: "f1.bam", Deep: true})
	if one.Summary.Files != 1 || one.Summary.Found != 0 {
		t.Fatalf("scrub of the clean file: %+v", one.Summary)
	}

	rep := e.scrub(api.ScrubRequest{Deep: true, Repair: true})
	if rep.Summary.Repaired != len(want) || rep.Summary.Found != len(want) || rep.Summary.Unrecoverable != 0 {
		t.Fatalf("repair summary %+v", rep.Summary)
	}
	for _, f := range rep.Findings {
		if f.Action != api.ActionRepaired || f.MovedTo != "" {
			t.Fatalf("finding after repair %+v", f)
		}
	}
	if after := e.scrub(api.ScrubRequest{Deep: true}); after.Summary.Found != 0 {
		t.Fatalf("after repair: %v", findingKeys(after.Findings))
	}

	// Three pieces of one segment: unrecoverable, the file damaged, the
	// others untouched, and nothing written.
	m := e.manifest(files[1].ID)
	for _, j := range []int{0, 3, 5} {
		os.Remove(e.piecePath(m, 2, j))
	}
	bad := e.scrub(api.ScrubRequest{Deep: true, Repair: true})
	if bad.Summary.Unrecoverable != 1 || bad.Summary.DamagedFiles != 1 || bad.Summary.Repaired != 0 ||
		len(bad.Unrecoverable) != 1 || bad.Unrecoverable[0].FileID != files[1].ID || bad.Unrecoverable[0].Segment != 2 ||
		fmt.Sprint(bad.Unrecoverable[0].Pieces) != "[0 3 5]" {
		t.Fatalf("unrecoverable run: %+v %+v", bad.Summary, bad.Unrecoverable)
	}
	for _, p := range []int{0, 3, 5} {
		if _, err := os.Stat(e.piecePath(m, 2, p)); !os.IsNotExist(err) {
			t.Fatalf("piece %d of an unrecoverable segment was written", p)
		}
	}
	for i, f := range files {
		got, err := e.cat.File(context.Background(), f.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := catalog.FileAvailable
		if i == 1 {
			want = catalog.FileDamaged
		}
		if got.State != want {
			t.Fatalf("file %d is %s, want %s", i, got.State, want)
		}
	}
	e.must(404, "tok-sam", "POST", "/v1/datasets/JGAD1/files/f1.bam/fetch", nil, nil)

	// Every run is recorded (dozod's clock is frozen here, so no order).
	e.must(200, "tok-admin", "GET", "/v1/scrubs", nil, &runs)
	ids := map[string]api.ScrubRun{}
	for _, r := range runs {
		ids[r.ID] = r
	}
	if len(runs) != 7 || ids[bad.ID].Summary.Unrecoverable != 1 || ids[clean.ID].State != api.ScrubDone || ids[rep.ID].Summary.Repaired != len(want) {
		t.Fatalf("%d runs listed: %+v", len(runs), runs)
	}
}

func TestScrubOneAtATimeAndCancel(t *testing.T) {
	e := newScrubEnv(t, ScrubConfig{})
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD3", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	e.upload("tok-sam", "JGAD3", "a", randBytes(2<<20), randBytes(16), randBytes(16))
	var r api.ScrubRun
	// One byte per second: the run sits in its limiter.
	e.must(202, "tok-admin", "POST", "/v1/scrubs", api.ScrubRequest{Deep: true, RateBytesPerSec: 1}, &r)
	raw := e.must(409, "tok-admin", "POST", "/v1/scrubs", api.ScrubRequest{}, nil)
	if !strings.Contains(string(raw), r.ID) {
		t.Fatalf("409 does not name the running scrub: %s", raw)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		// The run's job may not have started executing yet.
		snap := e.srv.scrubSnapshot()
		if snap.Running && (snap.RunID != r.ID || !snap.Deep) {
			t.Fatalf("snapshot %+v", snap)
		}
		if snap.Running && snap.FilesTotal == 1 && snap.FilesDone == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %+v", snap)
		}
		time.Sleep(time.Millisecond)
	}
	e.must(403, "tok-sam", "DELETE", "/v1/scrubs/"+r.ID, nil, nil)
	var c api.ScrubRun
	e.must(200, "tok-admin", "DELETE", "/v1/scrubs/"+r.ID, nil, &c)
	if c.State != api.ScrubCancelled || c.EndedAt == nil {
		t.Fatalf("cancelled run %+v", c)
	}
	if snap := e.srv.scrubSnapshot(); snap.Running || snap.RunsCompleted != 1 || snap.LastRunState != "cancelled" {
		t.Fatalf("snapshot after cancel %+v", snap)
	}
	// Free again.
	if done := e.scrub(api.ScrubRequest{}); done.State != api.ScrubDone {
		t.Fatalf("%+v", done)
	}
}

func TestScrubConfig(t *testing.T) {
	var c ScrubConfig
	env := map[string]string{"DOZOD_SCRUB_LIGHT_INTERVAL": "24h", "DOZOD_SCRUB_DEEP_INTERVAL": "720h", "DOZOD_SCRUB_RATE": "200MiB/s", "DOZOD_SCRUB_REPAIR": "true"}
	if err := envconfig.Apply(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.LightInterval != 24*time.Hour || c.DeepInterval != 720*time.Hour || c.rate != 200<<20 || !c.Repair {
		t.Fatalf("config %+v", c)
	}
	for backend, want := range map[string]int{catalog.SQLite: 1, catalog.Postgres: DefaultScrubShards} {
		if n := c.scrubShards(backend); n != want {
			t.Errorf("default shards on %s: %d, want %d", backend, n, want)
		}
	}
	c.Shards = 7
	if n := c.scrubShards(catalog.SQLite); n != 7 {
		t.Errorf("shards = 7 on SQLite: %d", n)
	}
	for _, bad := range []ScrubConfig{{LightInterval: time.Second}, {DeepInterval: -time.Hour}, {Rate: "fast"}, {Shards: -1}, {Shards: 257}} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := envconfig.Apply(&ScrubConfig{}, func(k string) string { return map[string]string{"DOZOD_SCRUB_REPAIR": "maybe"}[k] }); err == nil {
		t.Error("DOZOD_SCRUB_REPAIR=maybe accepted")
	}
	for _, k := range []string{"light_interval", "deep_interval", "rate", "repair", "shards", "DOZOD_SCRUB_RATE", "DOZOD_SCRUB_SHARDS"} {
		if !strings.Contains(ConfigHelp, k) {
			t.Errorf("ConfigHelp does not document %s", k)
		}
	}
}

// TestScrubShardsShown: a run cut into shards shows each shard (its job,
// state, files done, who ran it) and the same summary as a run in one
// job.
func TestScrubShardsShown(t *testing.T) {
	e := newScrubEnv(t, ScrubConfig{Shards: 3})
	e.srv.jobs.Start(context.Background())
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	for i := range 4 {
		e.upload("tok-sam", "JGAD1", fmt.Sprintf("f%d.bam", i), randBytes(1<<20+1000*(i+1)), randBytes(16), randBytes(16))
	}
	r := e.scrub(api.ScrubRequest{Deep: true})
	if r.State != api.ScrubDone || r.Summary.FilesDone != 4 || r.Summary.Pieces != r.Summary.PiecesTotal || len(r.Shards) != 3 {
		t.Fatalf("sharded scrub %+v", r)
	}
	files := 0
	for i, sh := range r.Shards {
		if sh.Shard != i+1 || sh.Of != 3 || sh.Job != scrub.ShardID(r.ID, i+1) || sh.State != api.JobDone ||
			sh.Files < 1 || sh.FilesDone != sh.Files || sh.Owner != e.srv.jobs.Owner() || sh.Attempts != 1 {
			t.Fatalf("shard %d: %+v", i+1, sh)
		}
		files += sh.Files
	}
	if files != 4 {
		t.Fatalf("shards cover %d files, want 4", files)
	}
	j := e.waitJob(r.ID)
	if j.Kind != scrub.Kind || j.State != api.JobDone || j.Progress.Done != 4 || j.Progress.Total != 4 {
		t.Fatalf("run job %+v", j)
	}
	// One file: one job, no shards.
	one := e.scrub(api.ScrubRequest{Dataset: "JGAD1", File: "f0.bam"})
	if one.State != api.ScrubDone || len(one.Shards) != 0 {
		t.Fatalf("one-file scrub %+v", one)
	}
}
