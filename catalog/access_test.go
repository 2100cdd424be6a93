package catalog

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestAccessIsTheSeparateReads: Access answers, for every dataset and
// user, what Dataset, Roles and ActiveFreeze answer one by one: members
// by name and by entity, grants active, ended, future and revoked, a
// frozen and a lifted dataset, a deleted one left out.
func TestAccessIsTheSeparateReads(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	for _, id := range []string{"DS1", "DS2", "DS3", "DS4"} {
		mkDataset(t, c, id)
	}
	now := t0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddMember(ctx, "DS1", "carol", "ent-carol", RoleCustodian, "admin", now))
	must(c.AddMember(ctx, "DS1", "carol", "ent-carol", RoleSubmitter, "admin", now))
	must(c.AddMember(ctx, "DS2", "rita", "", RoleSubmitter, "admin", now)) // by name, no entity yet
	grant := func(ds, user, entity, from, until string) {
		t.Helper()
		_, err := c.PutGrant(ctx, Grant{DatasetID: ds, User: user, EntityID: entity, From: from, Until: until,
			Institution: "i", GrantedBy: "sam", GrantedAt: now})
		must(err)
	}
	grant("DS1", "rita", "ent-rita", "2026-01-01", "2026-12-31")
	grant("DS2", "eve", "ent-eve", "2026-01-01", "2026-01-31") // ended on the day below
	grant("DS3", "eve", "ent-eve", "2026-09-01", "2026-12-31") // future
	grant("DS3", "rita", "ent-rita", "2026-01-01", "2026-12-31")
	_, err := c.RevokeGrant(ctx, "DS3", Principal{Name: "rita", EntityID: "ent-rita"}, "sam", "done", now)
	must(err)
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeDataset, Name: "DS2", Reason: "r", FrozenBy: "admin", FrozenAt: now})
	must(err)
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeDataset, Name: "DS3", Reason: "r", FrozenBy: "admin", FrozenAt: now})
	must(err)
	_, err = c.LiftFreeze(ctx, FreezeDataset, Principal{Name: "DS3"}, "admin", "ok", now)
	must(err)
	_, err = c.ScheduleDeletion(ctx, "DS4", "admin", now, now.Add(time.Hour))
	must(err)

	const today = "2026-03-01"
	for _, p := range []Principal{
		{Name: "sam", EntityID: "ent-sam"}, {Name: "carol", EntityID: "ent-carol"}, {Name: "carol-renamed", EntityID: "ent-carol"},
		{Name: "carol"}, {Name: "rita", EntityID: "ent-rita"},
		{Name: "rita"}, {Name: "eve", EntityID: "ent-eve"}, {Name: "nobody", EntityID: "ent-nobody"},
	} {
		all, err := c.Access(ctx, "", p, today)
		must(err)
		var ids []string
		for _, a := range all {
			ids = append(ids, a.ID)
		}
		if fmt.Sprint(ids) != "[DS1 DS2 DS3]" {
			t.Errorf("%v: datasets %v", p, ids)
		}
		for _, id := range []string{"DS1", "DS2", "DS3", "DS4", "NOPE"} {
			one, err := c.Access(ctx, id, p, today)
			must(err)
			d, derr := c.Dataset(ctx, id)
			if derr != nil {
				if len(one) != 0 {
					t.Errorf("%v %s: Access gave %+v, Dataset %v", p, id, one, derr)
				}
				continue
			}
			if len(one) != 1 {
				t.Fatalf("%v %s: %d rows", p, id, len(one))
			}
			a := one[0]
			roles, err := c.Roles(ctx, id, p, today)
			must(err)
			_, ferr := c.ActiveFreeze(ctx, FreezeDataset, id)
			frozen := ferr == nil
			if a.Dataset != *d || !slices.Equal(a.Roles, roles) || a.Frozen != frozen {
				t.Errorf("%v %s: Access %+v %v frozen=%v; separately %+v %v frozen=%v", p, id, a.Dataset, a.Roles, a.Frozen, *d, roles, frozen)
			}
			if i := slices.IndexFunc(all, func(x DatasetAccess) bool { return x.ID == id }); i < 0 || !slices.Equal(all[i].Roles, a.Roles) || all[i].Frozen != a.Frozen {
				t.Errorf("%v %s: the list disagrees with the single read", p, id)
			}
		}
	}
	// Spot checks, so the comparison above compares something.
	one, _ := c.Access(ctx, "DS1", Principal{Name: "carol-renamed", EntityID: "ent-carol"}, today)
	if fmt.Sprint(one[0].Roles) != "[custodian submitter]" || one[0].Frozen {
		t.Errorf("carol on DS1: %v frozen=%v", one[0].Roles, one[0].Frozen)
	}
	one, _ = c.Access(ctx, "DS2", Principal{Name: "rita"}, today)
	if fmt.Sprint(one[0].Roles) != "[submitter]" || !one[0].Frozen {
		t.Errorf("rita on DS2: %v frozen=%v", one[0].Roles, one[0].Frozen)
	}
	one, _ = c.Access(ctx, "DS1", Principal{Name: "rita", EntityID: "ent-rita"}, today)
	if fmt.Sprint(one[0].Roles) != "[grantee]" {
		t.Errorf("rita on DS1: %v", one[0].Roles)
	}
	for _, id := range []string{"DS2", "DS3"} {
		if one, _ = c.Access(ctx, id, Principal{Name: "eve", EntityID: "ent-eve"}, today); len(one[0].Roles) != 0 {
			t.Errorf("eve on %s: %v", id, one[0].Roles)
		}
	}
}
