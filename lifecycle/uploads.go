package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
)

// KindExpireUploads is the periodic job that ends idle uploads and
// deletes the pieces of ended ones.
const KindExpireUploads = "expire-uploads"

// UploadWorkDue reports whether ExpireUploads has anything to do now, so
// a periodic round with nothing to do records no job.
func (s *Service) UploadWorkDue(ctx context.Context) (bool, error) {
	ids, err := s.Catalog.ExpiredUploads(ctx, s.Now())
	if err != nil || len(ids) > 0 {
		return len(ids) > 0, err
	}
	todo, err := s.Catalog.UploadsToClean(ctx, s.PresignExpiry)
	return len(todo) > 0, err
}

// ExpireUploads ends open uploads past their expiry and deletes the
// pieces of ended ones (once no presigned PUT can land any more). It is
// idempotent: a rerun finds what is left.
func (s *Service) ExpireUploads(ctx context.Context, progress ProgressFunc) (map[string]int, error) {
	now := s.Now()
	ids, err := s.Catalog.ExpiredUploads(ctx, now)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		progress(int64(i), int64(len(ids)), "expiring idle uploads")
		if err := s.Catalog.EndUpload(ctx, id, catalog.UploadExpired, now); err != nil && !errors.Is(err, catalog.ErrState) {
			return nil, err
		}
		s.record(ctx, "dozod", "upload.expire", "upload/"+id, audit.ResultOK, "idle past upload_expiry")
	}
	todo, err := s.Catalog.UploadsToClean(ctx, s.PresignExpiry)
	if err != nil {
		return nil, err
	}
	var errs []error
	cleaned := 0
	for i := range todo {
		progress(int64(i), int64(len(todo)), "deleting the pieces of ended uploads")
		if err := s.CleanUpload(ctx, &todo[i]); err != nil {
			errs = append(errs, fmt.Errorf("upload %s: %w", todo[i].ID, err))
			continue
		}
		cleaned++
		s.record(ctx, "dozod", "upload.clean", "upload/"+todo[i].ID, audit.ResultOK, "pieces of the ended upload deleted")
	}
	return map[string]int{"expired": len(ids), "cleaned": cleaned}, errors.Join(errs...)
}

// CleanUpload deletes every object under an ended upload's file prefix on
// every target the upload could have used, then records the clean-up.
func (s *Service) CleanUpload(ctx context.Context, u *catalog.Upload) error {
	prefix := storage.FilePrefix(u.File.DatasetID, u.File.ID)
	var errs []error
	for _, ref := range u.Targets {
		t, err := s.Targets.Target(ref.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s not configured", ref.ID))
			continue
		}
		err = t.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			return t.Delete(ctx, oi.Key)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.Catalog.MarkCleaned(ctx, u.ID, s.Now(), s.PresignExpiry)
}
