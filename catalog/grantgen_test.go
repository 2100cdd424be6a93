package catalog

import (
	"context"
	"testing"
	"time"
)

// TestGrantsGeneration: every change that can change someone's expiring
// grants raises the generation, as another catalog on the same store
// (another dozod) reads it alone and with Access; changes that cannot
// (a member, a freeze, a dataset created, a login binding nothing, a
// repeated deletion) leave it.
func TestGrantsGeneration(t *testing.T) {
	ctx := context.Background()
	where := store(t)
	c, other := openAt(t, where), openAt(t, where)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	last := int64(0)
	// step checks that what changed (raise) or did not the generation,
	// read by other both ways.
	step := func(what string, raise bool) {
		t.Helper()
		n, err := other.GrantsGeneration(ctx)
		must(err)
		v, err := other.Access(ctx, AccessQuery{User: ByName("rita"), Today: "2026-03-01"})
		must(err)
		w, err := other.Access(ctx, AccessQuery{Dataset: "NONE", User: ByName("rita"), Today: "2026-03-01", Recipient: true})
		must(err)
		if v.GrantsGeneration != n || w.GrantsGeneration != n {
			t.Errorf("%s: generation %d alone, %d and %d with Access", what, n, v.GrantsGeneration, w.GrantsGeneration)
		}
		if raise && n <= last || !raise && n != last {
			t.Errorf("%s: generation %d after %d (raise: %v)", what, n, last, raise)
		}
		last = n
	}
	step("fresh catalog", false)
	mkDataset(t, c, "D")
	mkDataset(t, c, "E")
	must(c.AddMember(ctx, "D", "sam", "", RoleCustodian, "admin", t0))
	_, err := c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "eve", Reason: "r", FrozenBy: "admin", FrozenAt: t0})
	must(err)
	step("datasets, a member, a freeze", false)

	_, err = c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", Until: "2026-03-20", GrantedBy: "sam", GrantedAt: t0})
	must(err)
	step("grant", true)
	_, err = c.PutGrant(ctx, Grant{DatasetID: "D", User: "rita", From: "2026-03-21", Until: "2026-12-31", GrantedBy: "sam", GrantedAt: t0})
	must(err)
	step("next period booked", true)
	_, err = c.RevokeGrant(ctx, "D", ByName("rita"), "sam", "over", t0)
	must(err)
	step("revoke", true)
	must(c.SeenUser(ctx, "rita", "userpass", "ent-rita", t0))
	step("login binding her grants", true)
	must(c.SeenUser(ctx, "rita", "userpass", "ent-rita", t0.Add(time.Hour)))
	step("login binding nothing", false)

	_, err = c.ScheduleDeletion(ctx, "D", "sam", t0, t0.Add(time.Hour))
	must(err)
	step("deletion scheduled", true)
	_, err = c.ScheduleDeletion(ctx, "D", "sam", t0, t0.Add(time.Hour))
	must(err)
	step("deletion scheduled again", false)
	must(c.CancelDeletion(ctx, "D"))
	step("deletion cancelled", true)
	_, err = c.StartDeletion(ctx, "E", "sam", t0)
	must(err)
	step("deletion run at once", true)
	_, err = c.StartDeletion(ctx, "E", "sam", t0)
	must(err)
	step("deletion run again", false)
}
