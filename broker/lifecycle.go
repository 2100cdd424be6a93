package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// LifecycleConfig is the [lifecycle] section of dozod's config.
type LifecycleConfig struct {
	// DeletionGrace is how long a deletion waits, the dataset hidden from
	// everyone, before it runs; until then a custodian or admin can cancel
	// it and get the dataset back as it was.
	DeletionGrace time.Duration `toml:"deletion_grace"`
}

// DefaultDeletionGrace leaves a week to notice a mistaken or malicious
// deletion before anything is destroyed.
const DefaultDeletionGrace = 7 * 24 * time.Hour

const lifecycleConfigHelp = `  [lifecycle]
  deletion_grace      DOZOD_DELETION_GRACE       168h (7 days): a deletion hides the dataset at once and
                                                 runs after this; cancellable until then (1s..8760h)
`

func (c *LifecycleConfig) applyEnv(getenv func(string) string) error {
	if v := getenv("DOZOD_DELETION_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("DOZOD_DELETION_GRACE: %w", err)
		}
		c.DeletionGrace = d
	}
	return nil
}

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

// tryLockDataset takes the dataset's lifecycle lock (Server.lifecycleLocks:
// one mutex per dataset), so a rotation and a deletion (or two of either)
// never run on one dataset at once.
func (s *Server) tryLockDataset(id string) (unlock func(), ok bool) {
	m, _ := s.lifecycleLocks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	if !mu.TryLock() {
		return nil, false
	}
	return mu.Unlock, true
}

func busy(id string) *httpError {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("a key rotation or deletion of dataset %q is already running", id),
		hint: "wait for it to finish, then run the command again if needed"}
}

// transitVersion returns N of a Transit ciphertext or MAC "vault:vN:...".
func transitVersion(s string) (int, bool) {
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

// headerVersion returns the Transit key version that wraps the file key
// in a stored header object.
func headerVersion(obj []byte, keyName string) (int, error) {
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
			if v, ok := transitVersion(string(st.Body)); ok {
				return v, nil
			}
			return 0, errors.New("transit stanza without a key version")
		}
	}
	return 0, fmt.Errorf("no %s stanza for key %q", crypto.TransitStanzaType, keyName)
}

// rotateKey rotates a dataset's Transit key and moves every stored header
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
// is raised only after that.
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
	unlock, ok := s.tryLockDataset(id)
	if !ok {
		return busy(id)
	}
	defer unlock()
	// Finish even if the client gives up waiting: a rotation half done is
	// safe, but done is better.
	ctx := context.WithoutCancel(q.ctx)
	ds := a.ds
	key := ds.TransitKey
	resp := api.RotateKeyResponse{Dataset: id, Key: key}

	rot, err := s.cat.OpenRotation(ctx, id)
	switch {
	case err == nil:
		resp.Resumed = true
		resp.FromVersion = rot.TargetVersion - 1
	case errors.Is(err, catalog.ErrNotFound):
		before, err := s.keys.ReadKey(ctx, key)
		if err != nil {
			return internal("reading the dataset key", err)
		}
		resp.FromVersion = before.LatestVersion
		// Recorded before Vault changes anything: an audit failure stops
		// the rotation here.
		if err := s.event(ctx, q.user.Name, "dataset.rotate-key.start", "dataset/"+id, audit.ResultOK,
			fmt.Sprintf("rotating key %s from version %d", key, before.LatestVersion)); err != nil {
			return internal("recording the rotation in the audit log", err)
		}
		if err := s.keys.Rotate(ctx, key); err != nil {
			return internal("rotating the dataset key", err)
		}
		after, err := s.keys.ReadKey(ctx, key)
		if err != nil {
			return internal("reading the dataset key", err)
		}
		if rot, err = s.cat.StartRotation(ctx, id, after.LatestVersion, q.user.Name, s.now()); err != nil {
			return internal("recording the rotation", err)
		}
	default:
		return internal("reading rotation state", err)
	}
	resp.ToVersion = rot.TargetVersion
	resp.StartedAt = rot.StartedAt

	// Passes until one finds nothing left under an older version: an
	// upload that began (wrapping its key under the old version) while a
	// pass ran is caught by the next one.
	for pass := 0; ; pass++ {
		ids, err := s.cat.FileKeyIDs(ctx, id)
		if err != nil {
			return internal("listing files", err)
		}
		resp.Files = len(ids)
		changed, conflicts := 0, 0
		for _, fid := range ids {
			did, err := s.rotateFile(ctx, ds, fid, rot.TargetVersion)
			if errors.Is(err, catalog.ErrState) {
				conflicts++ // changed under us (an upload completed): next pass
				continue
			}
			if err != nil {
				s.recordEvent(ctx, q.user.Name, "dataset.rotate-key", "file/"+fid, audit.ResultError, "rotation interrupted; rerun to resume")
				return &httpError{status: http.StatusServiceUnavailable,
					msg:   fmt.Sprintf("key rotation of %s interrupted at file %s", id, fid),
					hint:  "run `dozo dataset rotate-key " + id + "` again: it resumes where it stopped",
					cause: err}
			}
			if did {
				changed++
				if err := s.cat.AddRewrapped(ctx, rot.ID, 1); err != nil {
					return internal("recording rotation progress", err)
				}
			}
		}
		if changed == 0 && conflicts == 0 {
			break
		}
		if pass >= 10 {
			return &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("key rotation of %s: files keep changing (uploads in flight)", id),
				hint: "run `dozo dataset rotate-key " + id + "` again in a moment: it resumes"}
		}
	}

	v := rot.TargetVersion
	if err := s.keys.ConfigureKey(ctx, key, vault.KeyConfig{MinDecryptionVersion: &v}); err != nil {
		return internal("raising min_decryption_version", err)
	}
	// MACs under older versions no longer verify in Vault; nor here.
	s.macMemo.reset()
	s.manifests.reset()

	// A complete that read its upload's header before this rotation
	// rewrote it stores the old header next to the pieces; put the
	// catalog's (current) copy there again for every file completed since
	// the rotation began (in this run or an interrupted one).
	done, err := s.cat.FilesCompletedSince(ctx, id, rot.StartedAt)
	if err != nil {
		return internal("listing files", err)
	}
	for _, fid := range done {
		if err := s.refreshStoredMetadata(ctx, ds, fid); err != nil {
			return &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("key rotation of %s: storing the header of %s failed", id, fid),
				hint: "run `dozo dataset rotate-key " + id + "` again: it resumes", cause: err}
		}
	}

	// An upload whose key was wrapped under the old version in the instant
	// before the raise has a header nothing can open any more: end it, so
	// it can never become available, and tell the caller.
	ids, err := s.cat.FileKeyIDs(ctx, id)
	if err != nil {
		return internal("listing files", err)
	}
	for _, fid := range ids {
		f, err := s.cat.File(ctx, fid)
		if err != nil {
			return internal("reading a file", err)
		}
		if hv, err := headerVersion(f.HeaderObject, key); err == nil && hv >= v {
			continue
		}
		if f.State == catalog.FileUploading {
			if err := s.cat.AbortUploadOfFile(ctx, fid, s.now()); err != nil && !errors.Is(err, catalog.ErrState) {
				return internal("ending a stale upload", err)
			}
			resp.AbortedUploads = append(resp.AbortedUploads, f.Name)
			s.recordEvent(ctx, "dozod", "upload.abort", "file/"+fid, audit.ResultOK, "upload began during key rotation; its header is under a retired key version")
			continue
		}
		s.log.Error("file header under a retired key version after rotation", "dataset", id, "file", fid)
		return internal("rotating the key", fmt.Errorf("file %s is still under an old key version", fid))
	}

	fin, err := s.cat.FinishRotation(ctx, rot.ID, s.now())
	if err != nil {
		return internal("recording the rotation", err)
	}
	resp.Rewrapped, resp.FinishedAt = fin.Rewrapped, *fin.FinishedAt
	if err := s.event(ctx, q.user.Name, "dataset.rotate-key.done", "dataset/"+id, audit.ResultOK,
		fmt.Sprintf("key %s now at version %d (min_decryption_version %d); %d headers/manifests rewrapped; payload untouched", key, v, v, fin.Rewrapped)); err != nil {
		return internal("recording the rotation in the audit log", err)
	}
	return q.reply(http.StatusOK, resp)
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
func (s *Server) rotateFile(ctx context.Context, ds *catalog.Dataset, fid string, target int) (bool, error) {
	f, err := s.cat.File(ctx, fid)
	if err != nil {
		return false, err
	}
	switch f.State {
	case catalog.FileUploading, catalog.FileAvailable, catalog.FileDamaged:
	default:
		return false, nil
	}
	key := ds.TransitKey
	hv, err := headerVersion(f.HeaderObject, key)
	if err != nil {
		return false, fmt.Errorf("file %s: stored header: %w", fid, err)
	}
	var m *storage.Manifest
	needManifest := false
	if f.Manifest != nil {
		if m, err = storage.ParseManifest(f.Manifest); err != nil {
			return false, fmt.Errorf("file %s: manifest: %w", fid, err)
		}
		mv, _ := transitVersion(m.MAC)
		needManifest = mv < target
	}
	if hv >= target && !needManifest {
		return false, nil
	}
	newHdr := f.HeaderObject
	if hv < target {
		newHdr, err = crypto.RewrapHeaderObject(f.HeaderObject,
			crypto.NewTransitIdentity(ctx, s.keys, key, fid), crypto.NewTransitRecipient(ctx, s.keys, key, fid))
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
	return true, s.cat.ReplaceKeyMaterial(ctx, fid, f.HeaderObject, newHdr, f.Manifest, newMan)
}

// fileTargets resolves the targets a file's upload was placed on.
func (s *Server) fileTargets(ctx context.Context, fid string) ([]storage.Target, error) {
	refs, err := s.cat.FileTargets(ctx, fid)
	if err != nil {
		return nil, err
	}
	return s.uploadTargets(&catalog.Upload{Targets: refs})
}

// refreshStoredMetadata writes the catalog's header and manifest of an
// available file to storage again.
func (s *Server) refreshStoredMetadata(ctx context.Context, ds *catalog.Dataset, fid string) error {
	f, err := s.cat.File(ctx, fid)
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
	unlock, ok := s.tryLockDataset(id)
	if !ok {
		return busy(id)
	}
	defer unlock()
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
	rep, err := s.runDeletion(ctx, ds, q.user.Name, true)
	if err != nil {
		return err
	}
	if del, err = s.cat.Deletion(ctx, id); err != nil {
		return internal("reading deletion state", err)
	}
	return q.reply(http.StatusOK, deletionStatus(del, rep))
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
	unlock, ok := s.tryLockDataset(id)
	if !ok {
		return busy(id)
	}
	defer unlock()
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

// runDeletion runs a dataset's deletion to its end: it removes every
// object of it on every configured target (every version), and only then
// destroys its Transit key, so the ciphertext that was stored, wherever a
// copy of it survives (a storage backup, a stolen header and pieces), can
// no longer be decrypted with the dataset key. Each step is idempotent, so
// a rerun after an interruption finishes the job; the key is never
// destroyed while an object might remain, and the report is written last.
// The caller holds the dataset's lifecycle lock. auditFailure records an
// interrupted purge (the reaper, retrying every round, only logs it).
func (s *Server) runDeletion(ctx context.Context, ds *catalog.Dataset, actor string, auditFailure bool) (*api.DeletionReport, error) {
	id := ds.ID
	if _, err := s.cat.ActiveFreeze(ctx, catalog.FreezeDataset, id); err == nil {
		return nil, frozenForLifecycle(id)
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return nil, internal("checking freezes", err)
	}
	del, err := s.cat.Deletion(ctx, id)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return nil, internal("reading deletion state", err)
	}
	if del == nil || del.RunStartedAt == nil {
		if err := s.event(ctx, actor, "dataset.delete.start", "dataset/"+id, audit.ResultOK,
			"grace period over: deleting every object and then the key "+ds.TransitKey); err != nil {
			return nil, internal("recording the deletion in the audit log", err)
		}
	}
	if del, err = s.cat.StartDeletion(ctx, id, actor, s.now()); err != nil {
		return nil, internal("starting the deletion", err)
	}

	// Purge until a pass finds nothing: a PUT presigned before the
	// deletion may still land, for at most one presign lifetime.
	prefix := storage.DatasetPrefix(id)
	for pass := 0; ; pass++ {
		found := 0
		for _, tid := range s.targetIDs {
			err := storage.Purge(ctx, s.targets[tid], prefix, func(o storage.PurgedObject) error {
				found++
				return s.cat.RecordDeletedObject(ctx, id, catalog.DeletedObject{Target: tid, Key: o.Key, VersionID: o.VersionID,
					Size: o.Size, DeleteMarker: o.DeleteMarker, DeletedAt: s.now()})
			})
			if err != nil {
				if auditFailure {
					s.recordEvent(ctx, actor, "dataset.delete", "dataset/"+id, audit.ResultError, "purging target "+tid+" failed; deletion incomplete, key kept")
				}
				return nil, &httpError{status: http.StatusServiceUnavailable,
					msg:   fmt.Sprintf("deleting the objects of %s on target %s failed; the key is not destroyed yet", id, tid),
					hint:  "bring the target back, then run `dozo dataset delete " + id + " --confirm " + id + "` again: it resumes",
					cause: err}
			}
		}
		if found == 0 {
			break
		}
		if pass >= 3 {
			return nil, &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("objects of %s keep appearing on storage", id),
				hint: fmt.Sprintf("wait %s (the presigned URL lifetime) and run the deletion again", s.presign)}
		}
	}

	// Every object is gone: now the key.
	if del.KeyDestroyedAt == nil {
		info, err := s.keys.ReadKey(ctx, ds.TransitKey)
		switch {
		case err == nil:
			if err := s.cat.RecordDeletionKey(ctx, id, ds.TransitKey, info.LatestVersion); err != nil {
				return nil, internal("recording the key", err)
			}
			if err := s.keys.DeleteKey(ctx, ds.TransitKey); err != nil {
				return nil, internal("destroying the dataset key", err)
			}
		case errors.Is(err, vault.ErrNotFound):
			// Destroyed by an earlier run that stopped before recording it.
			if err := s.cat.RecordDeletionKey(ctx, id, ds.TransitKey, del.KeyVersions); err != nil {
				return nil, internal("recording the key", err)
			}
		default:
			return nil, internal("reading the dataset key", err)
		}
		if _, err := s.keys.ReadKey(ctx, ds.TransitKey); !errors.Is(err, vault.ErrNotFound) {
			return nil, internal("destroying the dataset key", fmt.Errorf("key %s still readable after delete: %v", ds.TransitKey, err))
		}
		if err := s.cat.MarkKeyDestroyed(ctx, id, s.now()); err != nil {
			return nil, internal("recording the key destruction", err)
		}
	}

	rep, err := s.buildDeletionReport(ctx, ds, actor)
	if err != nil {
		return nil, internal("building the deletion report", err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, internal("encoding the deletion report", err)
	}
	if err := s.cat.FinishDeletion(ctx, id, b, rep.FinishedAt); err != nil {
		return nil, internal("storing the deletion report", err)
	}
	if err := s.event(ctx, actor, "dataset.delete.done", "dataset/"+id, audit.ResultOK,
		fmt.Sprintf("%d object versions removed from %d targets; key %s (versions 1-%d) destroyed", len(rep.Objects), len(rep.Targets), rep.Key.Name, rep.Key.Versions)); err != nil {
		return nil, internal("recording the deletion in the audit log", err)
	}
	return rep, nil
}

// runDueDeletions runs every deletion whose grace period is over (the
// reaper calls it each round). Each run resumes, so one that fails (a
// target down) is retried next round; one already running (a custodian
// repeating delete) is left to it; a frozen dataset's waits for the
// freeze to be lifted.
func (s *Server) runDueDeletions(ctx context.Context) error {
	ids, err := s.cat.DueDeletions(ctx, s.now())
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		unlock, ok := s.tryLockDataset(id)
		if !ok {
			continue
		}
		ds, _, err := s.cat.DatasetIncludingDeleted(ctx, id)
		if err == nil {
			_, err = s.runDeletion(ctx, ds, "dozod", false)
		}
		unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("deletion of %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// DeletionLimits is what a deletion cannot achieve; every deletion report
// states it, so the termination report claims no more than was done.
const DeletionLimits = "Outside the reach of this deletion: copies that grantees fetched before it " +
	"(decrypted files, and the file keys they obtained, each of which decrypts its file's ciphertext wherever a copy survives), " +
	"and backups or snapshots of Vault taken before the key was destroyed (from which the key could be restored). " +
	"Those must be disposed of separately."

// buildDeletionReport assembles the report from the catalog's record of
// the deletion.
func (s *Server) buildDeletionReport(ctx context.Context, ds *catalog.Dataset, by string) (*api.DeletionReport, error) {
	del, err := s.cat.Deletion(ctx, ds.ID)
	if err != nil {
		return nil, err
	}
	files, err := s.cat.AllFiles(ctx, ds.ID)
	if err != nil {
		return nil, err
	}
	objs, err := s.cat.DeletedObjects(ctx, ds.ID)
	if err != nil {
		return nil, err
	}
	rep := &api.DeletionReport{
		Dataset: ds.ID, Title: ds.Title, Status: "complete",
		StartedBy: del.StartedBy, StartedAt: del.StartedAt, FinishedBy: by, FinishedAt: s.now().UTC(),
		Files: []api.DeletedFile{}, Objects: []api.DeletedObject{}, Targets: slices.Clone(s.targetIDs),
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
