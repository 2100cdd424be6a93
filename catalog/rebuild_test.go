package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/dozo-vault/dozo/storage"
)

func TestRestoreFileAndStats(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	mkDataset(t, c, "D")
	if err := mkUpload(t, c, "D", "u1", "taken.vcf", 1); err != nil {
		t.Fatal(err)
	}
	f := File{ID: "f9", DatasetID: "D", Name: "x.vcf", Size: 10, StoredSize: 26, HashAlg: "blake3", HeaderObject: []byte("hdr"),
		Manifest: []byte("{}"), SHA256: "s", MD5: "m", CreatedBy: "sam", CreatedAt: t0}
	if err := c.RestoreFile(ctx, f, nil, t0); err != nil {
		t.Fatal(err)
	}
	got, err := c.AvailableFile(ctx, "D", "x.vcf")
	if err != nil || got.ID != "f9" || got.SHA256 != "s" || string(got.Manifest) != "{}" {
		t.Fatalf("restored %+v %v", got, err)
	}
	// The same id again, or a live name: refused, nothing changes.
	if err := c.RestoreFile(ctx, f, nil, t0); !errors.Is(err, ErrExists) {
		t.Fatalf("same id: %v", err)
	}
	g := f
	g.ID, g.Name = "f10", "taken.vcf"
	if err := c.RestoreFile(ctx, g, nil, t0); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("live name: %v", err)
	}
	if _, err := c.File(ctx, "f10"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused restore left a row: %v", err)
	}
	g.ID, g.Name = "f11", "y.vcf"
	if err := c.RestoreFile(ctx, g, []storage.SegmentMeta{seg(0)}, t0); err != nil {
		t.Fatal(err)
	}
	if s, err := c.Segments(ctx, "f11"); err != nil || len(s) != 1 {
		t.Fatalf("segments %v %v", s, err)
	}
	g.ID, g.Name, g.Manifest = "f12", "z.vcf", nil
	if err := c.RestoreFile(ctx, g, nil, t0); err == nil {
		t.Fatal("restore without a manifest accepted")
	}
	st, err := c.FileStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{FileAvailable: 2, FileUploading: 1, FileDamaged: 0, FileAborted: 0}
	if st.Datasets != 1 || len(st.States) != 4 {
		t.Fatalf("stats %+v", st)
	}
	for _, sc := range st.States {
		if sc.Files != want[sc.State] || (sc.State == FileAvailable && sc.Bytes != 20) {
			t.Fatalf("stats %+v", st)
		}
	}
	// A rebuilt catalog has a grants generation to key warnings by:
	// restoring datasets and files changes nobody's grants.
	if n, err := c.GrantsGeneration(ctx); err != nil || n != 0 {
		t.Fatalf("grants generation after a rebuild: %d %v", n, err)
	}
}
