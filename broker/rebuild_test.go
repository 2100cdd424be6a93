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

// TestRebuildKeepsKeyGeneration: a dataset row recreated by a rebuild
// after its key was rotated twice gets a key generation no lower than the
// one a running dozod saw before, so that dozod keeps using its verified
// manifests and MACs for the key instead of treating every read as stale.
func TestRebuildKeepsKeyGeneration(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	for range 2 {
		l.must(200, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)
	}
	l.fetchKey()
	key := api.TransitKeyName("DS1")
	seen := l.srv.macMemo.generation(key)
	if seen != 2 {
		t.Fatalf("the running dozod saw key generation %d after two rotations", seen)
	}
	fresh, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	rep, err := rebuild.Run(ctx, rebuild.Options{Catalog: fresh, Keys: l.keys, Targets: l.targets, DatasetID: "DS1", Owner: "sam", Apply: true, Now: l.now})
	if err != nil || rep.DatasetRow != "created" || len(rep.Files) != 1 {
		t.Fatalf("rebuild: %+v %v", rep, err)
	}
	ds, err := fresh.Dataset(ctx, "DS1")
	if err != nil {
		t.Fatal(err)
	}
	if ds.KeyGeneration < seen || !l.srv.macMemo.observe(key, ds.KeyGeneration) {
		t.Fatalf("rebuilt key generation %d, below the %d a running dozod saw", ds.KeyGeneration, seen)
	}
}
