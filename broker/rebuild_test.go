package broker

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/rebuild"
	"github.com/dozo-vault/dozo/storage"
)

func TestRebuild(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD7", Title: "seven", K: 2, M: 2, PlainSegmentSize: 1 << 20}, nil)
	var files []api.File
	for _, name := range []string{"a.vcf", "b.bam", "c.txt", "d.txt"} {
		files = append(files, e.upload("tok-sam", "JGAD7", name, randBytes(1<<20+len(name)*1000), randBytes(16), randBytes(16)))
	}
	want := map[string]*catalog.File{}
	for _, f := range files {
		cf, err := e.cat.File(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		want[f.ID] = cf
	}
	a, b, c, d := files[0], files[1], files[2], files[3]
	// b: its manifest copy on the first metadata target is altered; the
	// other domain's copy still verifies.
	// c: every manifest copy is altered: skipped.
	// d: uploaded before file info existed (info objects gone): named by id.
	var holders []storage.Target
	for _, tg := range e.targets {
		if _, err := tg.Stat(ctx, storage.ManifestKey("JGAD7", b.ID)); err == nil {
			holders = append(holders, tg)
		}
	}
	if len(holders) != 3 {
		t.Fatalf("manifest on %d targets, want one per domain (3)", len(holders))
	}
	alter := func(tg storage.Target, key string) {
		obj, err := tg.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(obj)
		obj.Close()
		bad := bytes.Replace(buf.Bytes(), []byte(`"k":2`), []byte(`"k":1`), 1)
		if err := tg.Put(ctx, key, bytes.NewReader(bad), int64(len(bad))); err != nil {
			t.Fatal(err)
		}
	}
	alter(holders[0], storage.ManifestKey("JGAD7", b.ID))
	for _, tg := range e.targets {
		if _, err := tg.Stat(ctx, storage.ManifestKey("JGAD7", c.ID)); err == nil {
			alter(tg, storage.ManifestKey("JGAD7", c.ID))
		}
		tg.Delete(ctx, filestore.FileInfoKey("JGAD7", d.ID))
	}
	// A stray object that is not a manifest is ignored.
	holders[1].Put(ctx, "dozo/v1/JGAD7/junk", strings.NewReader("x"), 1)

	// The catalog is lost: a fresh one.
	fresh, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	o := rebuild.Options{Catalog: fresh, Keys: e.srv.keys, Targets: e.targets, DatasetID: "JGAD7", Now: e.now.Add(time.Hour)}
	if _, err := rebuild.Run(ctx, o); err == nil || !strings.Contains(err.Error(), "--owner") {
		t.Fatalf("missing owner: %v", err)
	}
	o.Owner = "sam"
	rep, err := rebuild.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied || rep.DatasetRow != "would be created" || rep.Manifests != 4 || len(rep.Files) != 3 || len(rep.Skipped) != 1 ||
		rep.Skipped[0].FileID != c.ID || !strings.Contains(rep.Skipped[0].Reason, "no copy verifies") {
		t.Fatalf("dry run report %+v", rep)
	}
	if _, err := fresh.Dataset(ctx, "JGAD7"); err == nil {
		t.Fatal("dry run wrote the dataset")
	}
	o.Apply = true
	if rep, err = rebuild.Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	if rep.DatasetRow != "created" || len(rep.Files) != 3 || rep.Files[0].Action != "restored" {
		t.Fatalf("report %+v", rep)
	}
	ds, err := fresh.Dataset(ctx, "JGAD7")
	if err != nil || ds.K != 2 || ds.M != 2 || ds.PlainSegmentSize != 1<<20 || ds.Title != "seven" || ds.TransitKey != "dozo-ds-JGAD7" || ds.Files != 3 {
		t.Fatalf("dataset %+v %v", ds, err)
	}
	if roles, _ := fresh.Roles(ctx, "JGAD7", catalog.ByName("sam"), "2026-03-01"); len(roles) != 2 {
		t.Fatalf("owner roles %v", roles)
	}
	for _, f := range []api.File{a, b} {
		got, err := fresh.AvailableFile(ctx, "JGAD7", f.Name)
		if err != nil {
			t.Fatal(err)
		}
		w := want[f.ID]
		if got.ID != w.ID || got.Size != w.Size || got.SHA256 != w.SHA256 || got.MD5 != w.MD5 || got.StoredSize != w.StoredSize ||
			got.HashAlg != w.HashAlg || got.CreatedBy != "sam" || !bytes.Equal(got.HeaderObject, w.HeaderObject) || !bytes.Equal(got.Manifest, w.Manifest) {
			t.Fatalf("restored %+v\nwant %+v", got, w)
		}
		segs, err := fresh.Segments(ctx, f.ID)
		if err != nil || len(segs) != 2 {
			t.Fatalf("segments %d %v", len(segs), err)
		}
	}
	got, err := fresh.AvailableFile(ctx, "JGAD7", d.ID)
	if err != nil || got.Size != want[d.ID].Size || got.SHA256 != "" {
		t.Fatalf("file without info: %+v %v", got, err)
	}
	for _, rf := range rep.Files {
		if (rf.FileID == d.ID) != rf.NameFromID {
			t.Fatalf("name_from_id wrong: %+v", rf)
		}
	}
	// A broker on the rebuilt catalog serves the files.
	e.cat = fresh
	var bts []Target
	for _, id := range e.srv.targetIDs {
		bts = append(bts, e.srv.targets[id])
	}
	e.srv, err = New(Options{Catalog: fresh, Identifier: tokens, Keys: e.srv.keys, Targets: bts, Admins: []string{"admin"},
		Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, "tok-sam", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: testRecipient(t)}, nil)
	var fr api.FetchResponse
	e.must(200, "tok-sam", "POST", "/v1/datasets/JGAD7/files/b.bam/fetch", nil, &fr)
	if fr.File.SHA256 != b.SHA256 {
		t.Fatalf("fetch after rebuild: %+v", fr.File)
	}

	// Running it again changes nothing.
	if rep, err = rebuild.Run(ctx, o); err != nil || rep.DatasetRow != "exists" || rep.Files[0].Action != "already in the catalog" {
		t.Fatalf("second run %+v %v", rep, err)
	}
	// A wrong transit key for an existing dataset is refused.
	o.TransitKey = "dozo-ds-other"
	if _, err := rebuild.Run(ctx, o); err == nil {
		t.Fatal("mismatched transit key accepted")
	}
}
