package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/jobs"
	"github.com/dozo-vault/dozo/lifecycle"
	"github.com/dozo-vault/dozo/storage"
)

// LifecycleConfig is the [lifecycle] section of dozod's config.
type LifecycleConfig struct {
	// DeletionGrace is how long a deletion waits, the dataset hidden from
	// everyone, before it runs; until then a custodian or admin can cancel
	// it and get the dataset back as it was.
	DeletionGrace time.Duration `toml:"deletion_grace" env:"DOZOD_DELETION_GRACE" help:"168h (7 days): a deletion hides the dataset at once and runs after this; cancellable until then (1s..8760h)"`
}

// DefaultDeletionGrace leaves a week to notice a mistaken or malicious
// deletion before anything is destroyed.
const DefaultDeletionGrace = 7 * 24 * time.Hour

// validate runs after defaults, so 0 has become DefaultDeletionGrace. A
// grace of seconds is for tests; it is allowed, not recommended.
func (c *LifecycleConfig) validate() error {
	if c.DeletionGrace < time.Second || c.DeletionGrace > 365*24*time.Hour {
		return fmt.Errorf("lifecycle.deletion_grace %v: must be 1s..8760h", c.DeletionGrace)
	}
	return nil
}

// frozenForLifecycle refuses a key rotation or deletion of a frozen
// dataset. A freeze keeps a dataset as it is while an incident is
// investigated; its key must not change or go, nor the evidence with it,
// on the word of one custodian (whose account may be the compromised one).
func frozenForLifecycle(id string) *httpError {
	return &httpError{status: http.StatusConflict,
		msg:  fmt.Sprintf("dataset %q is frozen by an administrator; an administrator must lift the freeze first", id),
		hint: "ask the dozo operators: `dozo admin unfreeze --dataset " + id + " --reason ...`"}
}

// pendingDeletion is the answer to a custodian or admin about a dataset
// hidden by a deletion that has not finished: when it was asked for and
// when it runs, or that it is under way.
func pendingDeletion(del *catalog.Deletion) *httpError {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	if del.RunStartedAt == nil {
		return &httpError{status: http.StatusConflict,
			msg: fmt.Sprintf("dataset %q: deletion scheduled at %s by %s, runs at %s; hidden from everyone until then",
				del.DatasetID, ts(del.StartedAt), del.StartedBy, ts(del.RunsAt)),
			hint: "`dozo dataset undelete " + del.DatasetID + "` cancels it and restores the dataset as it was"}
	}
	return &httpError{status: http.StatusConflict,
		msg:  fmt.Sprintf("dataset %q is being deleted (run began at %s); it can no longer be cancelled", del.DatasetID, ts(*del.RunStartedAt)),
		hint: "`dozo dataset delete " + del.DatasetID + " --confirm " + del.DatasetID + "` finishes it and writes the report"}
}

// hiddenByDeletion is asked (by formerGrantee) when the caller has no role
// on a live dataset id. It reports whether id is a dataset hidden by a
// deletion; if so, its custodians and admins get pendingDeletion while the
// deletion is unfinished, and everyone else nil: the uniform 404, whatever
// grant they held.
func (s *Server) hiddenByDeletion(q *request, id string) (bool, error) {
	if api.ValidateDatasetID(id) != nil {
		return false, nil
	}
	_, deleted, err := s.cat.DatasetIncludingDeleted(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return true, internal("reading dataset", err)
	}
	if deleted == nil {
		return false, nil
	}
	del, err := s.cat.Deletion(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return true, internal("reading the deletion", err)
	}
	if del.FinishedAt != nil {
		return true, nil
	}
	if !s.isAdmin(q.user) {
		roles, err := s.cat.Roles(q.ctx, id, q.user.principal(), s.today())
		if err != nil {
			return true, internal("reading roles", err)
		}
		if !slices.Contains(roles, catalog.RoleCustodian) {
			return true, nil
		}
	}
	return true, pendingDeletion(del)
}

// busy answers a rotation, deletion or undelete of a dataset that an
// unfinished rotation or deletion job holds (lifecycle.LockKey).
func busy(id string) *httpError {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("a key rotation or deletion of dataset %q is already running", id),
		hint: "wait for it to finish, then run the command again if needed"}
}

// lifecycleHeld reports a dataset held by an unfinished rotation or
// deletion job.
func (s *Server) lifecycleHeld(q *request, id string) error {
	_, err := s.cat.UnfinishedJob(q.ctx, lifecycle.LockKey(id))
	switch {
	case err == nil:
		return busy(id)
	case errors.Is(err, catalog.ErrNotFound):
		return nil
	default:
		return internal("reading jobs", err)
	}
}

// lifecycleError turns an error of a lifecycle job into an answer.
func lifecycleError(id string, err error) error {
	var ue *lifecycle.Unavailable
	var oe *lifecycle.OpError
	switch {
	case errors.Is(err, lifecycle.ErrFrozen):
		return frozenForLifecycle(id)
	case errors.As(err, &ue):
		return &httpError{status: http.StatusServiceUnavailable, msg: ue.Msg, hint: ue.Hint, cause: ue.Err}
	case errors.As(err, &oe):
		return internal(oe.Op, oe.Err)
	default:
		return internal("running the job", err)
	}
}

// runLifecycleJob submits a rotation or deletion job on dataset id and
// waits for it while the request lasts; its result is decoded into out.
// The job does not depend on the request: a client that stops waiting
// leaves it running, and `dozo jobs` shows it. A dataset another such job
// holds is refused (busy).
func (s *Server) runLifecycleJob(q *request, kind, id string, params any, out any) error {
	j, err := s.jobs.Submit(q.ctx, jobs.Spec{Kind: kind, DatasetID: id, LockKey: lifecycle.LockKey(id), Params: params, RequestedBy: q.user.Name})
	if errors.Is(err, jobs.ErrBusy) {
		return busy(id)
	}
	if err != nil {
		return internal("recording the job", err)
	}
	if j, err = s.jobs.Wait(q.ctx, j.ID); err != nil {
		if q.ctx.Err() != nil {
			return q.ctx.Err()
		}
		return lifecycleError(id, err)
	}
	if err := json.Unmarshal(j.Result, out); err != nil {
		return internal("reading the job's result", err)
	}
	return nil
}

// rotateKey rotates a dataset's Transit key (lifecycle.Service.RotateKey)
// as a job, and answers with its result once done.
func (s *Server) rotateKey(q *request) error {
	id := q.r.PathValue("ds")
	a, err := s.requireDataset(q, id, "custodian")
	if err != nil {
		return err
	}
	if a.frozen {
		return frozenForLifecycle(id)
	}
	if err := q.noBody(); err != nil {
		return err
	}
	var resp api.RotateKeyResponse
	if err := s.runLifecycleJob(q, lifecycle.KindRotateKey, id, nil, &resp); err != nil {
		return err
	}
	return q.reply(http.StatusOK, resp)
}

// deleteParams are a deletion job's params.
type deleteParams struct {
	// AuditFailure records an interrupted purge in the audit log; a
	// scheduled run, retried every round, only logs it.
	AuditFailure bool `json:"audit_failure"`
}

// newLifecycle makes the rotation and deletion service and the job runner
// ([jobs] config o.Jobs) with its handlers: rotation, deletion and upload
// expiry.
func (s *Server) newLifecycle(o Options) error {
	if err := o.Jobs.validate(); err != nil {
		return err
	}
	s.jobRetention = o.Jobs.Retention
	s.life = &lifecycle.Service{
		Catalog: s.cat, Keys: s.keys, Targets: targetsView{s}, Event: s.event,
		ManifestAuth: func(key string) storage.Authenticator { return s.manifestAuth(key) },
		Retired: func() {
			s.macMemo.reset()
			s.manifests.reset()
		},
		PresignExpiry: s.presign, Now: s.now, Log: s.log,
	}
	s.jobs = jobs.New(s.cat, jobs.NewOwner())
	s.jobs.Log = s.log
	if err := s.jobs.SetLease(o.Jobs.Lease); err != nil {
		return err
	}
	s.jobs.Register(lifecycle.KindRotateKey, func(ctx context.Context, t *jobs.Task) (any, error) {
		return s.life.RotateKey(ctx, t.DatasetID, t.RequestedBy, t.Progress)
	})
	s.jobs.Register(lifecycle.KindDeleteDataset, func(ctx context.Context, t *jobs.Task) (any, error) {
		var p deleteParams
		if err := t.Decode(&p); err != nil {
			return nil, err
		}
		return s.life.RunDeletion(ctx, t.DatasetID, t.RequestedBy, p.AuditFailure, t.Progress)
	})
	s.jobs.Register(lifecycle.KindExpireUploads, func(ctx context.Context, t *jobs.Task) (any, error) {
		return s.life.ExpireUploads(ctx, t.Progress)
	})
	return nil
}

// targetsView is the configured targets as lifecycle sees them.
type targetsView struct{ s *Server }

func (v targetsView) IDs() []string { return v.s.targetIDs }

func (v targetsView) Target(id string) (storage.Target, error) {
	t, err := v.s.target(id)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// lifecycleAccess is requireDataset(q, id, "custodian") for the deletion
// endpoints, which must also find a dataset hidden by a deletion
// (scheduled, running or done): only its custodians and admins learn that
// it was; everyone else gets the same 404 as everywhere else. A frozen
// caller is refused first.
func (s *Server) lifecycleAccess(q *request, id string) (*catalog.Dataset, *time.Time, error) {
	if err := s.checkUserFrozen(q); err != nil {
		return nil, nil, err
	}
	q.object = "dataset/" + id
	if api.ValidateDatasetID(id) != nil {
		return nil, nil, notFoundDataset(id)
	}
	ds, deleted, err := s.cat.DatasetIncludingDeleted(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil, notFoundDataset(id)
	}
	if err != nil {
		return nil, nil, internal("reading dataset", err)
	}
	if deleted == nil {
		if _, err := s.requireDataset(q, id, "custodian"); err != nil {
			return nil, nil, err
		}
		return ds, nil, nil
	}
	if s.isAdmin(q.user) {
		return ds, deleted, nil
	}
	roles, err := s.cat.Roles(q.ctx, id, q.user.principal(), s.today())
	if err != nil {
		return nil, nil, internal("reading roles", err)
	}
	if slices.Contains(roles, catalog.RoleCustodian) {
		return ds, deleted, nil
	}
	return nil, nil, notFoundDataset(id)
}

// deleteDataset ends a dataset (NBDC end of use) in two steps. The first
// call schedules it: the dataset is hidden from everyone at once and
// nothing else changes, so undelete can restore it as it was during the
// grace period. From the end of the grace period on, the deletion runs
// (runDeletion), started by the reaper or by this call repeated; a call
// before then only reports the schedule. A frozen dataset is refused.
func (s *Server) deleteDataset(q *request) error {
	id := q.r.PathValue("ds")
	ds, _, err := s.lifecycleAccess(q, id)
	if err != nil {
		return err
	}
	var req api.DeleteDatasetRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if req.Confirm != id {
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("deleting dataset %q needs confirm to repeat its id", id),
			hint: "run `dozo dataset delete " + id + " --confirm " + id + "`"}
	}
	if fr, err := s.isFrozen(q, catalog.FreezeDataset, id); err != nil {
		return err
	} else if fr {
		return frozenForLifecycle(id)
	}
	if err := s.lifecycleHeld(q, id); err != nil {
		return err
	}
	ctx := context.WithoutCancel(q.ctx)

	del, err := s.cat.Deletion(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		now := s.now()
		runsAt := now.Add(s.deletionGrace)
		// Recorded before the dataset is hidden: an audit failure stops
		// the deletion here.
		if err := s.event(ctx, q.user.Name, "dataset.delete.schedule", "dataset/"+id, audit.ResultOK,
			fmt.Sprintf("dataset hidden; its objects and then the key %s are destroyed from %s on, unless cancelled before",
				ds.TransitKey, runsAt.UTC().Format(time.RFC3339))); err != nil {
			return internal("recording the deletion in the audit log", err)
		}
		if del, err = s.cat.ScheduleDeletion(ctx, id, q.user.Name, now, runsAt); err != nil {
			return internal("scheduling the deletion", err)
		}
		return q.reply(http.StatusAccepted, deletionStatus(del, nil))
	}
	if err != nil {
		return internal("reading deletion state", err)
	}
	if del.RunStartedAt == nil && s.now().Before(del.RunsAt) {
		return q.reply(http.StatusAccepted, deletionStatus(del, nil))
	}
	var rep api.DeletionReport
	if err := s.runLifecycleJob(q, lifecycle.KindDeleteDataset, id, deleteParams{AuditFailure: true}, &rep); err != nil {
		return err
	}
	if del, err = s.cat.Deletion(ctx, id); err != nil {
		return internal("reading deletion state", err)
	}
	return q.reply(http.StatusOK, deletionStatus(del, &rep))
}

// deletionStatus describes del; rep is its report once complete.
func deletionStatus(del *catalog.Deletion, rep *api.DeletionReport) api.DeletionStatus {
	st := api.DeletionStatus{Dataset: del.DatasetID, State: api.DeletionScheduled,
		ScheduledBy: del.StartedBy, ScheduledAt: del.StartedAt.UTC(), RunsAt: del.RunsAt.UTC(), Report: rep}
	switch {
	case rep != nil:
		st.State = api.DeletionComplete
	case del.RunStartedAt != nil:
		st.State = api.DeletionRunning
	}
	return st
}

// undeleteDataset cancels a deletion that has not begun to run: the
// dataset is visible again with its files, members and grants (their
// dates unchanged) as they were. Allowed on a frozen dataset: it destroys
// nothing.
func (s *Server) undeleteDataset(q *request) error {
	id := q.r.PathValue("ds")
	if _, _, err := s.lifecycleAccess(q, id); err != nil {
		return err
	}
	if err := q.noBody(); err != nil {
		return err
	}
	if err := s.lifecycleHeld(q, id); err != nil {
		return err
	}
	ctx := context.WithoutCancel(q.ctx)
	none := &httpError{status: http.StatusConflict, msg: fmt.Sprintf("dataset %q has no deletion to cancel", id)}
	del, err := s.cat.Deletion(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return none
	}
	if err != nil {
		return internal("reading deletion state", err)
	}
	err = s.cat.CancelDeletion(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return none
	case errors.Is(err, catalog.ErrState):
		if del.FinishedAt != nil {
			return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("dataset %q was deleted; a finished deletion cannot be undone", id),
				hint: "`dozo dataset deletion-report " + id + "` shows what was destroyed"}
		}
		return pendingDeletion(del)
	case err != nil:
		return internal("cancelling the deletion", err)
	}
	s.recordEvent(ctx, q.user.Name, "dataset.delete.cancel", "dataset/"+id, audit.ResultOK,
		fmt.Sprintf("deletion asked for by %s at %s (due %s) cancelled; dataset visible again as it was",
			del.StartedBy, del.StartedAt.UTC().Format(time.RFC3339), del.RunsAt.UTC().Format(time.RFC3339)))
	st := deletionStatus(del, nil)
	st.State = api.DeletionCancelled
	return q.reply(http.StatusOK, st)
}

// DeletionLimits is what a deletion cannot achieve; every deletion report
// states it.
const DeletionLimits = lifecycle.DeletionLimits

// deletionReport returns a finished deletion's stored report.
func (s *Server) deletionReport(q *request) error {
	id := q.r.PathValue("ds")
	if _, _, err := s.lifecycleAccess(q, id); err != nil {
		return err
	}
	del, err := s.cat.Deletion(q.ctx, id)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return internal("reading the deletion", err)
	}
	if del != nil && del.Report == nil {
		return pendingDeletion(del)
	}
	if del == nil {
		// 409, not 404: only callers allowed to know the dataset get here,
		// and 404 is kept for "no such dataset (or none of yours)".
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("dataset %q has no finished deletion", id),
			hint: "a deletion that was interrupted finishes with `dozo dataset delete " + id + " --confirm " + id + "`"}
	}
	var rep api.DeletionReport
	if err := json.Unmarshal(del.Report, &rep); err != nil {
		return internal("reading the deletion report", err)
	}
	return q.reply(http.StatusOK, rep)
}
