package client

import (
	"context"
	"net/http"

	"github.com/dozo-vault/dozo/api"
)

func historyQuery(history bool) string {
	if history {
		return "?history=true"
	}
	return ""
}

// GrantRegister lists every grant the caller may review (admins: all;
// custodians: their datasets'; everyone: their own).
func (c *Client) GrantRegister(ctx context.Context, history bool) ([]api.Grant, error) {
	var gs []api.Grant
	return gs, c.do(ctx, http.MethodGet, api.GrantRegister.Path()+historyQuery(history), nil, &gs)
}

// Freeze puts an incident freeze on a user or dataset (admins only).
// allowUnknown freezes a user name nobody has logged in as yet (else
// refused, with the closest known names).
func (c *Client) Freeze(ctx context.Context, kind, name, reason string, allowUnknown bool) (*api.Freeze, error) {
	var f api.Freeze
	return &f, c.do(ctx, http.MethodPost, api.FreezeAccess.Path(),
		api.FreezeRequest{Kind: kind, Name: name, Reason: reason, AllowUnknown: allowUnknown}, &f)
}

// Unfreeze lifts the freeze in force on a user or dataset (admins only).
func (c *Client) Unfreeze(ctx context.Context, kind, name, reason string) (*api.Freeze, error) {
	var f api.Freeze
	return &f, c.do(ctx, http.MethodDelete, api.UnfreezeAccess.Path(kind, name), api.UnfreezeRequest{Reason: reason}, &f)
}

// Freezes lists freezes in force, or all ever (admins only).
func (c *Client) Freezes(ctx context.Context, all bool) ([]api.Freeze, error) {
	var fs []api.Freeze
	q := ""
	if all {
		q = "?all=true"
	}
	return fs, c.do(ctx, http.MethodGet, api.ListFreezes.Path()+q, nil, &fs)
}

// Members lists a dataset's custodians and submitters.
func (c *Client) Members(ctx context.Context, dataset string) ([]api.Member, error) {
	var ms []api.Member
	return ms, c.do(ctx, http.MethodGet, api.ListMembers.Path(dataset), nil, &ms)
}

// AddMember gives user a per-dataset role (custodian or submitter).
// allowUnknown: as for Freeze.
func (c *Client) AddMember(ctx context.Context, dataset, user, role string, allowUnknown bool) (*api.Member, error) {
	var m api.Member
	var body any // no body unless needed: servers before allow_unknown take none
	if allowUnknown {
		body = api.MemberRequest{AllowUnknown: true}
	}
	return &m, c.do(ctx, http.MethodPut, api.AddMember.Path(dataset, user, role), body, &m)
}

// RemoveMember takes a per-dataset role away.
func (c *Client) RemoveMember(ctx context.Context, dataset, user, role string) error {
	return c.do(ctx, http.MethodDelete, api.RemoveMember.Path(dataset, user, role), nil, nil)
}
