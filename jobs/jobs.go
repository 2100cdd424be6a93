// Package jobs runs dozod's long work (key rotation, dataset deletion,
// upload expiry, scrubs) as jobs recorded in the catalog.
//
// A job is claimed by one runner at a time under a lease it renews while
// the job runs. Only a queued job, or a running one whose lease has
// expired, can be claimed, in one catalog update: several dozods on one
// database never run the same job at once, and a job whose runner died is
// taken over by another once the lease runs out. The handler therefore
// sees a job again after a restart or a take-over and must resume it:
// every step it takes has to be idempotent.
//
// The handler's context is cancelled when someone asks for the job to be
// cancelled (on any dozod: the heartbeat reads the request from the
// catalog), when the runner loses its lease, or when the runner closes.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/catalog"
)

// Job is a job's record.
type Job = catalog.Job

// Store is the part of the catalog the runner uses; *catalog.Catalog
// implements it.
type Store interface {
	InsertJob(ctx context.Context, j catalog.Job) error
	ClaimJob(ctx context.Context, owner string, kinds []string, id string, now, leaseUntil time.Time) (*catalog.Job, error)
	RenewJob(ctx context.Context, id, owner string, leaseUntil time.Time) (cancel bool, err error)
	JobProgress(ctx context.Context, id, owner string, done, total int64, note string) error
	FinishJob(ctx context.Context, id, owner, state, errText string, result []byte, now time.Time) error
	ReleaseJob(ctx context.Context, id, owner string) error
	CancelJob(ctx context.Context, id string, now time.Time) (*catalog.Job, error)
	Job(ctx context.Context, id string) (*catalog.Job, error)
}

// Handler does a job of one kind and returns its result (encoded as
// JSON into the record; nil for none). It must stop when ctx is done and
// must be resumable: it may run again on a job it already partly did.
type Handler func(ctx context.Context, t *Task) (result any, err error)

// Task is the job a handler runs, with the means to report progress.
type Task struct {
	*Job
	r *Runner

	mu       sync.Mutex
	progress struct {
		done, total int64
		note        string
		written     time.Time
	}
}

// Decode decodes the job's JSON params into v.
func (t *Task) Decode(v any) error {
	if err := json.Unmarshal(t.Params, v); err != nil {
		return fmt.Errorf("jobs: job %s: params: %w", t.ID, err)
	}
	return nil
}

// Progress records how far the job got: done of total units (total 0:
// unknown) and a short note. It is written to the catalog at most once a
// ProgressEvery (and always when the job ends), so a handler may call it
// for every unit.
func (t *Task) Progress(done, total int64, note string) {
	t.mu.Lock()
	t.progress.done, t.progress.total, t.progress.note = done, total, note
	due := t.r.now().Sub(t.progress.written) >= t.r.ProgressEvery
	if due {
		t.progress.written = t.r.now()
	}
	t.mu.Unlock()
	if due {
		t.flush(context.Background())
	}
}

func (t *Task) flush(ctx context.Context) {
	t.mu.Lock()
	p := t.progress
	t.mu.Unlock()
	if err := t.r.store.JobProgress(ctx, t.ID, t.r.owner, p.done, p.total, p.note); err != nil && !errors.Is(err, catalog.ErrState) {
		t.r.Log.Warn("recording job progress", "job", t.ID, "error", err)
	}
}

// Errors.
var (
	// ErrBusy: an unfinished job holds the lock key a new job asked for.
	ErrBusy = errors.New("jobs: another job holds this")
	// ErrCancelled is the cause of a handler's context when the job was
	// cancelled.
	ErrCancelled = errors.New("jobs: cancelled")
	// ErrLeaseLost is the cause when the runner no longer holds the job
	// (another runner took it over after the lease expired).
	ErrLeaseLost = errors.New("jobs: lease lost")
	// ErrClosed is the cause when the runner is closing; the job is put
	// back in the queue for the next runner.
	ErrClosed = errors.New("jobs: runner closed")
)

// Defaults.
const (
	DefaultLease         = 30 * time.Second
	DefaultPoll          = 5 * time.Second
	DefaultProgressEvery = time.Second
)

// Bounds of a configured lease: long enough for a renewal every third of
// it to get through a busy catalog, short enough that a dead dozod's job
// is taken over within minutes.
const (
	MinLease = time.Second
	MaxLease = 10 * time.Minute
)

// SetLease sets the lease (0: DefaultLease) and polls for claimable jobs
// at least every third of it, so a dead runner's job is taken over within
// about 1.3 leases. A lease outside MinLease..MaxLease is an error and
// changes nothing.
func (r *Runner) SetLease(d time.Duration) error {
	if d == 0 {
		d = DefaultLease
	}
	if d < MinLease || d > MaxLease {
		return fmt.Errorf("jobs: lease %v: must be %v..%v", d, MinLease, MaxLease)
	}
	r.Lease, r.Poll = d, min(DefaultPoll, d/3)
	return nil
}

// maxEnded bounds the handler errors kept for Wait.
const maxEnded = 256

// Runner claims and runs jobs of the kinds registered with it.
type Runner struct {
	store Store
	owner string

	// Lease is how long a claim lasts without renewal; the runner renews
	// it every Lease/3. A dead runner's job is taken over after Lease.
	Lease time.Duration
	// Poll is how often Start looks for jobs to claim.
	Poll time.Duration
	// ProgressEvery bounds how often progress is written.
	ProgressEvery time.Duration
	Now           func() time.Time
	Log           *slog.Logger

	base   context.Context
	closeB context.CancelCauseFunc
	wg     sync.WaitGroup

	// claimMu makes a claim and its count of running jobs one step, so
	// a kind's limit holds however many goroutines claim.
	claimMu  sync.Mutex
	mu       sync.Mutex
	handlers map[string]Handler
	limits   map[string]int // kinds with at most this many running here
	running  map[string]*run
	ended    map[string]error // handler errors of jobs run here, for Wait
	kick     chan struct{}    // wakes Start's loop to claim now
}

type run struct {
	kind   string
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// NewOwner returns a replica id for a runner: host name, process id and
// a random part, so a restarted process is a new owner.
func NewOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// New returns a runner that claims jobs as owner (see NewOwner).
func New(store Store, owner string) *Runner {
	base, cancel := context.WithCancelCause(context.Background())
	return &Runner{
		store: store, owner: owner,
		Lease: DefaultLease, Poll: DefaultPoll, ProgressEvery: DefaultProgressEvery,
		Now: time.Now, Log: slog.Default(),
		base: base, closeB: cancel,
		handlers: map[string]Handler{}, limits: map[string]int{}, running: map[string]*run{}, ended: map[string]error{},
		kick: make(chan struct{}, 1),
	}
}

// Owner is the runner's replica id.
func (r *Runner) Owner() string { return r.owner }

func (r *Runner) now() time.Time { return r.Now() }

// Register makes the runner run jobs of kind with h. Register before
// Submit or Start.
func (r *Runner) Register(kind string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[kind] = h
}

// RegisterLimit is Register for a kind of which this runner runs at most
// n jobs at a time (n >= 1), leaving the others to other runners: work
// cut into many jobs of one kind is spread over the dozods.
func (r *Runner) RegisterLimit(kind string, h Handler, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[kind] = h
	r.limits[kind] = max(n, 1)
}

// kinds are the kinds this runner may claim now: those it has, but for
// those at their limit.
func (r *Runner) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	busy := map[string]int{}
	for _, rn := range r.running {
		busy[rn.kind]++
	}
	out := make([]string, 0, len(r.handlers))
	for k := range r.handlers {
		if n, ok := r.limits[k]; !ok || busy[k] < n {
			out = append(out, k)
		}
	}
	return out
}

// wake makes Start's loop look for jobs at once, not at its next Poll.
func (r *Runner) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Spec is what Submit records.
type Spec struct {
	// ID names the job; "" for a random "job-" id. Work that must be done
	// once whichever dozod decides it (a schedule slot) uses an id made
	// from what it is, so that a second Submit of it is ErrBusy.
	ID          string
	Kind        string
	DatasetID   string
	LockKey     string // at most one unfinished job per non-empty key
	Params      any    // encoded as JSON; nil for none
	RequestedBy string
	// Insert records the job, with whatever else must exist exactly when
	// it does, in one catalog transaction; nil: the store's InsertJob. It
	// must return an error wrapping catalog.ErrExists if the id or the
	// lock key is taken.
	Insert func(ctx context.Context, j Job) error
}

// Submit records a new job and, if this runner has its kind, starts it
// here at once. ErrBusy: the job's id is taken, or an unfinished job
// holds spec.LockKey; nothing is recorded then.
func (r *Runner) Submit(ctx context.Context, spec Spec) (*Job, error) {
	params := []byte("{}")
	if spec.Params != nil {
		var err error
		if params, err = json.Marshal(spec.Params); err != nil {
			return nil, fmt.Errorf("jobs: encoding params: %w", err)
		}
	}
	id := spec.ID
	if id == "" {
		b := make([]byte, 8)
		rand.Read(b)
		id = "job-" + hex.EncodeToString(b)
	}
	insert := spec.Insert
	if insert == nil {
		insert = r.store.InsertJob
	}
	j := catalog.Job{ID: id, Kind: spec.Kind, DatasetID: spec.DatasetID, LockKey: spec.LockKey,
		Params: params, RequestedBy: spec.RequestedBy, CreatedAt: r.now()}
	if err := insert(ctx, j); err != nil {
		if errors.Is(err, catalog.ErrExists) {
			return nil, fmt.Errorf("%w (%s)", ErrBusy, err)
		}
		return nil, err
	}
	r.mu.Lock()
	_, ours := r.handlers[spec.Kind]
	r.mu.Unlock()
	r.wake() // for jobs Insert recorded with this one
	if ours {
		if _, err := r.claim(ctx, j.ID); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			r.Log.Warn("claiming a new job", "job", j.ID, "error", err)
		}
	}
	return r.store.Job(ctx, j.ID)
}

// RunPending claims and starts every job it can now (queued, or under an
// expired lease), and returns how many it started.
func (r *Runner) RunPending(ctx context.Context) (int, error) {
	n := 0
	for {
		ok, err := r.claim(ctx, "")
		if errors.Is(err, catalog.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
}

// Start claims jobs every Poll (queued ones, and those whose runner died)
// until ctx is done or the runner closes. Jobs left unfinished by a
// previous dozod are resumed this way.
func (r *Runner) Start(ctx context.Context) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.Poll)
		defer t.Stop()
		for {
			if _, err := r.RunPending(ctx); err != nil && ctx.Err() == nil && r.base.Err() == nil {
				r.Log.Error("claiming jobs", "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-r.base.Done():
				return
			case <-t.C:
			case <-r.kick:
			}
		}
	}()
}

// claim claims one job (id, or any) and starts it in its own goroutine.
func (r *Runner) claim(ctx context.Context, id string) (bool, error) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	kinds := r.kinds()
	if len(kinds) == 0 || r.base.Err() != nil {
		return false, catalog.ErrNotFound
	}
	now := r.now()
	j, err := r.store.ClaimJob(ctx, r.owner, kinds, id, now, now.Add(r.Lease))
	if err != nil {
		return false, err
	}
	if j.CancelRequested {
		// Its runner died after a cancel was asked for: end it here.
		if err := r.store.FinishJob(ctx, j.ID, r.owner, catalog.JobCancelled, "cancelled before it could resume", nil, r.now()); err != nil {
			return false, err
		}
		return true, nil
	}
	r.mu.Lock()
	h := r.handlers[j.Kind]
	jctx, cancel := context.WithCancelCause(r.base)
	rn := &run{kind: j.Kind, cancel: cancel, done: make(chan struct{})}
	r.running[j.ID] = rn
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.execute(jctx, rn, h, &Task{Job: j, r: r})
	}()
	return true, nil
}

// execute runs one claimed job to its end, renewing the lease meanwhile,
// and records how it ended.
func (r *Runner) execute(ctx context.Context, rn *run, h Handler, t *Task) {
	defer close(rn.done)
	stopBeat := make(chan struct{})
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		r.heartbeat(ctx, rn, t.ID, stopBeat)
	}()
	res, err := r.call(ctx, h, t)
	close(stopBeat)
	<-beatDone
	rn.cancel(nil)

	// The record is written with a context of its own: the job's may be
	// cancelled, and the record must still say so.
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cause := context.Cause(ctx)
	var werr error
	switch {
	case errors.Is(cause, ErrLeaseLost):
		// Another runner holds the job now; nothing of ours to record.
		err = errors.Join(err, ErrLeaseLost)
	case errors.Is(cause, ErrClosed) && err != nil:
		t.flush(wctx)
		werr = r.store.ReleaseJob(wctx, t.ID, r.owner)
		err = errors.Join(err, ErrClosed)
	default:
		t.flush(wctx)
		state, text := catalog.JobDone, ""
		var out []byte
		switch {
		case err == nil:
			if res != nil {
				if out, err = json.Marshal(res); err != nil {
					state, text = catalog.JobFailed, "encoding the result: "+err.Error()
				}
			}
		case errors.Is(cause, ErrCancelled):
			state, text = catalog.JobCancelled, "cancelled: "+err.Error()
			err = errors.Join(err, ErrCancelled)
		default:
			state, text = catalog.JobFailed, err.Error()
		}
		werr = r.store.FinishJob(wctx, t.ID, r.owner, state, text, out, r.now())
	}
	if werr != nil {
		r.Log.Error("recording the end of a job", "job", t.ID, "kind", t.Kind, "error", werr)
	}
	r.mu.Lock()
	delete(r.running, t.ID)
	if len(r.ended) >= maxEnded {
		// Nobody waits for these (periodic jobs): forget one.
		for id := range r.ended {
			delete(r.ended, id)
			break
		}
	}
	r.ended[t.ID] = err
	r.mu.Unlock()
	r.wake() // a kind at its limit may take its next job
}

// call runs the handler, turning a panic into an error: one bad job must
// not take dozod down.
func (r *Runner) call(ctx context.Context, h Handler, t *Task) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("jobs: handler panicked: %v", p)
		}
	}()
	if h == nil {
		return nil, fmt.Errorf("jobs: no handler for kind %q", t.Kind)
	}
	return h(ctx, t)
}

// heartbeat renews the lease every Lease/3 until stop, cancelling the
// job when a cancel is requested or the lease is lost.
func (r *Runner) heartbeat(ctx context.Context, rn *run, id string, stop <-chan struct{}) {
	t := time.NewTicker(max(r.Lease/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		// Not the job's context, which a cancel ends; bounded, so a hung
		// catalog cannot hold the job past its end.
		rctx, stopRenew := context.WithTimeout(context.Background(), r.Lease)
		cancel, err := r.store.RenewJob(rctx, id, r.owner, r.now().Add(r.Lease))
		stopRenew()
		switch {
		case errors.Is(err, catalog.ErrState):
			rn.cancel(ErrLeaseLost)
		case err != nil:
			// The catalog is unreachable: keep trying until the lease
			// runs out, after which another runner may take over.
			r.Log.Warn("renewing a job lease", "job", id, "error", err)
		case cancel:
			rn.cancel(ErrCancelled)
		}
	}
}

// Cancel asks for a job to end (see catalog.CancelJob); a job running
// here stops at once, one running elsewhere at its runner's next renewal.
func (r *Runner) Cancel(ctx context.Context, id string) (*Job, error) {
	j, err := r.store.CancelJob(ctx, id, r.now())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if rn, ok := r.running[id]; ok {
		rn.cancel(ErrCancelled)
	}
	r.mu.Unlock()
	return j, nil
}

// Wait waits for a job to end, or for ctx. It returns the final record
// and, for a job that did not end done, its error: the handler's own
// error value if the job ran in this process (so callers can branch on
// it), else one made of the recorded text.
func (r *Runner) Wait(ctx context.Context, id string) (*Job, error) {
	for {
		r.mu.Lock()
		rn, here := r.running[id]
		herr, ended := r.ended[id]
		if ended {
			delete(r.ended, id)
		}
		r.mu.Unlock()
		if here {
			select {
			case <-rn.done:
				continue
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		j, err := r.store.Job(context.WithoutCancel(ctx), id)
		if err != nil {
			return nil, err
		}
		if j.Finished() {
			switch {
			case j.State == catalog.JobDone:
				return j, nil
			case ended && herr != nil:
				return j, herr
			default:
				return j, fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Error)
			}
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(min(r.Poll, time.Second)):
		}
	}
}

// Close stops the runner: running jobs are cancelled (ErrClosed) and put
// back in the queue, so the next runner resumes them without waiting for
// their lease; Close returns when they have stopped.
func (r *Runner) Close() {
	r.closeB(ErrClosed)
	r.wg.Wait()
}
