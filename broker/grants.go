package broker

import (
	"errors"
	"net/http"
	"time"

	"github.com/ddbj/kura/api"
	"github.com/ddbj/kura/catalog"
	"github.com/ddbj/kura/vault"
)

func (s *Server) apiGrant(g *catalog.Grant) api.Grant {
	until, _ := time.Parse(catalog.DateLayout, g.Until)
	return api.Grant{
		Dataset: g.DatasetID, User: g.User, Until: until, GrantedBy: g.GrantedBy, GrantedAt: g.GrantedAt,
		RevokedAt: g.RevokedAt, RevokedBy: g.RevokedBy, Active: g.ActiveOn(s.today()),
	}
}

// checkUntil enforces the use period: from today to at most MaxGrantYears
// ahead (NIG: accounts last at most a year; extensions are new grants).
func (s *Server) checkUntil(until string) error {
	d, err := time.Parse(catalog.DateLayout, until)
	if err != nil || d.Format(catalog.DateLayout) != until {
		return badRequest("until %q: want a date YYYY-MM-DD (UTC)", until)
	}
	today, _ := time.Parse(catalog.DateLayout, s.today())
	if d.Before(today) {
		return badRequest("until %s is in the past", until)
	}
	if last := today.AddDate(MaxGrantYears, 0, 0); d.After(last) {
		return badRequest("until %s is more than %d year ahead (latest %s); extend with a new grant before expiry", until, MaxGrantYears, last.Format(catalog.DateLayout))
	}
	return nil
}

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

func (s *Server) putGrant(q *request) error {
	a, user, err := s.grantee(q)
	if err != nil {
		return err
	}
	var req api.GrantRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if err := s.checkUntil(req.Until); err != nil {
		return err
	}
	g, err := s.cat.PutGrant(q.ctx, catalog.Grant{DatasetID: a.ds.ID, User: user, Until: req.Until, GrantedBy: q.user.Name, GrantedAt: s.now()})
	if err != nil {
		return internal("recording the grant", err)
	}
	return q.reply(http.StatusOK, s.apiGrant(g))
}

func (s *Server) revokeGrant(q *request) error {
	a, user, err := s.grantee(q)
	if err != nil {
		return err
	}
	if err := q.noBody(); err != nil {
		return err
	}
	g, err := s.cat.RevokeGrant(q.ctx, a.ds.ID, user, q.user.Name, s.now())
	if errors.Is(err, catalog.ErrNotFound) {
		return errorf(http.StatusNotFound, "user %q has no current grant on dataset %q", user, a.ds.ID)
	}
	if err != nil {
		return internal("revoking the grant", err)
	}
	return q.reply(http.StatusOK, s.apiGrant(g))
}

func (s *Server) listGrants(q *request) error {
	a, err := s.requireDataset(q, q.r.PathValue("ds"), "custodian")
	if err != nil {
		return err
	}
	gs, err := s.cat.Grants(q.ctx, a.ds.ID)
	if err != nil {
		return internal("listing grants", err)
	}
	out := make([]api.Grant, len(gs))
	for i := range gs {
		out[i] = s.apiGrant(&gs[i])
	}
	return q.reply(http.StatusOK, out)
}
