package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// RunDeletion runs a dataset's deletion to its end: it removes every
// object of it on every configured target (every version), and only then
// destroys its Transit key, so the ciphertext that was stored, wherever a
// copy of it survives (a storage backup, a stolen header and pieces), can
// no longer be decrypted with the dataset key. Each step is idempotent, so
// a rerun after an interruption finishes the job; the key is never
// destroyed while an object might remain, and the report is written last.
// The caller holds the dataset's job lock (LockKey). auditFailure records
// an interrupted purge (scheduled runs, retried every round, only log it).
func (s *Service) RunDeletion(ctx context.Context, id, actor string, auditFailure bool, progress ProgressFunc) (*api.DeletionReport, error) {
	if err := s.Frozen(ctx, id); err != nil {
		return nil, err
	}
	ds, _, err := s.Catalog.DatasetIncludingDeleted(ctx, id)
	if err != nil {
		return nil, op("reading dataset", err)
	}
	del, err := s.Catalog.Deletion(ctx, id)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return nil, op("reading deletion state", err)
	}
	if del == nil || del.RunStartedAt == nil {
		if err := s.Event(ctx, actor, "dataset.delete.start", "dataset/"+id, audit.ResultOK,
			"grace period over: deleting every object and then the key "+ds.TransitKey); err != nil {
			return nil, op("recording the deletion in the audit log", err)
		}
	}
	if del, err = s.Catalog.StartDeletion(ctx, id, actor, s.Now()); err != nil {
		return nil, op("starting the deletion", err)
	}

	// Purge until a pass finds nothing: a PUT presigned before the
	// deletion may still land, for at most one presign lifetime.
	prefix := storage.DatasetPrefix(id)
	targets := s.Targets.IDs()
	var removed int64
	for pass := 0; ; pass++ {
		found := 0
		for i, tid := range targets {
			progress(removed, 0, fmt.Sprintf("pass %d: purging target %s (%d of %d)", pass+1, tid, i+1, len(targets)))
			err := ctx.Err()
			if err == nil {
				var t storage.Target
				if t, err = s.Targets.Target(tid); err == nil {
					err = storage.Purge(ctx, t, prefix, func(o storage.PurgedObject) error {
						found++
						removed++
						return s.Catalog.RecordDeletedObject(ctx, id, catalog.DeletedObject{Target: tid, Key: o.Key, VersionID: o.VersionID,
							Size: o.Size, DeleteMarker: o.DeleteMarker, DeletedAt: s.Now()})
					})
				}
			}
			if err != nil {
				if auditFailure {
					s.record(context.WithoutCancel(ctx), actor, "dataset.delete", "dataset/"+id, audit.ResultError, "purging target "+tid+" failed; deletion incomplete, key kept")
				}
				return nil, &Unavailable{Msg: fmt.Sprintf("deleting the objects of %s on target %s failed; the key is not destroyed yet", id, tid),
					Hint: "bring the target back, then run `dozo dataset delete " + id + " --confirm " + id + "` again: it resumes",
					Err:  err}
			}
		}
		if found == 0 {
			break
		}
		if pass >= 3 {
			return nil, &Unavailable{Msg: fmt.Sprintf("objects of %s keep appearing on storage", id),
				Hint: fmt.Sprintf("wait %s (the presigned URL lifetime) and run the deletion again", s.PresignExpiry)}
		}
	}

	// Every object is gone: now the key.
	progress(removed, removed, "objects removed; destroying the key")
	if del.KeyDestroyedAt == nil {
		info, err := s.Keys.ReadKey(ctx, ds.TransitKey)
		switch {
		case err == nil:
			if err := s.Catalog.RecordDeletionKey(ctx, id, ds.TransitKey, info.LatestVersion); err != nil {
				return nil, op("recording the key", err)
			}
			if err := s.Keys.DeleteKey(ctx, ds.TransitKey); err != nil {
				return nil, op("destroying the dataset key", err)
			}
		case errors.Is(err, vault.ErrNotFound):
			// Destroyed by an earlier run that stopped before recording it.
			if err := s.Catalog.RecordDeletionKey(ctx, id, ds.TransitKey, del.KeyVersions); err != nil {
				return nil, op("recording the key", err)
			}
		default:
			return nil, op("reading the dataset key", err)
		}
		if _, err := s.Keys.ReadKey(ctx, ds.TransitKey); !errors.Is(err, vault.ErrNotFound) {
			return nil, op("destroying the dataset key", fmt.Errorf("key %s still readable after delete: %v", ds.TransitKey, err))
		}
		if err := s.Catalog.MarkKeyDestroyed(ctx, id, s.Now()); err != nil {
			return nil, op("recording the key destruction", err)
		}
	}

	rep, err := s.buildReport(ctx, ds, actor)
	if err != nil {
		return nil, op("building the deletion report", err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, op("encoding the deletion report", err)
	}
	if err := s.Catalog.FinishDeletion(ctx, id, b, rep.FinishedAt); err != nil {
		return nil, op("storing the deletion report", err)
	}
	if err := s.Event(ctx, actor, "dataset.delete.done", "dataset/"+id, audit.ResultOK,
		fmt.Sprintf("%d object versions removed from %d targets; key %s (versions 1-%d) destroyed", len(rep.Objects), len(rep.Targets), rep.Key.Name, rep.Key.Versions)); err != nil {
		return nil, op("recording the deletion in the audit log", err)
	}
	return rep, nil
}

// DeletionLimits is what a deletion cannot achieve; every deletion report
// states it, so the termination report claims no more than was done.
const DeletionLimits = "Outside the reach of this deletion: copies that grantees fetched before it " +
	"(decrypted files, and the file keys they obtained, each of which decrypts its file's ciphertext wherever a copy survives), " +
	"and backups or snapshots of Vault taken before the key was destroyed (from which the key could be restored). " +
	"Those must be disposed of separately."

// buildReport assembles the report from the catalog's record of the
// deletion.
func (s *Service) buildReport(ctx context.Context, ds *catalog.Dataset, by string) (*api.DeletionReport, error) {
	del, err := s.Catalog.Deletion(ctx, ds.ID)
	if err != nil {
		return nil, err
	}
	files, err := s.Catalog.AllFiles(ctx, ds.ID)
	if err != nil {
		return nil, err
	}
	objs, err := s.Catalog.DeletedObjects(ctx, ds.ID)
	if err != nil {
		return nil, err
	}
	rep := &api.DeletionReport{
		Dataset: ds.ID, Title: ds.Title, Status: "complete",
		StartedBy: del.StartedBy, StartedAt: del.StartedAt, FinishedBy: by, FinishedAt: s.Now().UTC(),
		Files: []api.DeletedFile{}, Objects: []api.DeletedObject{}, Targets: slices.Clone(s.Targets.IDs()),
		Key: api.DestroyedKey{Name: del.KeyName, Versions: del.KeyVersions},
	}
	if del.FinishedAt != nil {
		rep.FinishedAt = *del.FinishedAt
	}
	if del.KeyDestroyedAt != nil {
		rep.Key.DestroyedAt = *del.KeyDestroyedAt
	}
	if del.RunStartedAt != nil {
		rep.RunStartedAt = del.RunStartedAt.UTC()
	}
	var bytes int64
	for _, f := range files {
		rep.Files = append(rep.Files, api.DeletedFile{ID: f.ID, Name: f.Name, Size: f.Size, SHA256: f.SHA256, MD5: f.MD5, State: f.State})
	}
	for _, o := range objs {
		rep.Objects = append(rep.Objects, api.DeletedObject{Target: o.Target, Key: o.Key, VersionID: o.VersionID, Size: o.Size,
			DeleteMarker: o.DeleteMarker, DeletedAt: o.DeletedAt})
		bytes += o.Size
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	rep.Statement = fmt.Sprintf("Dataset %s (%q, %d files) was deleted from dozo. %s asked for the deletion at %s, when the dataset was hidden "+
		"from every user; it ran after the grace period, from %s to %s. All %d stored object versions (%d bytes of ciphertext) on the %d "+
		"storage targets %s were removed. The dataset's encryption key %s (versions 1-%d) was then destroyed in HashiCorp Vault at %s, "+
		"so the file keys wrapped in the stored headers can no longer be unwrapped: a copy of that ciphertext kept elsewhere (a storage "+
		"backup, a copied header and pieces) cannot be decrypted with the dataset key, which exists nowhere in this Vault any more. %s "+
		"Deletion completed by %s.",
		ds.ID, ds.Title, len(files), rep.StartedBy, ts(rep.StartedAt), ts(rep.RunStartedAt), ts(rep.FinishedAt),
		len(objs), bytes, len(rep.Targets), strings.Join(rep.Targets, ", "),
		rep.Key.Name, rep.Key.Versions, ts(rep.Key.DestroyedAt), DeletionLimits, rep.FinishedBy)
	return rep, nil
}
