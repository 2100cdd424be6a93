package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
)

// cleanUpload deletes every object under an ended upload's file prefix on
// every target the upload could have used, then records the clean-up.
func (s *Server) cleanUpload(ctx context.Context, u *catalog.Upload) error {
	prefix := storage.FilePrefix(u.File.DatasetID, u.File.ID)
	var errs []error
	for _, ref := range u.Targets {
		t, ok := s.targets[ref.ID]
		if !ok {
			errs = append(errs, fmt.Errorf("target %s not configured", ref.ID))
			continue
		}
		err := t.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			return t.Delete(ctx, oi.Key)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.cat.MarkCleaned(ctx, u.ID, s.now())
}

// Reap expires open uploads past their expiry, deletes the pieces of ended
// ones, and runs the dataset deletions whose grace period is over
// (lifecycle.go). It is safe to run at any time and from one goroutine.
func (s *Server) Reap(ctx context.Context) error {
	now := s.now()
	ids, err := s.cat.ExpiredUploads(ctx, now)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.cat.EndUpload(ctx, id, catalog.UploadExpired, now); err != nil && !errors.Is(err, catalog.ErrState) {
			return err
		}
		s.recordEvent(ctx, "dozod", "upload.expire", "upload/"+id, "ok", "idle past upload_expiry")
	}
	todo, err := s.cat.UploadsToClean(ctx, s.presign)
	if err != nil {
		return err
	}
	var errs []error
	for i := range todo {
		if err := s.cleanUpload(ctx, &todo[i]); err != nil {
			errs = append(errs, fmt.Errorf("upload %s: %w", todo[i].ID, err))
			continue
		}
		s.recordEvent(ctx, "dozod", "upload.clean", "upload/"+todo[i].ID, "ok", "pieces of the ended upload deleted")
	}
	if err := s.runDueDeletions(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RunReaper calls Reap every interval until ctx is done.
func (s *Server) RunReaper(ctx context.Context, interval time.Duration) {
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
