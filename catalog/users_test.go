package catalog

import (
	"context"
	"errors"
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
	if err := c.SeenUser(ctx, "bob", "userpass", "", t1); err == nil {
		t.Fatal("seen user without entity accepted")
	}
}
