package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAccessIsTheSeparateReads: Access answers, for every dataset and
// user, what UserFreeze, Dataset, Roles, ActiveFreeze, Recipient, File and
// AvailableFile answer one by one: members by name and by entity, grants
// active, ended, future and revoked, a frozen and a lifted dataset, a
// deleted one left out, a frozen user (by entity and by name), files
// available, uploading and missing.
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
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "eve", EntityID: "ent-eve", Reason: "r", FrozenBy: "admin", FrozenAt: now})
	must(err)
	_, err = c.PutFreeze(ctx, Freeze{Kind: FreezeUser, Name: "nobody", Reason: "r", FrozenBy: "admin", FrozenAt: now}) // pending first login
	must(err)
	must(c.SetRecipient(ctx, "rita", "age1rita", now))
	// Files: available (DS1 a.vcf, DS4 d.vcf), uploading (DS1 b.vcf).
	for _, u := range []struct{ ds, id, name string }{{"DS1", "u1", "a.vcf"}, {"DS1", "u2", "b.vcf"}, {"DS4", "u3", "d.vcf"}} {
		must(mkUpload(t, c, u.ds, u.id, u.name, 1))
		if u.id == "u2" {
			continue
		}
		must(c.CommitSegment(ctx, u.id, seg(0), now, now.Add(time.Hour)))
		_, err := c.CompleteUpload(ctx, u.id, "s", "m", []byte("{}"), now)
		must(err)
	}
	_, err = c.ScheduleDeletion(ctx, "DS4", "admin", now, now.Add(time.Hour))
	must(err)

	const today = "2026-03-01"
	access := func(q AccessQuery) *AccessView {
		t.Helper()
		q.Today = today
		v, err := c.Access(ctx, q)
		must(err)
		return v
	}
	for _, p := range []Principal{
		{Name: "sam", EntityID: "ent-sam"}, {Name: "carol", EntityID: "ent-carol"}, {Name: "carol-renamed", EntityID: "ent-carol"},
		{Name: "carol"}, {Name: "rita", EntityID: "ent-rita"},
		{Name: "rita"}, {Name: "eve", EntityID: "ent-eve"}, {Name: "eve-renamed", EntityID: "ent-eve"}, {Name: "nobody", EntityID: "ent-nobody"},
		{Name: "nobody"},
	} {
		_, ferr := c.UserFreeze(ctx, p)
		userFrozen := ferr == nil
		rcpt, err := c.Recipient(ctx, p.Name)
		must(err)
		all := access(AccessQuery{User: p, Counts: true, Recipient: true})
		var ids []string
		for _, a := range all.Datasets {
			ids = append(ids, a.ID)
		}
		if fmt.Sprint(ids) != "[DS1 DS2 DS3]" {
			t.Errorf("%v: datasets %v", p, ids)
		}
		if all.UserFrozen != userFrozen || all.Recipient != rcpt {
			t.Errorf("%v: Access frozen=%v recipient %q; separately frozen=%v recipient %q", p, all.UserFrozen, all.Recipient, userFrozen, rcpt)
		}
		for _, id := range []string{"DS1", "DS2", "DS3", "DS4", "NOPE"} {
			v := access(AccessQuery{Dataset: id, User: p, Counts: true})
			one := v.Datasets
			if v.UserFrozen != userFrozen || v.Recipient != "" {
				t.Errorf("%v %s: Access frozen=%v recipient %q, want frozen=%v and no recipient (not asked)", p, id, v.UserFrozen, v.Recipient, userFrozen)
			}
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
			if a.Dataset != *d || !slices.Equal(a.Roles, roles) || a.Frozen != frozen || a.File != nil {
				t.Errorf("%v %s: Access %+v %v frozen=%v; separately %+v %v frozen=%v", p, id, a.Dataset, a.Roles, a.Frozen, *d, roles, frozen)
			}
			if i := slices.IndexFunc(all.Datasets, func(x DatasetAccess) bool { return x.ID == id }); i < 0 || !slices.Equal(all.Datasets[i].Roles, a.Roles) || all.Datasets[i].Frozen != a.Frozen {
				t.Errorf("%v %s: the list disagrees with the single read", p, id)
			}
			// Without the counts, the same but for them.
			nc := access(AccessQuery{Dataset: id, User: p}).Datasets[0]
			want := a.Dataset
			want.Files, want.Bytes = 0, 0
			if nc.Dataset != want || !slices.Equal(nc.Roles, a.Roles) || nc.Frozen != a.Frozen {
				t.Errorf("%v %s: without counts %+v, want %+v", p, id, nc, want)
			}
		}
		// With a file: by name the available one only, by id any; the
		// caller's freeze and recipient whether or not it is found.
		for _, q := range []AccessQuery{
			{Dataset: "DS1", FileName: "a.vcf"}, {Dataset: "DS1", FileName: "b.vcf"}, {Dataset: "DS2", FileName: "a.vcf"},
			{Dataset: "DS4", FileName: "d.vcf"}, {Dataset: "NOPE", FileName: "a.vcf"},
			{FileID: "f-u1"}, {FileID: "f-u2"}, {FileID: "f-u3"}, {FileID: "f-nope"},
		} {
			q.User, q.Recipient = p, true
			v := access(q)
			if v.UserFrozen != userFrozen || v.Recipient != rcpt {
				t.Errorf("%v %+v: frozen=%v recipient %q, want %v %q", p, q, v.UserFrozen, v.Recipient, userFrozen, rcpt)
			}
			var f *File
			var ferr error
			if q.FileName != "" {
				f, ferr = c.AvailableFile(ctx, q.Dataset, q.FileName)
			} else {
				f, ferr = c.File(ctx, q.FileID)
			}
			ds := q.Dataset
			if ferr == nil {
				ds = f.DatasetID
			}
			plain := access(AccessQuery{Dataset: ds, User: p}).Datasets
			if ferr != nil || len(plain) == 0 {
				if len(v.Datasets) != 0 {
					t.Errorf("%v %+v: found %+v; separately %v, dataset rows %d", p, q, v.Datasets[0].File, ferr, len(plain))
				}
				continue
			}
			if len(v.Datasets) != 1 || v.Datasets[0].File == nil || fmt.Sprint(*v.Datasets[0].File) != fmt.Sprint(*f) {
				t.Errorf("%v %+v: Access %+v; separately %+v", p, q, v.Datasets, f)
				continue
			}
			if got := v.Datasets[0]; got.Dataset != plain[0].Dataset || !slices.Equal(got.Roles, plain[0].Roles) || got.Frozen != plain[0].Frozen {
				t.Errorf("%v %+v: dataset %+v, without the file %+v", p, q, got, plain[0])
			}
		}
	}
	if v := access(AccessQuery{FileID: "f-u2", User: Principal{Name: "rita", EntityID: "ent-rita"}}); len(v.Datasets) != 1 || v.Datasets[0].File.State != FileUploading {
		t.Errorf("an uploading file by id: %+v", v.Datasets)
	}
	// Spot checks, so the comparison above compares something.
	one := access(AccessQuery{Dataset: "DS1", User: Principal{Name: "carol-renamed", EntityID: "ent-carol"}, Counts: true}).Datasets
	if fmt.Sprint(one[0].Roles) != "[custodian submitter]" || one[0].Frozen || one[0].Files != 1 || one[0].Bytes != 10 {
		t.Errorf("carol on DS1: %v frozen=%v files %d bytes %d", one[0].Roles, one[0].Frozen, one[0].Files, one[0].Bytes)
	}
	one = access(AccessQuery{Dataset: "DS2", User: Principal{Name: "rita"}}).Datasets
	if fmt.Sprint(one[0].Roles) != "[submitter]" || !one[0].Frozen {
		t.Errorf("rita on DS2: %v frozen=%v", one[0].Roles, one[0].Frozen)
	}
	v := access(AccessQuery{Dataset: "DS1", FileName: "a.vcf", User: Principal{Name: "rita", EntityID: "ent-rita"}, Recipient: true})
	if one = v.Datasets; fmt.Sprint(one[0].Roles) != "[grantee]" || v.UserFrozen || v.Recipient != "age1rita" || one[0].File.ID != "f-u1" {
		t.Errorf("rita on DS1: %v frozen=%v recipient %q file %+v", one[0].Roles, v.UserFrozen, v.Recipient, one[0].File)
	}
	for _, id := range []string{"DS2", "DS3"} {
		v := access(AccessQuery{Dataset: id, User: Principal{Name: "eve-renamed", EntityID: "ent-eve"}})
		if len(v.Datasets[0].Roles) != 0 || !v.UserFrozen {
			t.Errorf("eve on %s: %v frozen=%v", id, v.Datasets[0].Roles, v.UserFrozen)
		}
	}
	if v := access(AccessQuery{Dataset: "NOPE", User: Principal{Name: "nobody"}}); !v.UserFrozen {
		t.Error("a freeze pending first login is not seen when no dataset is found")
	}
}

// TestAccessUsesIndexes: the statements every request runs find the
// dataset's files by index, never by reading every file of the catalog
// (SQLite uses the partial index on a file's name only when the query
// states its condition). The plan is SQLite's; PostgreSQL plans by its
// statistics.
func TestAccessUsesIndexes(t *testing.T) {
	c := open(t)
	if c.Backend() != SQLite {
		t.Skip("query plans are checked on SQLite")
	}
	ctx := context.Background()
	p := Principal{Name: "rita", EntityID: "ent-rita"}
	plans := map[string]string{"dataset": `SELECT ` + datasetCols + ` FROM datasets d WHERE d.id = ? AND d.deleted_at IS NULL`}
	for name, q := range map[string]AccessQuery{
		"list":          {User: p, Counts: true},
		"one dataset":   {Dataset: "D", User: p, Counts: true},
		"header fetch":  {Dataset: "D", FileName: "a.vcf", User: p, Recipient: true},
		"presign batch": {FileID: "f-1", User: p},
	} {
		query, _, _, _ := q.sql()
		plans[name] = query
	}
	for name, query := range plans {
		rows, err := c.db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, make([]any, strings.Count(query, "?"))...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(detail, "SCAN f") {
				t.Errorf("%s: %s", name, detail)
			}
		}
		rows.Close()
	}
}
