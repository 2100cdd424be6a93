package rebuild

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
	"github.com/dozo-vault/dozo/vault/vaulttest"
)

// fixture is six directory targets on three domains and a key service,
// with files stored as an upload stores them: pieces, a signed manifest
// and the header on one target per domain, and the sealed file info.
type fixture struct {
	t       *testing.T
	keys    *vaulttest.Keys
	targets []storage.Target
	now     time.Time
	n       int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{t: t, keys: &vaulttest.Keys{}, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	for _, srv := range []string{"s1", "s2", "s3"} {
		for _, b := range []string{"a", "b"} {
			d, err := storage.NewDirTarget(srv+"-"+b, srv, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			fx.targets = append(fx.targets, d)
		}
	}
	return fx
}

// emptyCatalog is a fresh catalog, as after the old one was lost.
func (fx *fixture) emptyCatalog() *catalog.Catalog {
	fx.t.Helper()
	c, err := catalog.Open(context.Background(), filepath.Join(fx.t.TempDir(), "new.db"))
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.t.Cleanup(func() { c.Close() })
	return c
}

// file stores data as file name of dataset ds (layout k+m, 1 MiB plaintext
// segments, key transitKey, which it creates) and returns the catalog row
// an upload would have made, with its segments. info false stores no file
// info, as before dozo kept it.
func (fx *fixture) file(ds, transitKey, title, name string, k, m int, data []byte, info bool) (*catalog.File, []storage.SegmentMeta) {
	fx.t.Helper()
	ctx := context.Background()
	if err := fx.keys.CreateKey(ctx, transitKey); err != nil {
		fx.t.Fatal(err)
	}
	l, err := filestore.Layout(k, m, 1<<20)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.n++
	id := fmt.Sprintf("f%015d", fx.n)
	w, err := filestore.Write(ctx, bytes.NewReader(data), filestore.WriteOptions{DatasetID: ds, FileID: id, Layout: l, Targets: fx.targets,
		Recipients: []age.Recipient{crypto.NewTransitRecipient(ctx, fx.keys, transitKey, id)}})
	if err != nil {
		fx.t.Fatal(err)
	}
	man, err := storage.NewManifest(ds, id, l, w.HashAlg, w.Segments)
	if err != nil {
		fx.t.Fatal(err)
	}
	if err := man.Sign(ctx, vault.TransitHMAC{Keys: fx.keys, Key: transitKey}); err != nil {
		fx.t.Fatal(err)
	}
	mb, err := man.Marshal()
	if err != nil {
		fx.t.Fatal(err)
	}
	if err := filestore.PutMetadata(ctx, fx.targets, man, w.HeaderObject); err != nil {
		fx.t.Fatal(err)
	}
	f := &catalog.File{ID: id, DatasetID: ds, Name: name, Size: int64(len(data)), StoredSize: man.Size, HashAlg: man.HashAlg,
		HeaderObject: w.HeaderObject, Manifest: mb, SHA256: hex.EncodeToString(w.SHA256), MD5: hex.EncodeToString(w.MD5),
		CreatedBy: "sam", CreatedAt: fx.now}
	if info {
		key, _, err := crypto.OpenHeaderObject(w.HeaderObject, crypto.NewTransitIdentity(ctx, fx.keys, transitKey, id))
		if err != nil {
			fx.t.Fatal(err)
		}
		obj, err := filestore.SealFileInfo(key, ds, id, &filestore.FileInfo{Name: name, Size: f.Size, SHA256: f.SHA256, MD5: f.MD5,
			CreatedBy: f.CreatedBy, CreatedAt: f.CreatedAt, DatasetTitle: title})
		if err != nil {
			fx.t.Fatal(err)
		}
		for _, tg := range fx.targets {
			if err := tg.Put(ctx, filestore.FileInfoKey(ds, id), bytes.NewReader(obj), int64(len(obj))); err != nil {
				fx.t.Fatal(err)
			}
		}
	}
	return f, w.Segments
}

// alter replaces "k":2 by "k":1 in the object key on tg: a manifest whose
// MAC no longer verifies.
func (fx *fixture) alter(tg storage.Target, key string) {
	fx.t.Helper()
	ctx := context.Background()
	obj, err := tg.Get(ctx, key, 0, -1)
	if err != nil {
		fx.t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(obj)
	obj.Close()
	bad := bytes.Replace(buf.Bytes(), []byte(`"k":2`), []byte(`"k":1`), 1)
	if bytes.Equal(bad, buf.Bytes()) {
		fx.t.Fatalf("%s unchanged", key)
	}
	if err := tg.Put(ctx, key, bytes.NewReader(bad), int64(len(bad))); err != nil {
		fx.t.Fatal(err)
	}
}

// holders are the targets holding object key.
func (fx *fixture) holders(key string) []storage.Target {
	var out []storage.Target
	for _, tg := range fx.targets {
		if _, err := tg.Stat(context.Background(), key); err == nil {
			out = append(out, tg)
		}
	}
	return out
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestRun: a dry run reports what would change and writes nothing; an
// applied run recreates the dataset row (layout, stored title, owner's
// roles) and every file whose manifest verifies on some copy, byte for
// byte as the upload recorded it; a file whose every manifest copy was
// altered is skipped; one without stored file info is named by its id
// without checksums. A second run changes nothing, and a transit key that
// is not the dataset's is refused.
func TestRun(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	const key = "dozo-ds-JGAD7"
	want := map[string]*catalog.File{}
	var files []*catalog.File
	for _, name := range []string{"a.vcf", "b.bam", "c.txt", "d.txt"} {
		f, _ := fx.file("JGAD7", key, "seven", name, 2, 2, randBytes(1<<20+len(name)*1000), name != "d.txt")
		files = append(files, f)
		want[f.ID] = f
	}
	a, b, c, d := files[0], files[1], files[2], files[3]
	// b: its manifest copy on the first metadata target is altered; the
	// other domains' copies still verify.
	// c: every manifest copy is altered: skipped.
	// d: uploaded before file info existed: named by id.
	holders := fx.holders(storage.ManifestKey("JGAD7", b.ID))
	if len(holders) != 3 {
		t.Fatalf("manifest on %d targets, want one per domain (3)", len(holders))
	}
	fx.alter(holders[0], storage.ManifestKey("JGAD7", b.ID))
	for _, tg := range fx.holders(storage.ManifestKey("JGAD7", c.ID)) {
		fx.alter(tg, storage.ManifestKey("JGAD7", c.ID))
	}
	// A stray object that is not a manifest is ignored.
	holders[1].Put(ctx, "dozo/v1/JGAD7/junk", strings.NewReader("x"), 1)

	fresh := fx.emptyCatalog()
	o := Options{Catalog: fresh, Keys: fx.keys, Targets: fx.targets, DatasetID: "JGAD7", Now: fx.now.Add(time.Hour)}
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "--owner") {
		t.Fatalf("missing owner: %v", err)
	}
	o.Owner = "sam"
	rep, err := Run(ctx, o)
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
	if rep, err = Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	if rep.DatasetRow != "created" || len(rep.Files) != 3 || rep.Files[0].Action != "restored" || rep.TransitKey != key {
		t.Fatalf("report %+v", rep)
	}
	ds, err := fresh.Dataset(ctx, "JGAD7")
	if err != nil || ds.K != 2 || ds.M != 2 || ds.PlainSegmentSize != 1<<20 || ds.Title != "seven" || ds.TransitKey != key || ds.Files != 3 {
		t.Fatalf("dataset %+v %v", ds, err)
	}
	if roles, _ := fresh.Roles(ctx, "JGAD7", catalog.ByName("sam"), "2026-03-01"); len(roles) != 2 {
		t.Fatalf("owner roles %v", roles)
	}
	for _, f := range []*catalog.File{a, b} {
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

	// Running it again changes nothing.
	if rep, err = Run(ctx, o); err != nil || rep.DatasetRow != "exists" || rep.Files[0].Action != "already in the catalog" {
		t.Fatalf("second run %+v %v", rep, err)
	}
	// A wrong transit key for an existing dataset is refused.
	o.TransitKey = "dozo-ds-other"
	if _, err := Run(ctx, o); err == nil {
		t.Fatal("mismatched transit key accepted")
	}
}

// TestRunStopsWithoutVault: with the key service unreachable nothing can
// be verified, so the rebuild stops with an error wrapping
// vault.ErrUnavailable instead of reporting the files as bad, and writes
// nothing.
func TestRunStopsWithoutVault(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	fx.file("JGAD8", "dozo-ds-JGAD8", "eight", "a.vcf", 2, 1, randBytes(1000), true)
	fresh := fx.emptyCatalog()
	fx.keys.SetUnavailable(true)
	rep, err := Run(ctx, Options{Catalog: fresh, Keys: fx.keys, Targets: fx.targets, DatasetID: "JGAD8", Owner: "sam", Apply: true})
	if !errors.Is(err, vault.ErrUnavailable) || rep != nil {
		t.Fatalf("rebuild without vault: %+v %v", rep, err)
	}
	if _, err := fresh.Dataset(ctx, "JGAD8"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("dataset written without vault: %v", err)
	}
}

// TestRunLayoutAndTitle: a file whose layout differs from the dataset's
// first verified file is skipped, and a dataset recreated from a file
// without stored info takes its title from a later file that has it.
func TestRunLayoutAndTitle(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	const key = "dozo-ds-JGAD9"
	first, _ := fx.file("JGAD9", key, "", "a", 2, 1, randBytes(1000), false)
	second, _ := fx.file("JGAD9", key, "nine", "b", 2, 1, randBytes(1000), true)
	other, _ := fx.file("JGAD9", key, "nine", "c", 2, 2, randBytes(1000), true)
	fresh := fx.emptyCatalog()
	rep, err := Run(ctx, Options{Catalog: fresh, Keys: fx.keys, Targets: fx.targets, DatasetID: "JGAD9", Owner: "sam", Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != 2 || rep.Files[0].FileID != first.ID || rep.Files[1].FileID != second.ID ||
		len(rep.Skipped) != 1 || rep.Skipped[0].FileID != other.ID || !strings.Contains(rep.Skipped[0].Reason, "layout") {
		t.Fatalf("report %+v", rep)
	}
	ds, err := fresh.Dataset(ctx, "JGAD9")
	if err != nil || ds.Title != "nine" || ds.K != 2 || ds.M != 1 {
		t.Fatalf("dataset %+v %v", ds, err)
	}
}

// rotatedKeys reports its keys as rotated: min_decryption_version min.
type rotatedKeys struct {
	*vaulttest.Keys
	min int
}

func (k rotatedKeys) ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error) {
	ki, err := k.Keys.ReadKey(ctx, name)
	if ki != nil {
		ki.LatestVersion, ki.MinDecryptionVersion = k.min, k.min
	}
	return ki, err
}

// TestRunKeyGeneration: a recreated dataset row's key generation is one
// less than its key's min_decryption_version (a fresh key's 1 gives 0),
// never 0 for a key whose old versions rotations retired; the dry run
// writes nothing either way.
func TestRunKeyGeneration(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		min  int
		want int64
	}{{1, 0}, {4, 3}} {
		fx := newFixture(t)
		fx.file("JGAD5", "dozo-ds-JGAD5", "five", "a.vcf", 2, 1, randBytes(1000), true)
		fresh := fx.emptyCatalog()
		keys := rotatedKeys{fx.keys, tc.min}
		o := Options{Catalog: fresh, Keys: keys, Targets: fx.targets, DatasetID: "JGAD5", Owner: "sam"}
		if rep, err := Run(ctx, o); err != nil || rep.DatasetRow != "would be created" {
			t.Fatalf("dry run: %+v %v", rep, err)
		}
		if _, err := fresh.Dataset(ctx, "JGAD5"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("the dry run wrote the dataset: %v", err)
		}
		o.Apply = true
		if _, err := Run(ctx, o); err != nil {
			t.Fatal(err)
		}
		ds, err := fresh.Dataset(ctx, "JGAD5")
		if err != nil || ds.KeyGeneration != tc.want {
			t.Fatalf("min_decryption_version %d: dataset %+v %v, want key generation %d", tc.min, ds, err, tc.want)
		}
	}
}

// TestRunRefusesBadInput: a bad dataset id, owner or transit key is an
// error before anything is read or written.
func TestRunRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	fresh := fx.emptyCatalog()
	for name, o := range map[string]Options{
		"dataset id":  {DatasetID: "../x", Owner: "sam"},
		"owner":       {DatasetID: "JGAD1", Owner: "sam/../root"},
		"transit key": {DatasetID: "JGAD1", Owner: "sam", TransitKey: "bad key/"},
	} {
		o.Catalog, o.Keys, o.Targets, o.Apply = fresh, fx.keys, fx.targets, true
		if rep, err := Run(ctx, o); err == nil {
			t.Errorf("%s: accepted: %+v", name, rep)
		}
	}
	if _, err := fresh.Dataset(ctx, "JGAD1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("dataset written: %v", err)
	}
}

// TestPlainSegmentSize: the stored segment size of every plaintext segment
// size maps back to it; a size no plaintext size gives is refused.
func TestPlainSegmentSize(t *testing.T) {
	for _, p := range []int64{crypto.ChunkSize, 1 << 20, 64 << 20} {
		s, err := crypto.StoredSegmentSize(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := plainSegmentSize(s); err != nil || got != p {
			t.Fatalf("plainSegmentSize(%d) = %d, %v; want %d", s, got, err, p)
		}
	}
	for _, s := range []int64{0, -1, crypto.ChunkSize + crypto.ChunkOverhead + 1} {
		if _, err := plainSegmentSize(s); err == nil {
			t.Fatalf("plainSegmentSize(%d) accepted", s)
		}
	}
}
