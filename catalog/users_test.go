package catalog

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestSeenUsersBindPendingRows: a user seen logging in is known, with
// mount, entity and first/last seen; rows made for the name before binds
// to the entity at that moment, rows bound to another entity do not move.
func TestSeenUsersBindPendingRows(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	if _, err := c.KnownUser(ctx, "carol"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Made before carol's first login: pending.
	g, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "carol", Until: "2026-12-31", GrantedBy: "sam", GrantedAt: t0})
	must(err)
	if !g.Pending() {
		t.Fatalf("grant without entity not pending: %+v", g)
	}
	must(c.AddMember(ctx, "D", "carol", "", RoleSubmitter, "sam", t0))
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "carol", Reason: "ahead", FrozenBy: "admin", FrozenAt: t0})
	must(err)
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeDataset, Name: "D", Reason: "x", FrozenBy: "admin", FrozenAt: t0})
	must(err)
	// A row bound to someone else stays theirs.
	must(c.AddMember(ctx, "D", "carol", "ent-old", RoleCustodian, "sam", t0))

	t1 := t0.Add(time.Hour)
	must(c.SeenUser(ctx, "carol", "userpass", "ent-carol", t0))
	must(c.SeenUser(ctx, "carol", "ldap", "ent-carol", t1))
	u, err := c.KnownUser(ctx, "carol")
	must(err)
	if u.Mount != "ldap" || u.EntityID != "ent-carol" || !u.FirstSeen.Equal(t0) || !u.LastSeen.Equal(t1) {
		t.Fatalf("user %+v", u)
	}
	gs, err := c.Grants(ctx, "D", true)
	must(err)
	if len(gs) != 1 || gs[0].EntityID != "ent-carol" || gs[0].Pending() {
		t.Fatalf("grants after login %+v", gs)
	}
	ms, err := c.Members(ctx, "D")
	must(err)
	want := map[string]string{"carol/custodian": "ent-old", "carol/submitter": "ent-carol", "sam/custodian": "", "sam/submitter": ""}
	if len(ms) != len(want) {
		t.Fatalf("members %+v", ms)
	}
	for _, m := range ms {
		if e, ok := want[m.User+"/"+m.Role]; !ok || e != m.EntityID {
			t.Fatalf("member %+v, want entity %q", m, e)
		}
	}
	fs, err := c.Freezes(ctx, true)
	must(err)
	for _, f := range fs {
		if (f.Kind == FreezeUser) != (f.EntityID == "ent-carol") {
			t.Fatalf("freeze %+v", f)
		}
	}
	// A key registered before logins were recorded makes a user known,
	// without times.
	must(c.SetRecipient(ctx, "amy", "age1x", t0))
	us, err := c.Users(ctx)
	must(err)
	if len(us) != 2 || us[0].Name != "amy" || !us[0].LastSeen.IsZero() || us[1].Name != "carol" {
		t.Fatalf("users %+v", us)
	}
	// Recording again keeps the registered key.
	must(c.SeenUser(ctx, "amy", "userpass", "ent-amy", t1))
	if r, err := c.Recipient(ctx, "amy"); err != nil || r != "age1x" {
		t.Fatalf("recipient after seen: %q %v", r, err)
	}
	// Someone else with the name (another entity) does not inherit the
	// key; the same person under another mount keeps it.
	must(c.SeenUser(ctx, "amy", "ldap", "ent-amy", t1))
	if r, _ := c.Recipient(ctx, "amy"); r != "age1x" {
		t.Fatalf("recipient after another login of the same entity: %q", r)
	}
	must(c.SeenUser(ctx, "amy", "userpass", "ent-another-amy", t1))
	if r, _ := c.Recipient(ctx, "amy"); r != "" {
		t.Fatalf("a new holder of the name inherits the key %q", r)
	}
	if err := c.SeenUser(ctx, "bob", "userpass", "", t1); err == nil {
		t.Fatal("seen user without entity accepted")
	}
}

// TestPrincipalMatchesEntity: rows bound to an entity are that entity's
// under any name and nobody else's under the same name; unbound rows are
// the name's; revocations and lifts reach the person by either name.
func TestPrincipalMatchesEntity(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rita := Principal{Name: "rita", EntityID: "E1"}
	renamed := Principal{Name: "rita.s", EntityID: "E1"}
	other := Principal{Name: "rita", EntityID: "E2"} // the name, reused by someone else
	_, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", EntityID: "E1", Until: "2026-12-31", GrantedBy: "sam", GrantedAt: t0})
	must(err)
	must(c.AddMember(ctx, "D", "rita", "E1", RoleSubmitter, "sam", t0))
	must(c.SeenUser(ctx, "rita.s", "ldap", "E1", t0.Add(time.Minute)))
	today := "2026-03-01"
	for _, tc := range []struct {
		who   Principal
		roles string
	}{{rita, "[submitter grantee]"}, {renamed, "[submitter grantee]"}, {other, "[]"}, {ByName("rita"), "[submitter grantee]"}} {
		roles, err := c.Roles(ctx, "D", tc.who, today)
		must(err)
		if fmt.Sprint(roles) != tc.roles {
			t.Errorf("Roles(%+v) = %v, want %s", tc.who, roles, tc.roles)
		}
	}
	if gs, err := c.VisibleGrants(ctx, other, false, true); err != nil || len(gs) != 0 {
		t.Fatalf("another rita sees %+v %v", gs, err)
	}
	gs, err := c.VisibleGrants(ctx, renamed, false, true)
	must(err)
	if len(gs) != 1 || gs[0].LoginName != "rita.s" || gs[0].User != "rita" {
		t.Fatalf("renamed sees %+v", gs)
	}
	// A new grant under the new name supersedes the old one: one person.
	g2, err := c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita.s", EntityID: "E1", Until: "2026-12-30", GrantedBy: "sam", GrantedAt: t0})
	must(err)
	if cur, err := c.Grants(ctx, "D", false); err != nil || len(cur) != 1 || cur[0].ID != g2.ID {
		t.Fatalf("current grants after a grant under the new name: %+v %v", cur, err)
	}
	// Freezes: by entity under any name, not the other rita.
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "rita", EntityID: "E1", Reason: "x", FrozenBy: "admin", FrozenAt: t0})
	must(err)
	if _, err := c.UserFreeze(ctx, renamed); err != nil {
		t.Fatalf("renamed not frozen: %v", err)
	}
	if _, err := c.UserFreeze(ctx, other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another rita frozen: %v", err)
	}
	if _, err := c.LiftFreeze(ctx, FreezeUser, renamed, "admin", "ok", t0); err != nil {
		t.Fatalf("lift by the new name: %v", err)
	}
	if _, err := c.UserFreeze(ctx, rita); !errors.Is(err, ErrNotFound) {
		t.Fatalf("still frozen after the lift: %v", err)
	}
	// Revoking and removing by the new name reach the rows.
	if _, err := c.RevokeGrant(ctx, "D", renamed, "sam", "left", t0); err != nil {
		t.Fatal(err)
	}
	must(c.RemoveMember(ctx, "D", renamed, RoleSubmitter))
	if roles, _ := c.Roles(ctx, "D", rita, today); len(roles) != 0 {
		t.Fatalf("roles after revocation: %v", roles)
	}
}
