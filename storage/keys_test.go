package storage

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	good := []string{"a", "ds1", "File_01.v2", "A-b", strings.Repeat("x", MaxIDLen)}
	bad := []string{"", ".", "..", ".hidden", "-x", "a/b", "a b", "a\x00", "ü", strings.Repeat("x", MaxIDLen+1), "a\\b", "a:b"}
	for _, s := range good {
		if err := ValidateID(s); err != nil {
			t.Errorf("ValidateID(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if ValidateID(s) == nil {
			t.Errorf("ValidateID(%q) accepted", s)
		}
	}
}

func TestValidateKey(t *testing.T) {
	good := []string{"a", "dozo/v1/ds/f/seg-00000001/p00", PieceKey("d", "f", 12, 3), ManifestKey("d", "f"), HeaderKey("d", "f"), "a..b/c"}
	bad := []string{"", "/a", "a/", "a//b", "..", "../a", "a/../b", "a/..", ".", "./a", "a/.hidden", "a\x00b", "a b", "a\\b",
		"ü", strings.Repeat("a", MaxKeyLen+1), "a/\n"}
	for _, s := range good {
		if err := ValidateKey(s); err != nil {
			t.Errorf("ValidateKey(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if ValidateKey(s) == nil {
			t.Errorf("ValidateKey(%q) accepted", s)
		}
	}
}

func TestKeys(t *testing.T) {
	if got, want := PieceKey("ds", "f", 12, 3), "dozo/v1/ds/f/seg-00000012/p03"; got != want {
		t.Errorf("PieceKey = %q, want %q", got, want)
	}
	if got, want := ManifestKey("ds", "f"), "dozo/v1/ds/f/manifest.json"; got != want {
		t.Errorf("ManifestKey = %q", got)
	}
	if got, want := HeaderKey("ds", "f"), "dozo/v1/ds/f/header.age"; got != want {
		t.Errorf("HeaderKey = %q", got)
	}
	if got, want := FilePrefix("ds", "f"), "dozo/v1/ds/f/"; got != want {
		t.Errorf("FilePrefix = %q", got)
	}
	if got, want := DatasetPrefix("ds"), "dozo/v1/ds/"; got != want {
		t.Errorf("DatasetPrefix = %q", got)
	}
	// Keys derived from invalid ids are rejected by targets.
	for _, id := range []string{"..", ".", "", "a/b/../.."} {
		if ValidateKey(PieceKey(id, "f", 0, 0)) == nil && ValidateID(id) != nil {
			t.Errorf("key from bad id %q accepted", id)
		}
	}
}

func TestDirTargetRejectsTraversal(t *testing.T) {
	base := t.TempDir()
	inner := filepath.Join(base, "inner")
	os.Mkdir(inner, 0o755)
	d, err := NewDirTarget("t1", "d1", inner)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for _, key := range []string{"../x", "a/../../x", "/etc/passwd", "..", "a/./b", "a//b", "a\x00b"} {
		if err := d.Put(ctx, key, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Put(%q) accepted", key)
		}
		if _, err := d.Get(ctx, key, 0, -1); err == nil {
			t.Errorf("Get(%q) accepted", key)
		}
		if err := d.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q) accepted", key)
		}
	}
	// A symlink planted inside the directory must not lead out of it.
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	if err := os.Symlink(outside, filepath.Join(inner, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "link/secret", 0, -1); err == nil {
		t.Error("Get through an escaping symlink succeeded")
	}
	if err := d.Put(ctx, "link/new", strings.NewReader("x"), 1); err == nil {
		t.Error("Put through an escaping symlink succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Error("Put wrote outside the directory")
	}
}

func TestDirTarget(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDirTarget("t1", "d1", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, err := NewDirTarget("t2", "d1", filepath.Join(dir, "missing")); err == nil {
		t.Error("NewDirTarget on a missing directory succeeded")
	}
	key := "dozo/v1/ds/f/seg-00000000/p00"
	if _, err := d.Get(ctx, key, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if _, err := d.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat missing: %v", err)
	}
	if err := d.Put(ctx, key, strings.NewReader("hello world"), 11); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, key+"x", strings.NewReader("short"), 11); err == nil {
		t.Error("Put with short input succeeded")
	}
	if _, err := d.Stat(ctx, key+"x"); !errors.Is(err, ErrNotFound) {
		t.Error("failed Put left an object")
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, -1, "hello world"}, {6, -1, "world"}, {0, 5, "hello"}, {6, 100, "world"}, {11, -1, ""}, {3, 0, ""}} {
		rc, err := d.Get(ctx, key, c.off, c.n)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != c.want {
			t.Errorf("Get(%d,%d) = %q, want %q", c.off, c.n, b, c.want)
		}
	}
	if _, err := d.Get(ctx, key, 12, -1); err == nil {
		t.Error("Get beyond the end succeeded")
	}
	oi, err := d.Stat(ctx, key)
	if err != nil || oi.Size != 11 || oi.Key != key || oi.ETag == "" {
		t.Errorf("Stat = %+v, %v", oi, err)
	}
	d.Put(ctx, "dozo/v1/ds/f/manifest.json", strings.NewReader("{}"), 2)
	d.Put(ctx, "dozo/v1/ds/g/manifest.json", strings.NewReader("{}"), 2)
	d.Put(ctx, "dozo/v1/ds/fx", strings.NewReader("{}"), 2)
	// A stray temporary file must not be listed.
	os.WriteFile(filepath.Join(dir, "dozo/v1/ds/f", tmpPrefix+"zz"), nil, 0o644)
	list := func(prefix string) []string {
		var keys []string
		if err := d.List(ctx, prefix, func(oi ObjectInfo) error { keys = append(keys, oi.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := list("dozo/v1/ds/f/"); strings.Join(got, ",") != "dozo/v1/ds/f/manifest.json,dozo/v1/ds/f/seg-00000000/p00" {
		t.Errorf("List f/ = %q", got)
	}
	if got := list("dozo/v1/ds/f"); len(got) != 3 {
		t.Errorf("List f = %q", got)
	}
	if got := list(""); len(got) != 4 {
		t.Errorf("List all = %q", got)
	}
	if got := list("nothing/here/"); len(got) != 0 {
		t.Errorf("List missing = %q", got)
	}
	if err := d.List(ctx, "../", func(ObjectInfo) error { return nil }); err == nil {
		t.Error("List ../ accepted")
	}
	stop := errors.New("stop")
	if err := d.List(ctx, "", func(ObjectInfo) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("List did not pass on fn's error: %v", err)
	}
	os.Remove(filepath.Join(dir, "dozo/v1/ds/f", tmpPrefix+"zz"))
	for _, k := range []string{key, "dozo/v1/ds/f/manifest.json", "dozo/v1/ds/g/manifest.json", "dozo/v1/ds/fx"} {
		if err := d.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Delete(ctx, key); err != nil {
		t.Errorf("Delete of a missing object: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("empty directories left behind: %v", ents)
	}
}

// FuzzValidateKey checks that every key ValidateKey accepts maps to a path
// inside the target directory, round-trips through a real DirTarget, and is
// listed under its own key.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../a", "a/../b", "a//b", "/a", "a/.b", PieceKey("d", "f", 1, 2), "a\x00", "..", "a/b/"} {
		f.Add(s)
	}
	base := f.TempDir()
	dir := filepath.Join(base, "root")
	os.Mkdir(dir, 0o755)
	d, err := NewDirTarget("t", "d", dir)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, key string) {
		p, err := objectPath(key)
		if err != nil {
			return
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		rel, err := filepath.Rel(dir, full)
		if err != nil || !filepath.IsLocal(rel) || filepath.ToSlash(rel) != key {
			t.Fatalf("key %q maps to %q (rel %q)", key, full, rel)
		}
		if err := d.Put(ctx, key, strings.NewReader(key), int64(len(key))); err != nil {
			// Only a file/directory clash with an earlier key may fail.
			return
		}
		rc, err := d.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != key {
			t.Fatalf("read back %q for %q", b, key)
		}
		found := false
		d.List(ctx, key, func(oi ObjectInfo) error { found = found || oi.Key == key; return nil })
		if !found {
			t.Fatalf("List(%q) did not return it", key)
		}
		if err := d.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(base); len(ents) != 1 {
			t.Fatalf("something was created next to the target directory: %v", ents)
		}
	})
}

func TestParsePieceKey(t *testing.T) {
	ds, file, seg, piece, err := ParsePieceKey(PieceKey("D", "f1", 12, 3))
	if err != nil || ds != "D" || file != "f1" || seg != 12 || piece != 3 {
		t.Fatalf("got %q %q %d %d %v", ds, file, seg, piece, err)
	}
	if _, _, seg, piece, err := ParsePieceKey(PieceKey("D", "f1", 123456789, 123)); err != nil || seg != 123456789 || piece != 123 {
		t.Fatalf("wide numbers: %d %d %v", seg, piece, err)
	}
	for _, k := range []string{
		"",
		ManifestKey("D", "f1"),
		HeaderKey("D", "f1"),
		"dozo/v1/D/f1/seg-00000001/p1",    // too little padding
		"dozo/v1/D/f1/seg-0000001/p01",    // too little padding
		"dozo/v1/D/f1/seg-00000001/p001",  // too much padding
		"dozo/v1/D/f1/seg-000000001/p01",  // too much padding
		"dozo/v1/D/f1/seg-+0000001/p01",   // sign
		"dozo/v1/D/f1/seg--0000001/p01",   // sign
		"dozo/v1/D/f1/seg-0000000x/p01",   // not a digit
		"dozo/v1/D/f1/seg-00000001/p01/x", // trailing element
		"dozo/v1/D/f1/seg-00000001/p01/",  // trailing slash
		"dozo/v1/D/seg-00000001/p01",      // no file
		"dozo/v1/D/.f1/seg-00000001/p01",  // bad id
		"dozo/v2/D/f1/seg-00000001/p01",   // other layout
		"dozo/v1/D/f1/../f2/seg-00000001/p01",
		"dozo/v1/D/f1/seg-99999999999999999999/p01", // overflows int
	} {
		if _, _, _, _, err := ParsePieceKey(k); err == nil {
			t.Errorf("accepted %q", k)
		}
	}
}

// FuzzPieceKey checks that ParsePieceKey and PieceKey are inverses: a key
// made from valid parts parses back to them, and a key that parses is
// exactly the key made from what it parsed to.
func FuzzPieceKey(f *testing.F) {
	f.Add("D", "f1", 3, 5, PieceKey("D", "f1", 3, 5))
	f.Add("JGAD000001", "file.x", 123456789, 100, "dozo/v1/D/f1/seg-00000001/p1")
	f.Add("a", "b", 0, 0, "dozo/v1/a/b/seg-+0000000/p00")
	f.Fuzz(func(t *testing.T, ds, file string, seg, piece int, key string) {
		if ValidateID(ds) == nil && ValidateID(file) == nil && seg >= 0 && piece >= 0 {
			k := PieceKey(ds, file, seg, piece)
			gds, gfile, gseg, gpiece, err := ParsePieceKey(k)
			if err != nil || gds != ds || gfile != file || gseg != seg || gpiece != piece {
				t.Fatalf("ParsePieceKey(%q) = %q %q %d %d %v", k, gds, gfile, gseg, gpiece, err)
			}
			if err := ValidateKey(k); err != nil {
				t.Fatalf("made key %q is not valid: %v", k, err)
			}
		}
		if gds, gfile, gseg, gpiece, err := ParsePieceKey(key); err == nil {
			if again := PieceKey(gds, gfile, gseg, gpiece); again != key {
				t.Fatalf("ParsePieceKey(%q) gives parts that make %q", key, again)
			}
		}
	})
}
