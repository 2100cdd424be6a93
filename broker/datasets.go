package broker

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

const maxTitleLen = 1000

func apiDataset(a *dsAccess) api.Dataset {
	d := a.ds
	return api.Dataset{
		ID: d.ID, Title: d.Title, K: d.K, M: d.M, PlainSegmentSize: d.PlainSegmentSize,
		TransitKey: d.TransitKey, CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt,
		Files: d.Files, Bytes: d.Bytes, Access: a.access,
		AccessLevel: d.AccessLevel, NBDCID: d.NBDCID, PolicyID: d.PolicyID, MaxUseDays: d.MaxUseDays,
		Frozen: a.frozen,
	}
}

// datasetNBDC checks and defaults a new dataset's NBDC metadata: access
// level (default controlled-type1), NBDC dataset id (default: the dataset
// id when it is a JGAD id), policy id, and maximum use period (default 365
// days).
func datasetNBDC(req *api.CreateDatasetRequest) error {
	if req.AccessLevel == "" {
		req.AccessLevel = api.AccessControlled1
	}
	if err := api.ValidateAccessLevel(req.AccessLevel); err != nil {
		return badRequest("%v", err)
	}
	if req.NBDCID == "" && api.ValidateJGAD(req.ID) == nil {
		req.NBDCID = req.ID
	}
	if req.NBDCID != "" {
		if err := api.ValidateJGAD(req.NBDCID); err != nil {
			return badRequest("%v", err)
		}
	}
	if req.PolicyID != "" {
		if err := api.ValidateJGAP(req.PolicyID); err != nil {
			return badRequest("%v", err)
		}
	}
	if req.MaxUseDays == 0 {
		req.MaxUseDays = api.DefaultMaxUseDays
	}
	if err := api.ValidateMaxUseDays(req.MaxUseDays); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

// datasetLayout checks a dataset's erasure and segment parameters against
// the configured targets.
func (s *Server) datasetLayout(req *api.CreateDatasetRequest) (storage.Layout, error) {
	if req.K == 0 && req.M == 0 {
		req.K, req.M = DefaultK, DefaultM
	}
	if req.PlainSegmentSize == 0 {
		req.PlainSegmentSize = filestore.DefaultPlainSegmentSize
	}
	p := req.PlainSegmentSize
	if p < MinPlainSegmentSize || p > MaxPlainSegmentSize || p%(64<<10) != 0 {
		return storage.Layout{}, badRequest("plain_segment_size %d: must be a multiple of 64 KiB between 1 MiB and 1 GiB", p)
	}
	l, err := filestore.Layout(req.K, req.M, p)
	if err != nil {
		return storage.Layout{}, badRequest("bad layout %d+%d with %d-byte segments: %v", req.K, req.M, p, err)
	}
	if _, err := storage.Place(s.allTargets(), l, 0); err != nil {
		return storage.Layout{}, badRequest("layout %d+%d does not fit this broker's targets: %v", req.K, req.M, err)
	}
	return l, nil
}

func (s *Server) createDataset(q *request) error {
	var req api.CreateDatasetRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	q.object = "dataset/" + req.ID
	if err := s.checkUserFrozen(q); err != nil {
		return err
	}
	if !s.isAdmin(q.user) && !s.isSubmitter(q.user) {
		return &httpError{status: http.StatusForbidden, msg: "only submitters and admins may create datasets",
			hint: "the dozo operators grant the submitter role (the submitters list in dozod's config, or a submitter group in Vault)"}
	}
	if err := api.ValidateDatasetID(req.ID); err != nil {
		return badRequest("%v", err)
	}
	if err := validateText("title", req.Title, maxTitleLen); err != nil {
		return badRequest("%v", err)
	}
	if err := datasetNBDC(&req); err != nil {
		return err
	}
	l, err := s.datasetLayout(&req)
	if err != nil {
		return err
	}
	if err := s.refuseTakenID(q, req.ID); err != nil {
		return err
	}
	key := api.TransitKeyName(req.ID)
	// The key is made first: a catalog row must never point at a key that
	// does not exist.
	if err := s.createDatasetKey(q, req.ID, key); err != nil {
		return err
	}
	d := catalog.Dataset{
		ID: req.ID, Title: req.Title, K: l.K, M: l.M, PlainSegmentSize: req.PlainSegmentSize,
		SegmentSize: l.SegmentSize, TransitKey: key, CreatedBy: q.user.Name, CreatorEntity: q.user.EntityID, CreatedAt: s.now(),
		AccessLevel: req.AccessLevel, NBDCID: req.NBDCID, PolicyID: req.PolicyID, MaxUseDays: req.MaxUseDays,
	}
	if err := s.cat.CreateDataset(q.ctx, d); errors.Is(err, catalog.ErrExists) {
		// Created by someone else since refuseTakenID looked.
		if err := s.refuseTakenID(q, req.ID); err != nil {
			return err
		}
		return internal("recording the dataset", err)
	} else if err != nil {
		return internal("recording the dataset", err)
	}
	a, err := s.requireDataset(q, req.ID)
	if err != nil {
		return err
	}
	return q.reply(http.StatusCreated, apiDataset(a))
}

// refuseTakenID refuses a new dataset whose id is taken, live or deleted
// (ids of deleted datasets are never reused). Only a caller who may know
// the dataset learns that it exists: anyone who may see it, and for a
// deleted one those deletedState tells. Everyone else gets the answer any
// route gives for a dataset they cannot see, so create is no way to probe
// ids beyond the refusal itself.
func (s *Server) refuseTakenID(q *request, id string) error {
	_, deleted, err := s.cat.DatasetIncludingDeleted(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil
	}
	if err != nil {
		return internal("reading the dataset", err)
	}
	if deleted == nil {
		if _, err := s.requireDataset(q, id); err != nil {
			return err
		}
		return errorf(http.StatusConflict, "dataset %q already exists", id)
	}
	if err := s.deletedState(q, id, false, http.StatusConflict); err != nil {
		return err
	}
	return notFoundDataset(id)
}

// deletedDataset is the one answer about a deleted dataset to a caller who
// may know of it: what happened, when, and that the id stays taken. status
// is 410 Gone, or 409 Conflict for a create of the id.
func deletedDataset(id string, at time.Time, status int) *httpError {
	return &httpError{status: status,
		msg:  fmt.Sprintf("dataset %q was deleted on %s (UTC); its id cannot be reused", id, at.UTC().Format(catalog.DateLayout)),
		hint: "nothing can be added to or read from it any more; its custodians and the admins can read what was removed with `dozo dataset deletion-report " + id + "`"}
}

// deletedState tells a caller who may know of it that dataset id is hidden
// by a deletion, and in which state: its custodians and the admins, and,
// with uploader set, the caller whose upload session on it is being asked
// about. While the deletion is scheduled or running that is
// pendingDeletion (409; an uploader who is neither gets when it runs, not
// who asked for it); once it is done, deletedDataset with goneStatus. It
// returns nil when id is not a dataset hidden by a deletion, and for every
// other caller, who gets the uniform 404.
func (s *Server) deletedState(q *request, id string, uploader bool, goneStatus int) error {
	_, at, err := s.cat.DatasetIncludingDeleted(q.ctx, id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && at == nil) {
		return nil
	}
	if err != nil {
		return internal("reading the dataset", err)
	}
	known := s.isAdmin(q.user)
	if !known {
		roles, err := s.cat.Roles(q.ctx, id, q.user.principal(), s.today())
		if err != nil {
			return internal("reading roles", err)
		}
		known = slices.Contains(roles, catalog.RoleCustodian)
	}
	if !known && !uploader {
		return nil
	}
	del, err := s.cat.Deletion(q.ctx, id)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return internal("reading the deletion", err)
	}
	switch {
	case del == nil: // hidden without a deletion record (an older catalog)
		return deletedDataset(id, *at, goneStatus)
	case del.FinishedAt != nil:
		return deletedDataset(id, *del.FinishedAt, goneStatus)
	case known:
		return pendingDeletion(del) // lifecycle.go
	case del.RunStartedAt == nil:
		return &httpError{status: http.StatusConflict,
			msg: fmt.Sprintf("dataset %q is scheduled for deletion at %s and hidden from everyone until then",
				id, del.RunsAt.UTC().Format(time.RFC3339)),
			hint: "nothing can be added to it; if its custodians cancel the deletion, the upload can continue"}
	default:
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("dataset %q is being deleted; its id cannot be reused", id),
			hint: "nothing can be added to or read from it any more"}
	}
}

// createDatasetKey makes the dataset's Transit key and checks that it is
// the key just made, not one that existed before under the same name:
// Transit's create is a no-op on an existing key, so a principal with
// Transit rights could otherwise plant an exportable key (or one at a
// later version, or imported) for dozod to adopt and export it later. Such
// a key is refused with 409 and left untouched for the operators to look
// at. A key dozod itself made for this id in a create that then failed to
// record the dataset passes the check, so a retry succeeds.
func (s *Server) createDatasetKey(q *request, id, key string) error {
	if err := s.keys.CreateKey(q.ctx, key); err != nil {
		return internal("creating the dataset key", err)
	}
	ki, err := s.keys.ReadKey(q.ctx, key)
	if err != nil {
		return internal("reading the new dataset key", err)
	}
	if err := vault.CheckNewKey(ki); err != nil {
		return &httpError{status: http.StatusConflict, cause: err,
			msg:  fmt.Sprintf("dataset %q was not created: a Transit key named %s already exists in Vault and is not one dozod made for it; the key was left untouched", id, key),
			hint: "ask the dozo operators to examine that key (dozod's log names what is wrong with it); dozod's Transit mount should be writable by dozod alone"}
	}
	return nil
}

func (s *Server) listDatasets(q *request) error {
	q.object = "datasets"
	// The caller's freeze and every dataset with the caller's roles and
	// its freeze, in one read (datasetAccess for each).
	v, err := s.checks(q, catalog.AccessQuery{Counts: true})
	if err != nil {
		return err
	}
	if err := callerFrozen(q, v); err != nil {
		return err
	}
	out := []api.Dataset{}
	for i := range v.Datasets {
		if a := s.accessOf(q, &v.Datasets[i]); a != nil {
			out = append(out, apiDataset(a))
		}
	}
	return q.reply(http.StatusOK, out)
}

func (s *Server) showDataset(q *request) error {
	a, err := s.requireDataset(q, q.r.PathValue("ds"))
	if err != nil {
		return err
	}
	d := apiDataset(a)
	// Whom to ask for a grant or an extension: everyone who may see the
	// dataset may know its custodians.
	ms, err := s.cat.Members(q.ctx, a.ds.ID)
	if err != nil {
		return internal("listing custodians", err)
	}
	for _, m := range ms {
		if m.Role == catalog.RoleCustodian {
			d.Custodians = append(d.Custodians, m.User)
		}
	}
	return q.reply(http.StatusOK, d)
}

func apiFile(f *catalog.File) api.File {
	state := f.State
	return api.File{
		ID: f.ID, Dataset: f.DatasetID, Name: f.Name, Size: f.Size, SHA256: f.SHA256, MD5: f.MD5,
		State: state, CreatedBy: f.CreatedBy, CreatedAt: f.CreatedAt,
	}
}

func (s *Server) listFiles(q *request) error {
	a, err := s.requireDataset(q, q.r.PathValue("ds"))
	if err != nil {
		return err
	}
	if err := a.refuseFrozen(); err != nil {
		return err
	}
	fs, err := s.cat.Files(q.ctx, a.ds.ID)
	if err != nil {
		return internal("listing files", err)
	}
	out := make([]api.File, len(fs))
	for i := range fs {
		out[i] = apiFile(&fs[i])
	}
	return q.reply(http.StatusOK, out)
}
