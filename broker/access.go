package broker

// Access control beyond the per-dataset roles of server.go: incident
// freezes, the rule for reading data, the explanation a former grantee
// gets, and the NBDC register views. The rule of every endpoint is listed
// in package api's documentation and checked cell by cell by
// matrix_test.go.
//
// Rule vocabulary for handlers (each helper refuses a frozen caller first):
//
//	s.requireAdmin(q)                      operators: scrubs, global audit
//	                                       list/verify/export, freezes
//	s.requireDataset(q, id)                anyone who may see the dataset
//	s.requireDataset(q, id, "custodian")   custodian or admin: grants, the
//	                                       dataset's audit, rotate-key, delete
//	s.requireDataset(q, id, "submitter")   submitter or admin: uploads
//	s.readAccess(q, id, notFound)          reading data (fetch, presign, batch
//	                                       presign): grantee, submitter or
//	                                       custodian; refuses a frozen dataset
//	a.refuseFrozen()                       for handlers that read or add data
//	                                       or grants on a dataset
//	s.openUpload(q)                        a change to an upload: its creator,
//	                                       still a submitter (or admin), the
//	                                       session open, the dataset not frozen
//
// matrix_test.go names the same rules ("admin", "custodian", "readData",
// ...); a new route needs a row there.

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/vault"
)

const frozenHint = "an administrator froze access during an incident; contact the dozo operators"

// frozen is the one refusal for anything an incident freeze blocks. It
// says plainly that an administrator froze access, and nothing else (not
// the reason, which may name a suspicion).
func frozen(what string) *httpError {
	return &httpError{status: http.StatusForbidden, msg: "access frozen by an administrator: " + what, hint: frozenHint}
}

// isFrozen asks the catalog, on every call (no cache), whether a freeze is
// in force on a dataset (kind FreezeDataset, name its id) or a user
// (FreezeUser, name a login name). A user is the person: the caller's
// entity, or for another name the entity last seen with it
// (userPrincipal), and a freeze of that entity under any name counts. A
// catalog error is returned, so callers fail closed.
func (s *Server) isFrozen(q *request, kind, name string) (bool, error) {
	var err error
	if kind == catalog.FreezeUser {
		var p catalog.Principal
		if p, err = s.userPrincipal(q, name); err != nil {
			return false, err
		}
		_, err = s.cat.UserFreeze(q.ctx, p)
	} else {
		_, err = s.cat.ActiveFreeze(q.ctx, kind, name)
	}
	if errors.Is(err, catalog.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("checking freezes", err)
	}
	return true, nil
}

// checkUserFrozen refuses a caller whose account is frozen. It runs before
// anything about the requested object is looked up, so its answer is the
// same whether or not the object exists.
func (s *Server) checkUserFrozen(q *request) error {
	if q.user == nil {
		return nil
	}
	f, err := s.isFrozen(q, catalog.FreezeUser, q.user.Name)
	if err != nil {
		return err
	}
	if f {
		return frozenCaller(q)
	}
	return nil
}

// callerFrozen is checkUserFrozen for the caller's freeze read with the
// access check (catalog.AccessView.UserFrozen).
func callerFrozen(q *request, v *catalog.AccessView) error {
	if v.UserFrozen {
		return frozenCaller(q)
	}
	return nil
}

func frozenCaller(q *request) *httpError {
	return frozen(fmt.Sprintf("your account %q is frozen", q.user.Name))
}

// datasetFrozen refuses a data read, upload or new grant on a frozen
// dataset, to a caller already shown to see it (strangers get the uniform
// 404 first).
func datasetFrozen(id string) *httpError { return frozen(fmt.Sprintf("dataset %q is frozen", id)) }

// notSubmitter refuses a change to an upload whose creator is no longer a
// submitter of its dataset.
func notSubmitter(id string) *httpError {
	return &httpError{status: http.StatusForbidden, msg: fmt.Sprintf("dataset %q: you are no longer a submitter of it", id),
		hint: "ask the dataset's custodian; the upload can be aborted"}
}

// refuseFrozen refuses a frozen dataset (datasetFrozen) for a dsAccess
// already loaded.
func (a *dsAccess) refuseFrozen() error {
	if a.frozen {
		return datasetFrozen(a.ds.ID)
	}
	return nil
}

// formerGrantee explains to a caller with no role on an existing dataset
// why, when the caller once held a grant on it: expired, revoked or not yet
// started. Only someone the dataset was granted to learns that it exists;
// everyone else gets nil and so the uniform 404. A dataset hidden by a
// deletion is explained to its custodians and admins only (lifecycle.go).
func (s *Server) formerGrantee(q *request, id string) error {
	if hidden, err := s.hiddenByDeletion(q, id); hidden {
		return err
	}
	g, err := s.cat.LatestGrant(q.ctx, id, q.user.principal())
	if errors.Is(err, catalog.ErrNotFound) {
		return nil
	}
	if err != nil {
		return internal("reading grants", err)
	}
	e := &httpError{status: http.StatusForbidden, hint: "ask the dataset's custodian for a new grant"}
	switch g.State(s.today()) {
	case catalog.GrantRevoked:
		e.msg = fmt.Sprintf("your access to dataset %q was revoked on %s", id, g.RevokedAt.UTC().Format(catalog.DateLayout))
	case catalog.GrantExpired:
		e.msg = fmt.Sprintf("your grant on dataset %q expired: its last day was %s (UTC)", id, g.Until)
	case catalog.GrantFuture:
		e.msg = fmt.Sprintf("your grant on dataset %q starts on %s (UTC); not active yet", id, g.From)
		e.hint = "wait for the start date, or ask the custodian to change it"
	default:
		return nil
	}
	return e
}

// readAccess is the rule for reading a dataset's data (fetch and fetch
// presign): the caller must be a grantee, submitter or custodian; admin
// alone is not enough, so operators never read data without a grant of
// their own. A frozen user or dataset is refused. Strangers get notFound,
// the same answer as for a missing dataset or file.
func (s *Server) readAccess(q *request, id string, notFound *httpError) (*dsAccess, error) {
	a, err := s.datasetAccess(q, id, catalog.AccessQuery{})
	if err != nil {
		return nil, err
	}
	return s.readRule(q, id, a, notFound)
}

// readRule is readAccess's rule applied to the caller's access a to
// dataset id (nil: none), read already.
func (s *Server) readRule(q *request, id string, a *dsAccess, notFound *httpError) (*dsAccess, error) {
	if a == nil {
		if err := s.formerGrantee(q, id); err != nil {
			return nil, err
		}
		return nil, notFound
	}
	if !a.has(catalog.RoleGrantee, catalog.RoleSubmitter, catalog.RoleCustodian) {
		return nil, &httpError{status: http.StatusForbidden, msg: fmt.Sprintf("dataset %q: reading data needs an active grant, also for admins", id),
			hint: "a custodian (or admin) can grant you access with `dozo grant`; the grant is in the register"}
	}
	if err := a.refuseFrozen(); err != nil {
		return nil, err
	}
	return a, nil
}

// boolQuery parses an optional boolean query parameter.
func boolQuery(q *request, name string) (bool, error) {
	v := q.r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %s=%q: want true or false", name, v)
	}
	return b, nil
}

// grantRegister is the NBDC user register the caller may review: every
// grant for admins, those of datasets the caller is custodian of, and the
// caller's own.
func (s *Server) grantRegister(q *request) error {
	q.object = "grants"
	if err := s.checkUserFrozen(q); err != nil {
		return err
	}
	history, err := boolQuery(q, "history")
	if err != nil {
		return err
	}
	gs, err := s.cat.VisibleGrants(q.ctx, q.user.principal(), s.isAdmin(q.user), history)
	if err != nil {
		return internal("listing grants", err)
	}
	return s.replyGrants(q, gs) // grants.go
}

const maxReasonLen = 1000

// requiredText checks free text that must be given (a reason, an
// institution).
func requiredText(what, s string, max int) error {
	if strings.TrimSpace(s) == "" {
		return badRequest("%s is required", what)
	}
	if err := validateText(what, s, max); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

func apiFreeze(f *catalog.Freeze) api.Freeze {
	return api.Freeze{ID: f.ID, Kind: f.Kind, Name: f.Name, Reason: f.Reason, FrozenBy: f.FrozenBy, FrozenAt: f.FrozenAt,
		LiftedAt: f.LiftedAt, LiftedBy: f.LiftedBy, LiftReason: f.LiftReason,
		Pending: f.Kind == catalog.FreezeUser && f.EntityID == ""}
}

// freezeTarget checks a freeze's kind and name. Admins may freeze (and
// unfreeze) any valid user name here and only an existing dataset; a new
// freeze of a user must also name someone dozod knows, or say that it is
// someone who has not logged in yet (freeze, knownPrincipal).
func (s *Server) freezeTarget(q *request, kind, name string) error {
	switch kind {
	case api.FreezeUser:
		if err := vault.ValidUsername(name); err != nil {
			return badRequest("%v", err)
		}
	case api.FreezeDataset:
		if api.ValidateDatasetID(name) != nil {
			return notFoundDataset(name)
		}
		if _, err := s.cat.Dataset(q.ctx, name); errors.Is(err, catalog.ErrNotFound) {
			return notFoundDataset(name)
		} else if err != nil {
			return internal("reading the dataset", err)
		}
	default:
		return badRequest("freeze kind %q: want %q or %q", kind, api.FreezeUser, api.FreezeDataset)
	}
	q.object = "freeze/" + kind + "/" + name
	return nil
}

// freeze puts an incident freeze in force. It takes effect at the next
// request: every check reads the catalog, nothing is cached.
func (s *Server) freeze(q *request) error {
	q.object = "freezes"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	var req api.FreezeRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if err := s.freezeTarget(q, req.Kind, req.Name); err != nil {
		return err
	}
	if err := requiredText("reason", req.Reason, maxReasonLen); err != nil {
		return err
	}
	var entity string
	var err error
	if req.Kind == api.FreezeUser {
		// A typo must not leave the real account open while the
		// operator believes it frozen.
		if entity, err = s.knownPrincipal(q, req.Name, req.AllowUnknown); err != nil { // principals.go
			return err
		}
	} else if req.AllowUnknown {
		return badRequest("allow_unknown is for freezing a user, not a dataset")
	}
	f, err := s.cat.PutFreeze(q.ctx, catalog.Freeze{Kind: req.Kind, Name: req.Name, Reason: req.Reason, FrozenBy: q.user.Name, FrozenAt: s.now(),
		EntityID: entity})
	if errors.Is(err, catalog.ErrExists) {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("%s %q is already frozen", req.Kind, req.Name), hint: "see `dozo admin frozen`"}
	}
	if err != nil {
		return internal("recording the freeze", err)
	}
	return q.reply(http.StatusCreated, apiFreeze(f))
}

func (s *Server) unfreeze(q *request) error {
	q.object = "freezes"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	kind, name := q.r.PathValue("kind"), q.r.PathValue("name")
	if err := s.freezeTarget(q, kind, name); err != nil {
		return err
	}
	var req api.UnfreezeRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if err := requiredText("reason", req.Reason, maxReasonLen); err != nil {
		return err
	}
	target := catalog.ByName(name)
	if kind == api.FreezeUser {
		var err error
		if target, err = s.userPrincipal(q, name); err != nil {
			return err
		}
	}
	f, err := s.cat.LiftFreeze(q.ctx, kind, target, q.user.Name, req.Reason, s.now())
	if errors.Is(err, catalog.ErrNotFound) {
		return errorf(http.StatusNotFound, "%s %q is not frozen", kind, name)
	}
	if err != nil {
		return internal("lifting the freeze", err)
	}
	return q.reply(http.StatusOK, apiFreeze(f))
}

func (s *Server) listFreezes(q *request) error {
	q.object = "freezes"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	all, err := boolQuery(q, "all")
	if err != nil {
		return err
	}
	fs, err := s.cat.Freezes(q.ctx, all)
	if err != nil {
		return internal("listing freezes", err)
	}
	out := make([]api.Freeze, len(fs))
	for i := range fs {
		out[i] = apiFreeze(&fs[i])
	}
	return q.reply(http.StatusOK, out)
}

// member resolves {ds}, {user} and {role} for role changes: custodian or
// admin only.
func (s *Server) member(q *request) (*dsAccess, string, string, error) {
	a, err := s.requireDataset(q, q.r.PathValue("ds"), catalog.RoleCustodian)
	if err != nil {
		return nil, "", "", err
	}
	user, role := q.r.PathValue("user"), q.r.PathValue("role")
	if err := vault.ValidUsername(user); err != nil {
		return nil, "", "", badRequest("%v", err)
	}
	if role != api.RoleCustodian && role != api.RoleSubmitter {
		return nil, "", "", badRequest("role %q: want %q or %q", role, api.RoleCustodian, api.RoleSubmitter)
	}
	q.object = "dataset/" + a.ds.ID + "/member/" + user + "/" + role
	return a, user, role, nil
}

func (s *Server) listMembers(q *request) error {
	a, err := s.requireDataset(q, q.r.PathValue("ds"), catalog.RoleCustodian)
	if err != nil {
		return err
	}
	ms, err := s.cat.Members(q.ctx, a.ds.ID)
	if err != nil {
		return internal("listing members", err)
	}
	out := make([]api.Member, len(ms))
	for i, m := range ms {
		out[i] = api.Member{Dataset: m.DatasetID, User: m.User, Role: m.Role, AddedBy: m.AddedBy, AddedAt: m.AddedAt, Pending: m.EntityID == "",
			LoginName: otherName(m.LoginName, m.User)}
	}
	return q.reply(http.StatusOK, out)
}

// addMember gives a per-dataset role. Like a grant, it widens access, so
// it is refused on a frozen dataset and for a frozen user.
func (s *Server) addMember(q *request) error {
	a, user, role, err := s.member(q)
	if err != nil {
		return err
	}
	var req api.MemberRequest
	if err := q.optionalBody(&req); err != nil {
		return err
	}
	if err := a.refuseFrozen(); err != nil {
		return err
	}
	if fr, err := s.isFrozen(q, catalog.FreezeUser, user); err != nil {
		return err
	} else if fr {
		return frozen(fmt.Sprintf("user %q is frozen and cannot be given a role", user))
	}
	entity, err := s.knownPrincipal(q, user, req.AllowUnknown) // principals.go
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.cat.AddMember(q.ctx, a.ds.ID, user, entity, role, q.user.Name, now); err != nil {
		return internal("adding the member", err)
	}
	return q.reply(http.StatusOK, api.Member{Dataset: a.ds.ID, User: user, Role: role, AddedBy: q.user.Name, AddedAt: now.UTC(), Pending: entity == ""})
}

// removeMember takes a per-dataset role away (allowed on a frozen dataset:
// it only reduces access). The last custodian stays.
func (s *Server) removeMember(q *request) error {
	a, user, role, err := s.member(q)
	if err != nil {
		return err
	}
	if err := q.noBody(); err != nil {
		return err
	}
	p, err := s.userPrincipal(q, user)
	if err != nil {
		return err
	}
	err = s.cat.RemoveMember(q.ctx, a.ds.ID, p, role)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return errorf(http.StatusNotFound, "user %q is not %s of dataset %q", user, role, a.ds.ID)
	case errors.Is(err, catalog.ErrState):
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("user %q is the last custodian of dataset %q", user, a.ds.ID),
			hint: "add another custodian first"}
	case err != nil:
		return internal("removing the member", err)
	}
	return q.reply(http.StatusNoContent, nil)
}
