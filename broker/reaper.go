package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/jobs"
	"github.com/dozo-vault/dozo/lifecycle"
)

// ReapInterval is how often RunReaper calls Reap.
const ReapInterval = time.Minute

// MaxRetryWait bounds how long the reaper waits before retrying periodic
// work whose jobs keep failing (a deletion while a target is down): the
// wait doubles from ReapInterval with every failure in a row, up to this.
const MaxRetryWait = 6 * time.Hour

// Reap runs dozod's periodic lifecycle work as jobs and waits for them:
// upload expiry (open uploads idle past their expiry end, the pieces of
// ended ones are deleted), then every dataset deletion whose grace period
// is over; and it deletes the records of jobs that ended longer ago than
// the retention ([jobs] retention). A round with nothing to do records no
// job. Work another dozod (or a custodian) is already doing is left to
// it: the job's lock key is taken. Each job of a round has an id made of
// its work and the round's minute on the catalog's clock (one clock for
// every dozod, however theirs differ), so of several dozods sharing a
// catalog one records it. Work whose jobs failed in a row is retried
// after a wait that doubles each time (retryWait). A due deletion of a
// frozen dataset waits for the freeze to be lifted; Reap reports it. It
// is safe to run at any time, on any number of dozods.
func (s *Server) Reap(ctx context.Context) error {
	var errs []error
	var started []*jobs.Job
	clock := s.roundClock
	if clock == nil {
		clock = s.cat.Now
	}
	now, err := clock(ctx)
	if err != nil {
		return err
	}
	slot := now.Truncate(ReapInterval).Unix()
	submit := func(spec jobs.Spec) {
		if wait, err := s.retryWait(ctx, spec.Kind, spec.DatasetID); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", spec.Kind, err))
			return
		} else if wait {
			return
		}
		spec.ID = "job-" + spec.Kind
		if spec.DatasetID != "" {
			spec.ID += "-" + spec.DatasetID
		}
		spec.ID += fmt.Sprintf("-%d", slot)
		j, err := s.jobs.Submit(ctx, spec)
		switch {
		case errors.Is(err, jobs.ErrBusy):
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", spec.Kind, err))
		default:
			started = append(started, j)
		}
	}
	if s.jobRetention > 0 {
		// Jobs are stamped by the job runner's clock.
		before := s.jobs.Now().Add(-s.jobRetention)
		if n, err := s.cat.PruneJobs(ctx, before); err != nil {
			errs = append(errs, err)
		} else if n > 0 {
			s.log.Info("deleted the records of old jobs", "jobs", n, "ended_before", before.UTC().Format(time.RFC3339))
		}
	}
	due, err := s.life.UploadWorkDue(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if due {
		submit(jobs.Spec{Kind: lifecycle.KindExpireUploads, LockKey: lifecycle.KindExpireUploads, RequestedBy: "dozod"})
		// Expiry before deletions, as a round always did.
		errs = append(errs, s.waitJobs(ctx, started)...)
		started = nil
	}
	ids, err := s.cat.DueDeletions(ctx, s.now())
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, id := range ids {
		if fr, err := s.datasetFrozen(ctx, id); err != nil || fr {
			if fr {
				err = lifecycle.ErrFrozen
			}
			errs = append(errs, fmt.Errorf("deletion of %s: %w", id, err))
			continue
		}
		submit(jobs.Spec{Kind: lifecycle.KindDeleteDataset, DatasetID: id, LockKey: lifecycle.LockKey(id),
			Params: deleteParams{AuditFailure: false}, RequestedBy: "dozod"})
	}
	errs = append(errs, s.waitJobs(ctx, started)...)
	return errors.Join(errs...)
}

// retryWait reports whether periodic work of kind on dataset id (""
// none) must wait before the reaper tries it again: after n of its jobs
// requested by dozod failed in a row, the next waits ReapInterval·2^(n-1)
// (at most MaxRetryWait) from the end of the last. A target that stays
// down thus adds a failed job every few hours, not every minute; the
// first success resets the wait.
func (s *Server) retryWait(ctx context.Context, kind, id string) (bool, error) {
	f := catalog.JobFilter{Kind: kind, Limit: 16}
	if id != "" {
		f.DatasetIDs = []string{id}
	}
	js, err := s.cat.Jobs(ctx, f)
	if err != nil {
		return false, err
	}
	failed := 0
	var last time.Time
	for _, j := range js {
		if j.RequestedBy != "dozod" || !j.Finished() || (id == "" && j.DatasetID != "") {
			continue
		}
		if j.State != catalog.JobFailed {
			break
		}
		if failed == 0 && j.EndedAt != nil {
			last = *j.EndedAt
		}
		failed++
	}
	if failed == 0 {
		return false, nil
	}
	wait := ReapInterval << min(failed-1, 20)
	wait = min(wait, MaxRetryWait)
	return s.jobs.Now().Before(last.Add(wait)), nil
}

// datasetFrozen reports whether an administrator froze the dataset.
func (s *Server) datasetFrozen(ctx context.Context, id string) (bool, error) {
	if err := s.life.Frozen(ctx, id); errors.Is(err, lifecycle.ErrFrozen) {
		return true, nil
	} else {
		return false, err
	}
}

// waitJobs waits for each job and returns the errors of those that did
// not end done.
func (s *Server) waitJobs(ctx context.Context, js []*jobs.Job) []error {
	var errs []error
	for _, j := range js {
		if _, err := s.jobs.Wait(ctx, j.ID); err != nil {
			what := j.Kind
			if j.DatasetID != "" {
				what = "deletion of " + j.DatasetID
			}
			errs = append(errs, fmt.Errorf("%s (job %s): %w", what, j.ID, err))
		}
	}
	return errs
}

// RunReaper runs the job runner (resuming jobs a previous dozod left
// unfinished, taking over those of a dozod that died) and calls Reap every
// interval, until ctx is done; then it stops the runner, putting its
// unfinished jobs back in the queue for the next dozod.
func (s *Server) RunReaper(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = ReapInterval
	}
	s.jobs.Start(ctx)
	defer s.jobs.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Reap(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reaper", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cleanUpload deletes the pieces of an ended upload now (an abort); the
// expiry job repeats it once every URL presigned for it has expired.
func (s *Server) cleanUpload(ctx context.Context, u *catalog.Upload) error {
	return s.life.CleanUpload(ctx, u)
}
