package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFetchChecksMD5OnlyWhenAsked: a fetch checks the whole file's SHA-256
// always and its MD5 only with MD5 set; a wrong catalog MD5 therefore
// fails only the fetch that asked for it, and a wrong SHA-256 fails both.
func TestFetchChecksMD5OnlyWhenAsked(t *testing.T) {
	e := newEnv(t)
	path, _ := writeRandom(t, 2*fakePlainSeg+99)
	if _, err := e.upload(t, path); err != nil {
		t.Fatal(err)
	}
	ff := e.fk.files["DS1/reads.fq"]
	for _, c := range []struct {
		md5  bool
		want []string
	}{{false, []string{"sha256"}}, {true, []string{"sha256", "md5"}}} {
		res, err := e.fetch(t, FetchOptions{Output: filepath.Join(t.TempDir(), "out"), MD5: c.md5})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Verified || !slices.Equal(res.Checksums, c.want) {
			t.Errorf("md5=%v: verified %v, checked %v, want %v", c.md5, res.Verified, res.Checksums, c.want)
		}
	}

	goodMD5, goodSHA := ff.MD5, ff.SHA256
	ff.MD5 = strings.Repeat("0", 32)
	if _, err := e.fetch(t, FetchOptions{Output: filepath.Join(t.TempDir(), "out")}); err != nil {
		t.Fatalf("wrong catalog MD5, fetch without --md5: %v", err)
	}
	if _, err := e.fetch(t, FetchOptions{Output: filepath.Join(t.TempDir(), "out"), MD5: true}); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "MD5") {
		t.Fatalf("wrong catalog MD5, fetch with --md5: %v, want an MD5 mismatch", err)
	}
	ff.MD5, ff.SHA256 = goodMD5, strings.Repeat("0", 64)
	if _, err := e.fetch(t, FetchOptions{Output: filepath.Join(t.TempDir(), "out")}); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("wrong catalog SHA-256: %v, want a SHA-256 mismatch", err)
	}
	ff.SHA256 = goodSHA
}

// TestVerifyLocal: a local copy is compared by size and SHA-256 (and MD5
// when asked); a changed byte is a mismatch result, a missing copy or a
// name not in the dataset an error.
func TestVerifyLocal(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, fakePlainSeg+5)
	if _, err := e.upload(t, path); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := VerifyLocal(ctx, e.c, "DS1", "reads.fq", path, true)
	if err != nil || !r.Match || !slices.Equal(r.Checked, []string{"size", "sha256", "md5"}) {
		t.Fatalf("same copy: %+v, %v", r, err)
	}
	data[100] ^= 1
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, data, 0o600)
	if r, err = VerifyLocal(ctx, e.c, "DS1", "reads.fq", bad, false); err != nil || r.Match || !slices.Equal(r.Mismatches, []string{"sha256"}) || r.MD5 != "" {
		t.Fatalf("changed byte: %+v, %v", r, err)
	}
	os.WriteFile(bad, data[:10], 0o600)
	if r, err = VerifyLocal(ctx, e.c, "DS1", "reads.fq", bad, false); err != nil || r.Match || !slices.Equal(r.Mismatches, []string{"size"}) {
		t.Fatalf("short copy: %+v, %v", r, err)
	}
	if _, err = VerifyLocal(ctx, e.c, "DS1", "reads.fq", filepath.Join(t.TempDir(), "gone"), false); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing copy: %v", err)
	}
	if _, err = VerifyLocal(ctx, e.c, "DS1", "other.fq", path, false); err == nil || !strings.Contains(err.Error(), "has no file") {
		t.Fatalf("unknown name: %v", err)
	}
}
