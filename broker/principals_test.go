package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// TestUnknownPrincipalRefused: granting, giving a role to or freezing a
// name nobody has logged in as is refused with the nearest known names and
// changes nothing; with allow_unknown it is accepted and pending, and the
// pending mark goes at that user's first authenticated request.
func TestUnknownPrincipalRefused(t *testing.T) {
	e := newEnv(t)
	ids := e.srv.ident.(fakeIdentity)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	grant := api.GrantRequest{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"}
	didYouMean := func(raw []byte, want string) {
		t.Helper()
		if got := errBody(t, raw).Error; !strings.Contains(got, want) {
			t.Fatalf("refusal %q does not say %q", got, want)
		}
	}

	// Refused, with the suggestion.
	didYouMean(e.must(404, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/ritaa", grant, nil), "no user `ritaa`; did you mean `rita`?")
	didYouMean(e.must(404, "tok-sam", "PUT", "/v1/datasets/JGAD000001/members/rtia/submitter", nil, nil), "did you mean `rita`?")
	didYouMean(e.must(404, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "eeve", Reason: "incident"}, nil),
		"no user `eeve`; did you mean `eve`?")
	didYouMean(e.must(404, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "nosuchuser", Reason: "incident"}, nil),
		"no user `nosuchuser`: nobody by that name has logged in")
	var gs []api.Grant
	var ms []api.Member
	var fs []api.Freeze
	if e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants?history=true", nil, &gs); len(gs) != 0 {
		t.Fatalf("refused grant recorded: %+v", gs)
	}
	if e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/members", nil, &ms); len(ms) != 2 {
		t.Fatalf("refused member recorded: %+v", ms)
	}
	if e.must(200, "tok-admin", "GET", "/v1/admin/freezes?all=true", nil, &fs); len(fs) != 0 {
		t.Fatalf("refused freeze recorded: %+v", fs)
	}
	// A known user is no trouble, and not pending.
	var g api.Grant
	if e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grant, &g); g.Pending {
		t.Fatalf("grant to a known user pending: %+v", g)
	}

	// Accepted with allow_unknown, and pending.
	grant.AllowUnknown = true
	if e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/carol", grant, &g); !g.Pending {
		t.Fatalf("grant with allow_unknown not pending: %+v", g)
	}
	var m api.Member
	if e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/members/carol/submitter", api.MemberRequest{AllowUnknown: true}, &m); !m.Pending {
		t.Fatalf("member with allow_unknown not pending: %+v", m)
	}
	var f api.Freeze
	if e.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "dave", Reason: "ahead", AllowUnknown: true}, &f); !f.Pending {
		t.Fatalf("freeze with allow_unknown not pending: %+v", f)
	}
	e.must(400, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "dataset", Name: "JGAD000001", Reason: "x", AllowUnknown: true}, nil)
	var reg []api.Grant
	e.must(200, "tok-admin", "GET", "/v1/grants", nil, &reg)
	for _, g := range reg {
		if g.Pending != (g.User == "carol") {
			t.Fatalf("register: %s pending=%v", g.User, g.Pending)
		}
	}

	// carol and dave log in: their rows are theirs, no longer pending.
	ids["tok-carol"], ids["tok-dave"] = "carol", "dave"
	defer delete(ids, "tok-carol")
	defer delete(ids, "tok-dave")
	e.must(200, "tok-carol", "GET", "/v1/whoami", nil, nil)
	e.must(200, "tok-dave", "GET", "/v1/whoami", nil, nil) // frozen, yet seen
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants", nil, &gs)
	for _, g := range gs {
		if g.Pending {
			t.Fatalf("grant still pending after the first login: %+v", g)
		}
	}
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/members", nil, &ms)
	for _, m := range ms {
		if m.Pending {
			t.Fatalf("member still pending after the first login: %+v", m)
		}
	}
	if e.must(200, "tok-admin", "GET", "/v1/admin/freezes", nil, &fs); len(fs) != 1 || fs[0].Pending {
		t.Fatalf("freeze after the first login: %+v", fs)
	}
	// And carol's files are hers to read: the grant is in force.
	e.must(200, "tok-carol", "GET", "/v1/datasets/JGAD000001", nil, nil)
}

// identities maps tokens to full identities (name, mount, entity).
type identities map[string]Identity

func (f identities) Identify(_ context.Context, tok string) (*Identity, error) {
	if id, ok := f[tok]; ok {
		return &id, nil
	}
	return nil, ErrBadToken
}

// TestGrantFollowsTheEntity: a grant bound to a person (Vault entity) is
// honoured whatever name that person logs in with (a renamed account, or
// another login method), and not for someone else who logs in with the
// name later; revoking or freezing by the new name reaches the person.
func TestGrantFollowsTheEntity(t *testing.T) {
	e := newEnv(t)
	ids := identities{}
	for tok, u := range tokens {
		ids[tok] = Identity{Name: u, Mount: "userpass", EntityID: fakeEntity(u)}
	}
	// rita, renamed (or by LDAP, under another name): the same entity.
	ids["tok-rita-ldap"] = Identity{Name: "rita.s", Mount: "ldap", EntityID: fakeEntity("rita")}
	// After rita left, someone else got the name "rita".
	ids["tok-rita-new"] = Identity{Name: "rita", Mount: "userpass", EntityID: "ent-another-rita"}
	e.srv.ident = ids
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	var g api.Grant
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita",
		api.GrantRequest{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"}, &g)
	if g.Pending {
		t.Fatalf("grant to a known user is pending: %+v", g)
	}
	files := "/v1/datasets/JGAD000001/files"

	// The same person under another name.
	e.now = e.now.Add(time.Minute)
	e.must(200, "tok-rita-ldap", "GET", files, nil, nil)
	var reg []api.Grant
	if e.must(200, "tok-rita-ldap", "GET", "/v1/grants", nil, &reg); len(reg) != 1 || reg[0].User != "rita" {
		t.Fatalf("own register under another name: %+v", reg)
	}

	// Someone else with the old name: a stranger to the dataset, and the
	// grant is not theirs.
	e.now = e.now.Add(time.Minute)
	e.must(404, "tok-rita-new", "GET", files, nil, nil)
	if e.must(200, "tok-rita-new", "GET", "/v1/grants", nil, &reg); len(reg) != 0 {
		t.Fatalf("a new holder of the name sees the old grants: %+v", reg)
	}
	// The listing names the person by the name they now log in with.
	var gs []api.Grant
	if e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants", nil, &gs); len(gs) != 1 || gs[0].LoginName != "rita.s" {
		t.Fatalf("listing after a rename: %+v", gs)
	}

	// A freeze by the new name stops the person under either name...
	e.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "rita.s", Reason: "incident"}, nil)
	e.must(403, "tok-rita-ldap", "GET", files, nil, nil)
	e.must(403, "tok-rita", "GET", files, nil, nil)
	// ...and not the other "rita".
	e.must(404, "tok-rita-new", "GET", files, nil, nil)
	e.must(200, "tok-admin", "DELETE", "/v1/admin/freezes/user/rita.s", api.UnfreezeRequest{Reason: "resolved"}, nil)
	e.must(200, "tok-rita-ldap", "GET", files, nil, nil)

	// Revoking by the new name ends the grant made under the old one.
	e.must(200, "tok-sam", "DELETE", "/v1/datasets/JGAD000001/grants/rita.s", api.RevokeRequest{Reason: "left"}, nil)
	e.must(403, "tok-rita-ldap", "GET", files, nil, nil)
}
