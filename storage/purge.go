package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/minio/minio-go/v7"
)

// PurgedObject is one object version a Purge removed.
type PurgedObject struct {
	Key string
	// VersionID is the S3 version removed ("null" for the null version of
	// an unversioned bucket; "" on targets without versions).
	VersionID    string
	Size         int64
	DeleteMarker bool
}

// versionPurger is a target that keeps object versions and can remove
// them all (S3Target).
type versionPurger interface {
	PurgeVersions(ctx context.Context, prefix string, fn func(PurgedObject) error) error
}

// Purge removes every object under prefix on t, including every stored
// version and delete marker where the target keeps versions, so nothing
// under prefix can be restored from the target afterwards. fn is called
// before each removal (to record it), so a process killed between the two
// leaves a record of an object still there, which the next purge finds
// and removes, never a removed object without a record; an error from fn
// stops the purge before that object is touched.
// Purging an empty prefix is refused: it would empty the whole target.
//
// A target that wraps another (say, a health-checking wrapper) should
// implement Unwrap() Target, so Purge reaches the versions underneath.
func Purge(ctx context.Context, t Target, prefix string, fn func(PurgedObject) error) error {
	if prefix == "" {
		return errors.New("storage: refusing to purge an empty prefix (the whole target)")
	}
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	for {
		if p, ok := t.(versionPurger); ok {
			return p.PurgeVersions(ctx, prefix, fn)
		}
		u, ok := t.(interface{ Unwrap() Target })
		if !ok {
			break
		}
		t = u.Unwrap()
	}
	// No versions to chase: list, then delete (deleting while listing can
	// skip entries on some stores).
	var objs []ObjectInfo
	if err := t.List(ctx, prefix, func(oi ObjectInfo) error { objs = append(objs, oi); return nil }); err != nil {
		return err
	}
	for _, oi := range objs {
		if err := fn(PurgedObject{Key: oi.Key, Size: oi.Size}); err != nil {
			return err
		}
		if err := t.Delete(ctx, oi.Key); err != nil {
			return err
		}
	}
	return nil
}

// PurgeVersions removes every version and delete marker of every object
// under prefix in the bucket (S3 ListObjectVersions + DeleteObject with a
// version id: common S3 API, no MinIO admin call).
func (s *S3Target) PurgeVersions(ctx context.Context, prefix string, fn func(PurgedObject) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	var objs []minio.ObjectInfo
	lctx, cancel := context.WithCancel(ctx)
	for oi := range s.client.ListObjects(lctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if oi.Err != nil {
			cancel()
			return fmt.Errorf("list versions of %q on %s: %w", prefix, s.cfg.ID, oi.Err)
		}
		objs = append(objs, oi)
	}
	cancel()
	for _, oi := range objs {
		if err := ValidateKey(oi.Key); err != nil {
			return fmt.Errorf("purge on %s: %w", s.cfg.ID, err)
		}
		if err := fn(PurgedObject{Key: oi.Key, VersionID: oi.VersionID, Size: oi.Size, DeleteMarker: oi.IsDeleteMarker}); err != nil {
			return err
		}
		err := s.client.RemoveObject(ctx, s.cfg.Bucket, oi.Key, minio.RemoveObjectOptions{VersionID: oi.VersionID})
		if err != nil && !errors.Is(s.errorf("delete", oi.Key, err), ErrNotFound) {
			return s.errorf("delete", oi.Key, err)
		}
	}
	return ctx.Err()
}
