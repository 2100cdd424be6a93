package broker

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/rebuild"
)

// TestRebuild: files a broker uploaded are restored by the catalog
// rebuild from storage alone, byte for byte as the upload recorded them
// (what each check of the rebuild covers is in package rebuild), and a
// broker on the rebuilt catalog serves them.
func TestRebuild(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD7", Title: "seven", K: 2, M: 2, PlainSegmentSize: 1 << 20}, nil)
	var files []api.File
	for _, name := range []string{"a.vcf", "b.bam"} {
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
	b := files[1]

	// The catalog is lost: a fresh one.
	fresh, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	o := rebuild.Options{Catalog: fresh, Keys: e.srv.keys, Targets: e.targets, DatasetID: "JGAD7", Owner: "sam", Apply: true, Now: e.now.Add(time.Hour)}
	rep, err := rebuild.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DatasetRow != "created" || rep.Manifests != 2 || len(rep.Files) != 2 || len(rep.Skipped) != 0 || rep.Files[0].Action != "restored" {
		t.Fatalf("report %+v", rep)
	}
	ds, err := fresh.Dataset(ctx, "JGAD7")
	if err != nil || ds.K != 2 || ds.M != 2 || ds.PlainSegmentSize != 1<<20 || ds.Title != "seven" || ds.TransitKey != "dozo-ds-JGAD7" || ds.Files != 2 {
		t.Fatalf("dataset %+v %v", ds, err)
	}
	for _, f := range files {
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
}
