package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/internal/envconfig"
	"github.com/dozo-vault/dozo/lifecycle"
	"github.com/dozo-vault/dozo/storage"
)

// TestReapOnceAndBackOff: two dozods on one catalog reap in the same
// minute while a due deletion fails (a target is broken): one job is
// recorded, not one per dozod; later rounds retry only after a wait that
// doubles with each failure, not every minute; once the target is back
// the deletion completes, and finished jobs are pruned after the
// retention.
func TestReapOnceAndBackOff(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	// Two dozods on the catalog with their own view of the targets, one
	// of which breaks: every listing fails, as with a server down.
	broken := &atomic.Bool{}
	var targets []Target
	for i, tg := range l.targets {
		var t Target = dirTarget{tg.(*storage.DirTarget)}
		if i == 0 {
			t = breakableTarget{dirTarget{tg.(*storage.DirTarget)}, broken}
		}
		targets = append(targets, t)
	}
	var servers []*Server
	for range 2 {
		s, err := New(Options{Catalog: l.cat, Identifier: tokens, Keys: l.keys, Targets: targets,
			Admins: []string{"admin"}, Submitters: []string{"sam"}, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			Now: func() time.Time { return l.now }})
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	a, b := servers[0], servers[1]
	st := l.schedule("tok-sam")
	l.now = st.RunsAt
	broken.Store(true)
	deletions := func() []catalog.Job {
		t.Helper()
		js, err := l.cat.Jobs(ctx, catalog.JobFilter{Kind: lifecycle.KindDeleteDataset})
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	clock := time.Now()
	for _, s := range servers {
		s.jobs.Now = func() time.Time { return clock }
		// The catalog's minute advances with l.now: a new round each.
		s.roundClock = func(context.Context) (time.Time, error) { return l.now, nil }
	}
	if err := a.Reap(ctx); err == nil {
		t.Fatal("a deletion with a broken target did not fail")
	}
	b.Reap(ctx)
	if js := deletions(); len(js) != 1 || js[0].State != catalog.JobFailed {
		t.Fatalf("deletion jobs after two dozods reaped: %+v", js)
	}
	// Retried after 1, 2, 4 minutes, not every minute.
	wantJobs := 1
	for _, wait := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		for _, d := range []time.Duration{wait / 2, wait} {
			last := deletions()[0].EndedAt
			clock = last.Add(d - time.Second)
			l.now = l.now.Add(time.Minute)
			a.Reap(ctx)
			if n := len(deletions()); n != wantJobs {
				t.Fatalf("%d deletion jobs %v after a failure (retry due after %v)", n, d-time.Second, wait)
			}
		}
		clock = deletions()[0].EndedAt.Add(wait)
		l.now = l.now.Add(time.Minute)
		b.Reap(ctx)
		a.Reap(ctx)
		wantJobs++
		if js := deletions(); len(js) != wantJobs || js[0].State != catalog.JobFailed {
			t.Fatalf("retry after %v: %+v", wait, js)
		}
	}
	// The target is back: the next retry completes the deletion.
	broken.Store(false)
	clock = deletions()[0].EndedAt.Add(8 * time.Minute)
	l.now = l.now.Add(time.Minute)
	if err := a.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if js := deletions(); len(js) != wantJobs+1 || js[0].State != catalog.JobDone {
		t.Fatalf("after the target came back: %+v", js)
	}
	// Pruned once older than the retention; nothing unfinished is.
	if err := l.cat.InsertJob(ctx, catalog.Job{ID: "job-queued", Kind: "rotate-key", DatasetID: "DSX", RequestedBy: "sam", CreatedAt: clock}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(DefaultJobRetention - time.Hour)
	a.Reap(ctx)
	if n := len(deletions()); n != wantJobs+1 {
		t.Fatalf("%d deletion jobs before the retention ran out", n)
	}
	clock = clock.Add(2 * time.Hour)
	a.Reap(ctx)
	if js, _ := l.cat.Jobs(ctx, catalog.JobFilter{}); len(js) != 1 || js[0].ID != "job-queued" {
		t.Fatalf("jobs after the retention: %+v", js)
	}
}

func TestJobsConfig(t *testing.T) {
	var c JobsConfig
	env := map[string]string{"DOZOD_JOBS_LEASE": "3s", "DOZOD_JOBS_RETENTION": "720h"}
	if err := envconfig.Apply(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil || c.Lease != 3*time.Second || c.Retention != 720*time.Hour {
		t.Fatalf("config %+v %v", c, err)
	}
	var d JobsConfig
	if err := d.validate(); err != nil || d.Lease != 30*time.Second || d.Retention != DefaultJobRetention {
		t.Fatalf("defaults %+v %v", d, err)
	}
	for _, bad := range []JobsConfig{{Lease: 100 * time.Millisecond}, {Lease: time.Hour}, {Retention: time.Minute}, {Lease: -time.Second}} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	e := newEnv(t)
	if _, err := New(Options{Catalog: e.cat, Identifier: tokens, Keys: &fakeKeys{}, Targets: []Target{dirTarget{e.targets[0].(*storage.DirTarget)}}, Jobs: JobsConfig{Lease: time.Hour}}); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("New with a 1h lease: %v", err)
	}
	for _, k := range []string{"DOZOD_JOBS_LEASE", "DOZOD_JOBS_RETENTION", "retention"} {
		if !strings.Contains(ConfigHelp, k) {
			t.Errorf("ConfigHelp does not document %s", k)
		}
	}
}

// breakableTarget fails every listing while broken.
type breakableTarget struct {
	dirTarget
	broken *atomic.Bool
}

func (b breakableTarget) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if b.broken.Load() {
		return errors.New("connection refused")
	}
	return b.dirTarget.List(ctx, prefix, fn)
}

// TestJobListLimitAfterVisibility: the limit counts the jobs the caller
// may see, so a custodian asking for two gets their dataset's two newest
// even when newer jobs of other datasets and dataset-less jobs exist.
func TestJobListLimitAfterVisibility(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	for i, j := range []catalog.Job{
		{ID: "job-ds1-old", Kind: "rotate-key", DatasetID: "DS1"},
		{ID: "job-ds1-new", Kind: "rotate-key", DatasetID: "DS1"},
		{ID: "job-other-1", Kind: "rotate-key", DatasetID: "DSX"},
		{ID: "job-other-2", Kind: "rotate-key", DatasetID: "DSY"},
		{ID: "job-periodic", Kind: "expire-uploads"},
	} {
		j.RequestedBy, j.CreatedAt = "dozod", l.now.Add(time.Duration(i)*time.Second)
		if err := l.cat.InsertJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(token, query string) string {
		t.Helper()
		var js []api.Job
		l.must(200, token, "GET", "/v1/jobs"+query, nil, &js)
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct{ token, query, want string }{
		{"tok-sam", "?limit=2", "job-ds1-new job-ds1-old"},
		{"tok-sam", "?limit=1", "job-ds1-new"},
		{"tok-sam", "", "job-ds1-new job-ds1-old"},
		{"tok-sam", "?dataset=DSX", ""},
		{"tok-rita", "?limit=2", ""},
		{"tok-admin", "?limit=2", "job-periodic job-other-2"},
	} {
		if got := ids(tc.token, tc.query); got != tc.want {
			t.Errorf("%s GET /v1/jobs%s: %q, want %q", tc.token, tc.query, got, tc.want)
		}
	}
}

// TestReapSlotFromOneClock: two dozods whose clocks straddle a minute
// boundary reap one after the other while work stays due (an expired
// upload's pieces are cleaned again until every presigned URL has
// expired): one round is recorded, because the round's slot is the
// catalog's minute, not each dozod's. The catalog's next minute brings
// the next round.
func TestReapSlotFromOneClock(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	boundary := l.now.Add(DefaultUploadExpiry + time.Hour).Truncate(time.Minute)
	catalogNow := boundary.Add(-20 * time.Second)
	var targets []Target
	for _, tg := range l.targets {
		targets = append(targets, dirTarget{tg.(*storage.DirTarget)})
	}
	var servers []*Server
	for _, skew := range []time.Duration{-500 * time.Millisecond, 500 * time.Millisecond} {
		clock := boundary.Add(skew)
		s, err := New(Options{Catalog: l.cat, Identifier: tokens, Keys: l.keys, Targets: targets,
			Admins: []string{"admin"}, Submitters: []string{"sam"}, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		s.jobs.Now = s.now
		s.roundClock = func(context.Context) (time.Time, error) { return catalogNow, nil }
		servers = append(servers, s)
	}
	rounds := func() []string {
		t.Helper()
		js, err := l.cat.Jobs(ctx, catalog.JobFilter{Kind: lifecycle.KindExpireUploads})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range js {
			ids = append(ids, j.ID+" "+j.State)
		}
		return ids
	}
	for _, s := range servers {
		if err := s.Reap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if js := rounds(); len(js) != 1 || !strings.HasSuffix(js[0], " done") {
		t.Fatalf("expiry rounds after two dozods reaped in one catalog minute: %+v", js)
	}
	if due, err := servers[1].life.UploadWorkDue(ctx); err != nil || !due {
		t.Fatalf("no upload work left to show a second round: %v %v", due, err)
	}
	catalogNow = catalogNow.Add(time.Minute)
	if err := servers[0].Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if js := rounds(); len(js) != 2 {
		t.Fatalf("expiry rounds after the catalog's next minute: %+v", js)
	}
}

// TestExpiredUploadCleanedThenDone: the reaper ends an idle upload and
// deletes its pieces; since a URL presigned for it may still put a piece
// for one presign lifetime, the next round after that lifetime deletes
// again, and from then on the session is done: no round finds work in it.
func TestExpiredUploadCleanedThenDone(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	s := l.srv
	l.now = l.now.Add(DefaultUploadExpiry + time.Hour)
	noProgress := func(int64, int64, string) {}
	if _, err := s.life.ExpireUploads(ctx, noProgress); err != nil {
		t.Fatal(err)
	}
	if u, err := l.cat.Upload(ctx, l.open.ID); err != nil || u.State != catalog.UploadExpired {
		t.Fatalf("upload after the round: %+v %v", u, err)
	}
	if due, err := s.life.UploadWorkDue(ctx); err != nil || !due {
		t.Fatalf("cleaned inside the presign lifetime, yet no work is due: %v %v", due, err)
	}
	l.now = l.now.Add(s.presign + time.Second)
	if _, err := s.life.ExpireUploads(ctx, noProgress); err != nil {
		t.Fatal(err)
	}
	if due, err := s.life.UploadWorkDue(ctx); err != nil || due {
		t.Fatalf("cleaned after the presign lifetime, yet work is due: %v %v", due, err)
	}
	l.now = l.now.Add(24 * time.Hour)
	if todo, err := l.cat.UploadsToClean(ctx, s.presign); err != nil || len(todo) != 0 {
		t.Fatalf("a session done for good is read again: %+v %v", todo, err)
	}
}
