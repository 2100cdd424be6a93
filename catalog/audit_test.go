package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/audit"
)

func TestAuditAppendConcurrentChain(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "DS1")
	if err := mkUpload(t, c, "DS1", "u1", "a.bam", 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obj := fmt.Sprintf("dataset/DS%d", i%3)
			if i%4 == 0 {
				obj = "file/f-u1"
			}
			if _, err := c.AppendAudit(ctx, audit.Record{Time: t0.Add(time.Duration(i) * time.Second), Actor: fmt.Sprintf("user%d", i%2),
				Action: "file.fetch", Object: obj, Result: audit.ResultOK, Status: 200}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	res, err := c.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Records != 40 {
		t.Fatalf("verify after concurrent appends: %+v %v", res, err)
	}
	// The file's dataset is filled in, so DS1's custodian sees file events.
	rs, err := c.AuditRecords(ctx, AuditFilter{Dataset: "DS1", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 10+10 { // i%4==0 → file/f-u1 (10); i%3==1 and not i%4==0 → dataset/DS1 (10)
		t.Fatalf("DS1 has %d records", len(rs))
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Seq <= rs[i-1].Seq {
			t.Fatal("listing is not oldest first")
		}
	}
	rs, _ = c.AuditRecords(ctx, AuditFilter{Actor: "user1", Since: t0.Add(20 * time.Second), Limit: 3})
	if len(rs) != 3 || rs[2].Actor != "user1" || rs[0].Time.Before(t0.Add(20*time.Second)) {
		t.Fatalf("actor+since+limit: %+v", rs)
	}
}

func TestAuditVerifyTamperedTable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, sql string
		seq       uint64
		kind      string
	}{
		{"edited", `UPDATE audit SET actor = 'mallory' WHERE seq = 4`, 4, audit.Edited},
		{"deleted", `DELETE FROM audit WHERE seq = 4`, 5, audit.Deleted},
		{"swapped", `UPDATE audit SET seq = CASE seq WHEN 4 THEN 5 ELSE 4 END WHERE seq IN (4, 5)`, 4, audit.Reordered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t)
			for i := range 8 {
				if _, err := c.AppendAudit(ctx, audit.Record{Time: t0.Add(time.Duration(i)), Actor: "sam", Action: "a", Object: "o", Result: audit.ResultOK}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "swapped" {
				if _, err := c.db.Exec(`UPDATE audit SET seq = -seq WHERE seq IN (4, 5)`); err != nil {
					t.Fatal(err)
				}
				if _, err := c.db.Exec(`UPDATE audit SET seq = CASE seq WHEN -4 THEN 5 ELSE 4 END WHERE seq IN (-4, -5)`); err != nil {
					t.Fatal(err)
				}
			} else if _, err := c.db.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			res, err := c.VerifyAudit(ctx)
			if err != nil || res.OK || res.BadSeq != tc.seq || res.Kind != tc.kind {
				t.Fatalf("got %+v %v, want seq %d %s", res, err, tc.seq, tc.kind)
			}
		})
	}
}

func TestDeletionHidesDataset(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "DS1")
	mkDataset(t, c, "DS2")
	if err := mkUpload(t, c, "DS1", "u1", "a.bam", 1); err != nil {
		t.Fatal(err)
	}
	d, err := c.StartDeletion(ctx, "DS1", "sam", t0)
	if err != nil || d.StartedBy != "sam" {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := c.Dataset(ctx, "DS1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted dataset still visible: %v", err)
	}
	if all, _ := c.Datasets(ctx); len(all) != 1 || all[0].ID != "DS2" {
		t.Fatalf("datasets after delete: %+v", all)
	}
	if _, at, err := c.DatasetIncludingDeleted(ctx, "DS1"); err != nil || at == nil || !at.Equal(t0) {
		t.Fatalf("including deleted: %v %v", at, err)
	}
	if u, _ := c.Upload(ctx, "u1"); u.State != UploadAborted || u.File.State != FileAborted {
		t.Fatalf("open upload survived the deletion: %s/%s", u.State, u.File.State)
	}
	if todo, _ := c.UploadsToClean(ctx, time.Hour); len(todo) != 0 {
		t.Fatalf("the reaper would clean a deleted dataset's upload: %+v", todo)
	}
	// Resuming keeps the first start.
	if d, _ := c.StartDeletion(ctx, "DS1", "admin", t0.Add(time.Hour)); d.StartedBy != "sam" || !d.StartedAt.Equal(t0) {
		t.Fatalf("restart changed the deletion: %+v", d)
	}
	o := DeletedObject{Target: "s1-a", Key: "dozo/v1/DS1/f/x", VersionID: "v1", Size: 3, DeletedAt: t0}
	c.RecordDeletedObject(ctx, "DS1", o)
	c.RecordDeletedObject(ctx, "DS1", o)
	if objs, _ := c.DeletedObjects(ctx, "DS1"); len(objs) != 1 || objs[0].Key != o.Key {
		t.Fatalf("deleted objects: %+v", objs)
	}
	if err := c.FinishDeletion(ctx, "DS1", []byte("not json"), t0); err == nil {
		t.Fatal("a non-JSON report was stored")
	}
}

func TestReplaceKeyMaterialCAS(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "DS1")
	mkUpload(t, c, "DS1", "u1", "a.bam", 1)
	if err := c.ReplaceKeyMaterial(ctx, "f-u1", []byte("other"), []byte("new"), nil, nil); !errors.Is(err, ErrState) {
		t.Fatalf("CAS with a stale header: %v", err)
	}
	if err := c.ReplaceKeyMaterial(ctx, "f-u1", []byte("hdr"), []byte("new"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if f, _ := c.File(ctx, "f-u1"); string(f.HeaderObject) != "new" {
		t.Fatalf("header %q", f.HeaderObject)
	}
	r, err := c.StartRotation(ctx, "DS1", 2, "sam", t0)
	if err != nil || r.TargetVersion != 2 {
		t.Fatal(r, err)
	}
	if r2, _ := c.StartRotation(ctx, "DS1", 3, "sam", t0); r2.ID != r.ID || r2.TargetVersion != 2 {
		t.Fatalf("second start did not resume: %+v", r2)
	}
	if fin, err := c.FinishRotation(ctx, r.ID, t0); err != nil || fin.FinishedAt == nil {
		t.Fatal(fin, err)
	}
	if _, err := c.OpenRotation(ctx, "DS1"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

// BenchmarkAuditAppend is the cost every audited request pays: one
// serialised, fsynced transaction on the catalog file.
func BenchmarkAuditAppend(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, b.TempDir()+"/dozo.db")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := audit.Record{Time: t0, Actor: "sam", Action: "fetch.presign", Object: "file/f-1/dozo/v1/DS/f-1/seg-00000001/p02",
		Result: audit.ResultOK, Status: 200, Source: "192.0.2.1:5555", RequestID: "0123456789abcdef01234567"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.AppendAudit(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
