package broker

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/vault"
)

const maxInstitutionLen = 200

func (s *Server) apiGrant(g *catalog.Grant) api.Grant {
	until, _ := time.Parse(catalog.DateLayout, g.Until)
	from := g.From
	if from == "" { // rows from before periods had a start: from the grant's day
		from = g.GrantedAt.UTC().Format(catalog.DateLayout)
	}
	state := g.State(s.today())
	if state == catalog.GrantFuture && g.Follows != 0 {
		state = api.GrantScheduled
	}
	return api.Grant{
		ID: g.ID, Dataset: g.DatasetID, User: g.User, From: from, Until: until,
		ApplicationID: g.ApplicationID, Institution: g.Institution, Reason: g.Reason,
		GrantedBy: g.GrantedBy, GrantedAt: g.GrantedAt,
		RevokedAt: g.RevokedAt, RevokedBy: g.RevokedBy, RevokeReason: g.RevokeReason,
		SupersededBy: g.SupersededBy, Follows: g.Follows, State: state, Active: state == catalog.GrantActive,
		Pending: g.Pending(), LoginName: otherName(g.LoginName, g.User),
	}
}

func parseDay(what, s string) (time.Time, error) {
	d, err := time.Parse(catalog.DateLayout, s)
	if err != nil || d.Format(catalog.DateLayout) != s {
		return time.Time{}, badRequest("%s %q: want a date YYYY-MM-DD (UTC)", what, s)
	}
	return d, nil
}

// lastGrantDay is the latest until a grant starting on start may have.
// A period from..until counts both days, so it lasts until-from+1 days,
// and that may not exceed maxUseDays nor one calendar year: until is at
// most the day before start's anniversary (365 days, or 366 when the
// period holds a 29 February; a start on 29 February runs to 28 February).
func lastGrantDay(start time.Time, maxUseDays int) time.Time {
	last := start.AddDate(0, 0, maxUseDays-1)
	if y := start.AddDate(MaxGrantYears, 0, -1); y.Before(last) {
		last = y
	}
	return last
}

// grantDays is the length of the period from..until in days, counting
// both ends.
func grantDays(from, until time.Time) int { return int(until.Sub(from).Hours()/24) + 1 }

// checkPeriod enforces the use period: it starts today or later, ends on
// or after its start, and lasts (both ends counted) at most the dataset's
// maximum use period and never more than one calendar year (NIG: accounts
// last at most a year; NBDC: access lasts the approved period, extensions
// are new grants); see lastGrantDay. It returns the start day, defaulting
// to today.
func (s *Server) checkPeriod(ds *catalog.Dataset, from, until string) (string, error) {
	today, _ := time.Parse(catalog.DateLayout, s.today())
	start := today
	if from != "" {
		d, err := parseDay("from", from)
		if err != nil {
			return "", err
		}
		if d.Before(today) {
			return "", badRequest("from %s is in the past; a grant cannot start before today (%s)", from, s.today())
		}
		start = d
	}
	end, err := parseDay("until", until)
	if err != nil {
		return "", err
	}
	if end.Before(today) {
		return "", badRequest("until %s is in the past", until)
	}
	if end.Before(start) {
		return "", badRequest("until %s is before from %s", until, start.Format(catalog.DateLayout))
	}
	if last := lastGrantDay(start, ds.MaxUseDays); end.After(last) {
		return "", &httpError{status: http.StatusBadRequest,
			msg: fmt.Sprintf("%s..%s is %d days (both ends inclusive), beyond dataset %s's maximum use period of %d days (and never more than one year): the latest until from %s is %s",
				start.Format(catalog.DateLayout), until, grantDays(start, end), ds.ID, ds.MaxUseDays,
				start.Format(catalog.DateLayout), last.Format(catalog.DateLayout)),
			hint: "extend later with a new grant before this one ends"}
	}
	return start.Format(catalog.DateLayout), nil
}

// grantee resolves {ds} and {user} for grant changes: the caller must be
// the dataset's custodian or an admin.
func (s *Server) grantee(q *request) (*dsAccess, string, error) {
	a, err := s.requireDataset(q, q.r.PathValue("ds"), "custodian")
	if err != nil {
		return nil, "", err
	}
	user := q.r.PathValue("user")
	if err := vault.ValidUsername(user); err != nil {
		return nil, "", badRequest("%v", err)
	}
	q.object = "dataset/" + a.ds.ID + "/grant/" + user
	return a, user, nil
}

// putGrant records a use period in the register. Every field is checked
// before anything is written, so a refused grant changes nothing. A frozen
// dataset or grantee cannot be granted.
func (s *Server) putGrant(q *request) error {
	a, user, err := s.grantee(q)
	if err != nil {
		return err
	}
	if err := a.refuseFrozen(); err != nil {
		return err
	}
	var req api.GrantRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	from, err := s.checkPeriod(a.ds, req.From, req.Until)
	if err != nil {
		return err
	}
	switch {
	case req.ApplicationID != "":
		if err := api.ValidateApplicationID(req.ApplicationID); err != nil {
			return badRequest("%v", err)
		}
	case api.IsControlled(a.ds.AccessLevel):
		return &httpError{status: http.StatusBadRequest,
			msg:  fmt.Sprintf("dataset %s is %s: a grant needs the NBDC data-use application id", a.ds.ID, a.ds.AccessLevel),
			hint: "pass --application J-DU...... (the approved application naming this user)"}
	}
	if err := requiredText("institution", req.Institution, maxInstitutionLen); err != nil {
		return err
	}
	if err := validateText("reason", req.Reason, maxReasonLen); err != nil {
		return badRequest("%v", err)
	}
	if fr, err := s.isFrozen(q, catalog.FreezeUser, user); err != nil {
		return err
	} else if fr {
		return frozen(fmt.Sprintf("user %q is frozen and cannot be granted access", user))
	}
	entity, err := s.knownPrincipal(q, user, req.AllowUnknown) // principals.go
	if err != nil {
		return err
	}
	if from > s.today() {
		// A grant starting later may follow a running one (the next
		// period booked ahead: it starts the day after the running one
		// ends, or later), but not overlap it: the new row would end the
		// running one at once, before the new one starts.
		if cur, err := s.cat.ActiveGrant(q.ctx, a.ds.ID, catalog.Principal{Name: user, EntityID: entity}, s.today()); err == nil && from <= cur.Until {
			next, _ := time.Parse(catalog.DateLayout, cur.Until)
			return &httpError{status: http.StatusConflict,
				msg: fmt.Sprintf("user %q holds a grant running until %s; a grant from %s would overlap it and end it now",
					user, cur.Until, from),
				hint: fmt.Sprintf("book the next period from %s (the day after it ends) or later, or extend from today (omit --from)",
					next.AddDate(0, 0, 1).Format(catalog.DateLayout))}
		} else if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return internal("reading grants", err)
		}
	}
	g, err := s.cat.PutGrant(q.ctx, catalog.Grant{DatasetID: a.ds.ID, User: user, From: from, Until: req.Until,
		ApplicationID: req.ApplicationID, Institution: req.Institution, Reason: req.Reason,
		GrantedBy: q.user.Name, GrantedAt: s.now(), EntityID: entity})
	s.warnings.forget(catalog.Principal{Name: user, EntityID: entity}) // even on error: it may have committed
	if err != nil {
		return internal("recording the grant", err)
	}
	return q.reply(http.StatusOK, s.apiGrant(g))
}

// revokeGrant ends a user's grant now, with a reason kept in the register.
// It stays allowed on a frozen dataset: it only reduces access.
func (s *Server) revokeGrant(q *request) error {
	a, user, err := s.grantee(q)
	if err != nil {
		return err
	}
	var req api.RevokeRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if err := requiredText("reason", req.Reason, maxReasonLen); err != nil {
		return err
	}
	p, err := s.userPrincipal(q, user)
	if err != nil {
		return err
	}
	g, err := s.cat.RevokeGrant(q.ctx, a.ds.ID, p, q.user.Name, req.Reason, s.now())
	s.warnings.forget(p)
	if errors.Is(err, catalog.ErrNotFound) {
		return errorf(http.StatusNotFound, "user %q has no current grant on dataset %q", user, a.ds.ID)
	}
	if err != nil {
		return internal("revoking the grant", err)
	}
	return q.reply(http.StatusOK, s.apiGrant(g))
}

// listGrants is a dataset's register: current rows, or every row with
// ?history=true.
func (s *Server) listGrants(q *request) error {
	a, err := s.requireDataset(q, q.r.PathValue("ds"), "custodian")
	if err != nil {
		return err
	}
	history, err := boolQuery(q, "history")
	if err != nil {
		return err
	}
	gs, err := s.cat.Grants(q.ctx, a.ds.ID, history)
	if err != nil {
		return internal("listing grants", err)
	}
	return s.replyGrants(q, gs)
}

// maxExpiringDays bounds ?expiring_days=.
const maxExpiringDays = 366

// replyGrants answers a register request with gs. With ?expiring_days=N
// only running grants whose last day is within N days (today counted as
// day 0) and that no scheduled grant follows are kept: the users who lose
// access unless a custodian books the next period.
func (s *Server) replyGrants(q *request, gs []catalog.Grant) error {
	out := make([]api.Grant, 0, len(gs))
	for i := range gs {
		out = append(out, s.apiGrant(&gs[i]))
	}
	v := q.r.URL.Query().Get("expiring_days")
	if v == "" {
		return q.reply(http.StatusOK, out)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxExpiringDays {
		return badRequest("expiring_days=%q: want 0..%d", v, maxExpiringDays)
	}
	today, _ := time.Parse(catalog.DateLayout, s.today())
	last := today.AddDate(0, 0, n)
	followed := map[int64]bool{}
	for _, g := range out {
		if g.Follows != 0 && g.RevokedAt == nil && g.SupersededBy == 0 {
			followed[g.Follows] = true
		}
	}
	expiring := []api.Grant{}
	for _, g := range out {
		if g.State == api.GrantActive && !g.Until.After(last) && !followed[g.ID] {
			expiring = append(expiring, g)
		}
	}
	return q.reply(http.StatusOK, expiring)
}

// grantWarnDays is how long before a grant's last day its holder is
// warned on every request.
const grantWarnDays = 30

// warnExpiring adds, once per request, an api.WarningHeader line for
// each of the caller's running grants that ends within grantWarnDays and
// that no scheduled grant follows. The lines are advice, so they come
// from s.warnings (warncache.go): reused while the catalog's grants
// generation is the one they were computed at, which the request's
// access read gives at no cost (a request that read none reads it
// alone, a single-row read); access itself is
// checked afresh on every request. A failed query only loses the
// warning (logged), never the request.
func (s *Server) warnExpiring(q *request) {
	if q.user == nil || !q.warn {
		return
	}
	q.warn = false
	p, day := q.user.principal(), s.today()
	gen := func() (int64, error) {
		if q.haveGen {
			return q.grantsGen, nil
		}
		return s.cat.GrantsGeneration(q.ctx)
	}
	lines, err := s.warnings.get(p, day, s.now(), gen, func() ([]string, error) {
		today, _ := time.Parse(catalog.DateLayout, day)
		gs, err := s.cat.ExpiringGrants(q.ctx, p, day, today.AddDate(0, 0, grantWarnDays).Format(catalog.DateLayout))
		if err != nil {
			return nil, err
		}
		lines := make([]string, 0, len(gs))
		for _, g := range gs {
			lines = append(lines, grantWarning(&g, today))
		}
		return lines, nil
	})
	if err != nil {
		s.log.Warn("checking expiring grants", "user", q.user.Name, "error", err)
		return
	}
	for _, l := range lines {
		q.w.Header().Add(api.WarningHeader, l)
	}
}

// grantWarning is the warning for grant g, which ends within
// grantWarnDays of today.
func grantWarning(g *catalog.Grant, today time.Time) string {
	until, _ := time.Parse(catalog.DateLayout, g.Until)
	when := fmt.Sprintf("in %d days", grantDays(today, until)-1)
	switch grantDays(today, until) - 1 {
	case 0:
		when = "today"
	case 1:
		when = "tomorrow"
	}
	return fmt.Sprintf("your grant on %s ends on %s (%s); ask the dataset's custodian (dozo dataset show %s) to book the next period",
		g.DatasetID, g.Until, when, g.DatasetID)
}
