package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// ProgressFunc reports how far a long step got.
type ProgressFunc func(done, total int64, note string)

// TransitVersion returns N of a Transit ciphertext or MAC "vault:vN:...".
func TransitVersion(s string) (int, bool) {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return 0, false
	}
	n, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(n)
	return v, err == nil && v > 0
}

// HeaderVersion returns the Transit key version that wraps the file key
// in a stored header object.
func HeaderVersion(obj []byte, keyName string) (int, error) {
	hdr, _, err := crypto.SplitHeaderObject(obj)
	if err != nil {
		return 0, err
	}
	h, err := crypto.ParseHeader(hdr)
	if err != nil {
		return 0, err
	}
	for _, st := range h.Stanzas {
		if st.Type == crypto.TransitStanzaType && len(st.Args) == 1 && st.Args[0] == keyName {
			if v, ok := TransitVersion(string(st.Body)); ok {
				return v, nil
			}
			return 0, errors.New("transit stanza without a key version")
		}
	}
	return 0, fmt.Errorf("no %s stanza for key %q", crypto.TransitStanzaType, keyName)
}

// RotateKey rotates a dataset's Transit key and moves every stored header
// and manifest to the new version, then raises min_decryption_version so
// old versions can decrypt nothing. Payload objects are never touched:
// only the small header and manifest objects are rewritten. The file keys
// stay the same, so a file key a grantee obtained by fetching still
// decrypts that file's payload: rotation retires key versions, it does not
// take back keys already handed out.
//
// It is resumable: the target version is recorded before any header
// changes, and each file's progress is its own header (whose Transit
// ciphertext names its key version), so a rerun continues with the files
// still under an older version. Uploads begun meanwhile are picked up by
// repeating the pass until it finds nothing to do; min_decryption_version
// is raised only after that. actor is who asked for it.
func (s *Service) RotateKey(ctx context.Context, id, actor string, progress ProgressFunc) (*api.RotateKeyResponse, error) {
	if err := s.Frozen(ctx, id); err != nil {
		return nil, err
	}
	ds, err := s.Catalog.Dataset(ctx, id)
	if err != nil {
		return nil, op("reading dataset", err)
	}
	key := ds.TransitKey
	resp := &api.RotateKeyResponse{Dataset: id, Key: key}

	rot, err := s.Catalog.OpenRotation(ctx, id)
	switch {
	case err == nil:
		resp.Resumed = true
		resp.FromVersion = rot.TargetVersion - 1
	case errors.Is(err, catalog.ErrNotFound):
		before, err := s.Keys.ReadKey(ctx, key)
		if err != nil {
			return nil, op("reading the dataset key", err)
		}
		resp.FromVersion = before.LatestVersion
		// Recorded before Vault changes anything: an audit failure stops
		// the rotation here.
		if err := s.Event(ctx, actor, "dataset.rotate-key.start", "dataset/"+id, audit.ResultOK,
			fmt.Sprintf("rotating key %s from version %d", key, before.LatestVersion)); err != nil {
			return nil, op("recording the rotation in the audit log", err)
		}
		if err := s.Keys.Rotate(ctx, key); err != nil {
			return nil, op("rotating the dataset key", err)
		}
		after, err := s.Keys.ReadKey(ctx, key)
		if err != nil {
			return nil, op("reading the dataset key", err)
		}
		if rot, err = s.Catalog.StartRotation(ctx, id, after.LatestVersion, actor, s.Now()); err != nil {
			return nil, op("recording the rotation", err)
		}
	default:
		return nil, op("reading rotation state", err)
	}
	resp.ToVersion = rot.TargetVersion
	resp.StartedAt = rot.StartedAt

	// Passes until one finds nothing left under an older version: an
	// upload that began (wrapping its key under the old version) while a
	// pass ran is caught by the next one.
	for pass := 0; ; pass++ {
		ids, err := s.Catalog.FileKeyIDs(ctx, id)
		if err != nil {
			return nil, op("listing files", err)
		}
		resp.Files = len(ids)
		changed, conflicts := 0, 0
		for i, fid := range ids {
			progress(int64(i), int64(len(ids)), fmt.Sprintf("pass %d: file %d of %d", pass+1, i+1, len(ids)))
			if err := ctx.Err(); err != nil {
				return nil, &Unavailable{Msg: fmt.Sprintf("key rotation of %s stopped at file %s", id, fid),
					Hint: "run `dozo dataset rotate-key " + id + "` again: it resumes where it stopped", Err: context.Cause(ctx)}
			}
			did, err := s.rotateFile(ctx, ds, fid, rot.TargetVersion)
			if errors.Is(err, catalog.ErrState) {
				conflicts++ // changed under us (an upload completed): next pass
				continue
			}
			if err != nil {
				s.record(context.WithoutCancel(ctx), actor, "dataset.rotate-key", "file/"+fid, audit.ResultError, "rotation interrupted; rerun to resume")
				return nil, &Unavailable{Msg: fmt.Sprintf("key rotation of %s interrupted at file %s", id, fid),
					Hint: "run `dozo dataset rotate-key " + id + "` again: it resumes where it stopped", Err: err}
			}
			if did {
				changed++
				if err := s.Catalog.AddRewrapped(ctx, rot.ID, 1); err != nil {
					return nil, op("recording rotation progress", err)
				}
			}
		}
		progress(int64(len(ids)), int64(len(ids)), fmt.Sprintf("pass %d done: %d rewrapped", pass+1, changed))
		if changed == 0 && conflicts == 0 {
			break
		}
		if pass >= 10 {
			return nil, &Unavailable{Msg: fmt.Sprintf("key rotation of %s: files keep changing (uploads in flight)", id),
				Hint: "run `dozo dataset rotate-key " + id + "` again in a moment: it resumes"}
		}
	}

	v := rot.TargetVersion
	if err := s.Keys.ConfigureKey(ctx, key, vault.KeyConfig{MinDecryptionVersion: &v}); err != nil {
		return nil, op("raising min_decryption_version", err)
	}
	// MACs under older versions no longer verify in Vault; nor here.
	if s.Retired != nil {
		s.Retired()
	}

	// A complete that read its upload's header before this rotation
	// rewrote it stores the old header next to the pieces; put the
	// catalog's (current) copy there again for every file completed since
	// the rotation began (in this run or an interrupted one).
	done, err := s.Catalog.FilesCompletedSince(ctx, id, rot.StartedAt)
	if err != nil {
		return nil, op("listing files", err)
	}
	for _, fid := range done {
		if err := s.refreshStoredMetadata(ctx, ds, fid); err != nil {
			return nil, &Unavailable{Msg: fmt.Sprintf("key rotation of %s: storing the header of %s failed", id, fid),
				Hint: "run `dozo dataset rotate-key " + id + "` again: it resumes", Err: err}
		}
	}

	// An upload whose key was wrapped under the old version in the instant
	// before the raise has a header nothing can open any more: end it, so
	// it can never become available, and tell the caller.
	ids, err := s.Catalog.FileKeyIDs(ctx, id)
	if err != nil {
		return nil, op("listing files", err)
	}
	for _, fid := range ids {
		f, err := s.Catalog.File(ctx, fid)
		if err != nil {
			return nil, op("reading a file", err)
		}
		if hv, err := HeaderVersion(f.HeaderObject, key); err == nil && hv >= v {
			continue
		}
		if f.State == catalog.FileUploading {
			if err := s.Catalog.AbortUploadOfFile(ctx, fid, s.Now()); err != nil && !errors.Is(err, catalog.ErrState) {
				return nil, op("ending a stale upload", err)
			}
			resp.AbortedUploads = append(resp.AbortedUploads, f.Name)
			s.record(ctx, "dozod", "upload.abort", "file/"+fid, audit.ResultOK, "upload began during key rotation; its header is under a retired key version")
			continue
		}
		s.Log.Error("file header under a retired key version after rotation", "dataset", id, "file", fid)
		return nil, op("rotating the key", fmt.Errorf("file %s is still under an old key version", fid))
	}

	fin, err := s.Catalog.FinishRotation(ctx, rot.ID, s.Now())
	if err != nil {
		return nil, op("recording the rotation", err)
	}
	resp.Rewrapped, resp.FinishedAt = fin.Rewrapped, *fin.FinishedAt
	if err := s.Event(ctx, actor, "dataset.rotate-key.done", "dataset/"+id, audit.ResultOK,
		fmt.Sprintf("key %s now at version %d (min_decryption_version %d); %d headers/manifests rewrapped; payload untouched", key, v, v, fin.Rewrapped)); err != nil {
		return nil, op("recording the rotation in the audit log", err)
	}
	return resp, nil
}

// rotateFile moves one file's header (and manifest MAC, for a complete
// file) to key version target. It reports whether it changed anything. The
// copies on storage are written before the catalog, so an interruption
// leaves the catalog pointing at the older version and a rerun redoes the
// file; never the reverse (a catalog ahead of storage would leave storage
// with a header nothing can open).
//
// The file key exists in this process only inside RewrapHeaderObject,
// which checks the header MAC before rewrapping: only authentic headers
// are carried over.
func (s *Service) rotateFile(ctx context.Context, ds *catalog.Dataset, fid string, target int) (bool, error) {
	f, err := s.Catalog.File(ctx, fid)
	if err != nil {
		return false, err
	}
	switch f.State {
	case catalog.FileUploading, catalog.FileAvailable, catalog.FileDamaged:
	default:
		return false, nil
	}
	key := ds.TransitKey
	hv, err := HeaderVersion(f.HeaderObject, key)
	if err != nil {
		return false, fmt.Errorf("file %s: stored header: %w", fid, err)
	}
	var m *storage.Manifest
	needManifest := false
	if f.Manifest != nil {
		if m, err = storage.ParseManifest(f.Manifest); err != nil {
			return false, fmt.Errorf("file %s: manifest: %w", fid, err)
		}
		mv, _ := TransitVersion(m.MAC)
		needManifest = mv < target
	}
	if hv >= target && !needManifest {
		return false, nil
	}
	newHdr := f.HeaderObject
	if hv < target {
		newHdr, err = crypto.RewrapHeaderObject(f.HeaderObject,
			crypto.NewTransitIdentity(ctx, s.Keys, key, fid), crypto.NewTransitRecipient(ctx, s.Keys, key, fid))
		if err != nil {
			return false, fmt.Errorf("file %s: rewrapping the header: %w", fid, err)
		}
	}
	var newMan []byte
	if m != nil {
		auth := s.manifestAuth(key)
		if needManifest {
			// Never re-sign what does not verify now.
			if err := m.Verify(ctx, auth); err != nil || m.DatasetID != ds.ID || m.FileID != fid {
				return false, fmt.Errorf("file %s: manifest does not verify: %v", fid, err)
			}
			if err := m.Sign(ctx, auth); err != nil {
				return false, fmt.Errorf("file %s: signing the manifest: %w", fid, err)
			}
			if newMan, err = m.Marshal(); err != nil {
				return false, err
			}
		}
		targets, err := s.fileTargets(ctx, fid)
		if err != nil {
			return false, err
		}
		if err := filestore.PutMetadata(ctx, targets, m, newHdr); err != nil {
			return false, err
		}
	}
	return true, s.Catalog.ReplaceKeyMaterial(ctx, fid, f.HeaderObject, newHdr, f.Manifest, newMan)
}

// refreshStoredMetadata writes the catalog's header and manifest of an
// available file to storage again.
func (s *Service) refreshStoredMetadata(ctx context.Context, ds *catalog.Dataset, fid string) error {
	f, err := s.Catalog.File(ctx, fid)
	if err != nil || f.State != catalog.FileAvailable || f.Manifest == nil {
		return err
	}
	m, err := storage.ParseManifest(f.Manifest)
	if err != nil {
		return err
	}
	if err := m.Verify(ctx, s.manifestAuth(ds.TransitKey)); err != nil {
		return err
	}
	targets, err := s.fileTargets(ctx, fid)
	if err != nil {
		return err
	}
	return filestore.PutMetadata(ctx, targets, m, f.HeaderObject)
}
