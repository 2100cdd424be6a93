package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/zeebo/blake3"

	"github.com/dozo-vault/dozo/storage"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"65536": 65536, "64MiB": 64 << 20, "1GiB": 1 << 30, "1gib": 1 << 30, "64M": 64 << 20,
		"512KiB": 512 << 10, "1.5GiB": 3 << 29, "500MB": 500e6, "2 TiB": 2 << 40, "0": 0, "10B": 10,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5", "abc", "1XB", "99999999999TiB", "NaN"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestParseRange(t *testing.T) {
	good := map[string]Range{
		"0-0": {0, 1}, "0-65535": {0, 65536}, "100-": {100, -1}, " 5 - 9 ": {5, 5},
	}
	for in, want := range good {
		got, err := ParseRange(in)
		if err != nil || got != want {
			t.Errorf("ParseRange(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5", "-5", "9-5", "a-b", "1-x", "-"} {
		if _, err := ParseRange(in); err == nil {
			t.Errorf("ParseRange(%q) succeeded", in)
		}
	}
	off, n, err := Range{10, -1}.Clamp(100)
	if err != nil || off != 10 || n != 90 {
		t.Errorf("Clamp to end: %d %d %v", off, n, err)
	}
	off, n, err = Range{90, 50}.Clamp(100)
	if err != nil || off != 90 || n != 10 {
		t.Errorf("Clamp past end: %d %d %v", off, n, err)
	}
	if _, _, err := (Range{100, 1}).Clamp(100); err == nil {
		t.Error("Clamp beyond the end succeeded")
	}
}

func TestNames(t *testing.T) {
	if got := DefaultName("/data/run1/sample 1.cram"); got != "sample 1.cram" {
		t.Errorf("DefaultName = %q", got)
	}
	if got := DefaultName("reads.fq.gz/"); got != "reads.fq.gz" {
		t.Errorf("DefaultName with slash = %q", got)
	}
	for _, ok := range []string{"a", "NA12878.final.cram", "sample 1.bam", "試料.vcf.gz"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a\nb", "a\x00b", "\xff", strings.Repeat("x", 256), "a\u200bb"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) succeeded", bad)
		}
	}
	ds, name, err := ParseFileRef("JGAD000001/sample1.cram")
	if err != nil || ds != "JGAD000001" || name != "sample1.cram" {
		t.Errorf("ParseFileRef = %q %q %v", ds, name, err)
	}
	for _, bad := range []string{"JGAD000001", "/x", "JGAD/", "../x/y", "a b/c", "d/e/f"} {
		if _, _, err := ParseFileRef(bad); err == nil {
			t.Errorf("ParseFileRef(%q) succeeded", bad)
		}
	}
	if _, err := ParseDate("2026-02-30"); err == nil {
		t.Error("ParseDate accepted Feb 30")
	}
	if _, err := ParseDate("2026-12-31"); err != nil {
		t.Error(err)
	}
}

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestConfigDirPermissions(t *testing.T) {
	base := t.TempDir()
	p := filepath.Join(base, "new", "dozo")
	d, err := OpenDir(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := perm(t, p); m != 0o700 {
		t.Errorf("new dir mode %v", m)
	}
	// An existing, too-open directory is tightened.
	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o755)
	os.Chmod(loose, 0o755)
	if _, err := OpenDir(loose); err != nil {
		t.Fatal(err)
	}
	if m := perm(t, loose); m != 0o700 {
		t.Errorf("tightened dir mode %v", m)
	}

	if err := d.SaveLogin("s.secret", Login{Username: "alice", VaultAddr: "http://v"}); err != nil {
		t.Fatal(err)
	}
	id, err := d.Keygen(true, false)
	if err != nil {
		t.Fatal(err)
	}
	j := &Journal{Version: JournalVersion, path: d.JournalPath("b", "ds", "n", "/p")}
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(p, tokenFile), filepath.Join(p, loginFile), d.IdentityPath(), j.path} {
		if m := perm(t, f); m != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, m)
		}
	}
	if m := perm(t, filepath.Dir(j.path)); m != 0o700 {
		t.Errorf("journal dir mode %v", m)
	}
	tok, err := d.Token()
	if err != nil || tok != "s.secret" {
		t.Errorf("Token = %q, %v", tok, err)
	}
	if l := d.Login(); l.Username != "alice" {
		t.Errorf("Login = %+v", l)
	}
	// A secret others can read is refused, not used.
	os.Chmod(filepath.Join(p, tokenFile), 0o644)
	if _, err := d.Token(); err == nil || !strings.Contains(Format(err, false), "chmod 600") {
		t.Errorf("too-open token accepted: %v", err)
	}
	got, err := d.Identity()
	if err != nil || got.Public != id.Public {
		t.Errorf("Identity = %v, %v", got, err)
	}
	if had, err := d.Logout(); err != nil || !had {
		t.Errorf("Logout = %v %v", had, err)
	}
	if _, err := d.Token(); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("after logout: %v", err)
	}
}

func TestKeygen(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	if _, err := d.Identity(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("no identity yet: %v", err)
	}
	id, err := d.Keygen(false, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id.Public, "age1pq1") {
		t.Errorf("default key is not hybrid: %.20s", id.Public)
	}
	if _, err := d.Keygen(true, false); err == nil || Hint(err) == "" {
		t.Errorf("keygen overwrote an identity: %v", err)
	}
	again, _ := d.Identity()
	if again.Public != id.Public {
		t.Error("identity changed after refused keygen")
	}
	c, err := d.Keygen(true, true)
	if err != nil || !strings.HasPrefix(c.Public, "age1") || strings.HasPrefix(c.Public, "age1pq1") {
		t.Fatalf("classic keygen --force: %v %.20s", err, c.Public)
	}
}

func TestJournalRoundTrip(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	id, err := d.Keygen(false, false)
	if err != nil {
		t.Fatal(err)
	}
	key, nonce := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	sealed, err := SealKey(id.Recipient, key, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(sealed), key) {
		t.Fatal("key visible in sealed form")
	}
	jp := d.JournalPath("https://b", "DS1", "x.bam", "/data/x.bam")
	if jp == d.JournalPath("https://b", "DS1", "y.bam", "/data/x.bam") {
		t.Error("journal path ignores the name")
	}
	j := &Journal{Version: JournalVersion, Broker: "https://b", Dataset: "DS1", Name: "x.bam", Path: "/data/x.bam",
		UploadID: "u1", FileID: "f1", SealedKey: sealed, Recipient: id.Public,
		Source: SourceInfo{Size: 10, MTimeNS: 5, Inode: 7, Device: 1}, PlainSegmentSize: 1 << 20,
		Segments: []SegmentHash{{0, "aa"}}, CreatedAt: time.Now(), path: jp}
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := LoadJournal(jp)
	if err != nil || got == nil {
		t.Fatal(err)
	}
	if got.UploadID != "u1" || got.Source != j.Source || len(got.Segments) != 1 {
		t.Errorf("round trip: %+v", got)
	}
	k2, n2, err := got.OpenKey(id)
	if err != nil || !bytes.Equal(k2, key) || !bytes.Equal(n2, nonce) {
		t.Errorf("OpenKey: %v", err)
	}
	other, _ := age.GenerateX25519Identity()
	if _, _, err := got.OpenKey(other); err == nil {
		t.Error("another identity opened the sealed key")
	}
	if err := got.Remove(); err != nil {
		t.Fatal(err)
	}
	if j, err := LoadJournal(jp); j != nil || err != nil {
		t.Errorf("after Remove: %v %v", j, err)
	}
}

func TestResumeDecision(t *testing.T) {
	src := SourceInfo{Size: 3 << 20, MTimeNS: 100, Inode: 42, Device: 1}
	j := &Journal{Source: src, PlainSegmentSize: 1 << 20, Segments: []SegmentHash{{0, "a"}, {1, "b"}, {2, "c"}}}
	committed := []storage.SegmentMeta{{Index: 1}, {Index: 0}}
	start, err := ResumePoint(j, src, 1<<20, committed)
	if err != nil || start != 2 {
		t.Fatalf("unchanged source: %d %v", start, err)
	}
	changed := map[string]SourceInfo{
		"size":  {Size: 3<<20 + 1, MTimeNS: 100, Inode: 42, Device: 1},
		"mtime": {Size: 3 << 20, MTimeNS: 101, Inode: 42, Device: 1},
		"inode": {Size: 3 << 20, MTimeNS: 100, Inode: 43, Device: 1},
	}
	for what, now := range changed {
		if _, err := ResumePoint(j, now, 1<<20, committed); !errors.Is(err, ErrSourceChanged) {
			t.Errorf("%s changed: %v", what, err)
		}
	}
	if _, err := ResumePoint(j, src, 2<<20, committed); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("segment size changed: %v", err)
	}
	short := &Journal{Source: src, PlainSegmentSize: 1 << 20, Segments: []SegmentHash{{0, "a"}}}
	if _, err := ResumePoint(short, src, 1<<20, committed); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("journal lacking a committed segment's hash: %v", err)
	}

	// The content check: same size and mtime, different bytes.
	data := make([]byte, 3<<20)
	rand.Read(data)
	var segs []SegmentHash
	for i := range 3 {
		s := blake3.Sum256(data[i<<20 : (i+1)<<20])
		segs = append(segs, SegmentHash{i, hex.EncodeToString(s[:])})
	}
	j.Segments = segs
	ph, err := VerifyPrefix(bytes.NewReader(data), j, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	whole := sha256.Sum256(data[:2<<20])
	if !bytes.Equal(ph.SHA256.Sum(nil), whole[:]) {
		t.Error("prefix hash not rebuilt")
	}
	data[(1<<20)+5] ^= 1
	if _, err := VerifyPrefix(bytes.NewReader(data), j, 2, nil); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("changed content accepted: %v", err)
	}
	if _, err := VerifyPrefix(bytes.NewReader(data[:1<<20]), j, 2, nil); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("truncated content accepted: %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	ae := &APIError{Method: "POST", Path: "/v1/datasets/X/files/a/fetch", Status: 403}
	ae.Body.Error = "no active grant on X"
	ae.Body.Hint = "ask the custodian for a grant"
	ae.Body.RequestID = "r-123"
	err := &Error{Op: "fetching X/a", Err: ae}
	if got, want := Format(err, false), "fetching X/a: no active grant on X (ask the custodian for a grant)"; got != want {
		t.Errorf("Format = %q\nwant     %q", got, want)
	}
	dbg := Format(err, true)
	for _, s := range []string{"HTTP 403", "r-123", "/v1/datasets/X/files/a/fetch"} {
		if !strings.Contains(dbg, s) {
			t.Errorf("debug format %q lacks %q", dbg, s)
		}
	}
	ae.Body.Hint = ""
	ae.Status = 401
	if h := Hint(err); !strings.Contains(h, "dozo login") {
		t.Errorf("401 hint %q", h)
	}
	if h := Hint(&Error{Op: "x", Err: ErrNotLoggedIn}); !strings.Contains(h, "dozo login") {
		t.Errorf("not logged in hint %q", h)
	}
	if h := Hint(&Error{Op: "x", Err: ErrNoIdentity}); !strings.Contains(h, "dozo keygen") {
		t.Errorf("no identity hint %q", h)
	}
	if _, err := New(Options{}); err == nil || !strings.Contains(Format(err, false), "DOZO_BROKER") {
		t.Errorf("no broker: %v", err)
	}
	// Refused connection to dozod.
	c, _ := New(Options{Broker: "http://127.0.0.1:1", Token: "s.tok", RetryFor: -1})
	_, werr := c.WhoAmI(context.Background())
	if f := Format(werr, true); !strings.Contains(f, "dozod") || strings.Contains(f, "s.tok") {
		t.Errorf("transport error: %q", f)
	}
	if got := redact("http://s3:9000/b/dozo/v1/x?X-Amz-Signature=abc&X-Amz-Credential=k"); got != "http://s3:9000" {
		t.Errorf("redact = %q", got)
	}
}

// --- upload and fetch against the in-process fake dozod ---

type env struct {
	fk  *fakeDozod
	c   *Client
	dir *Dir
	id  *Identity
}

func newEnv(t *testing.T) *env {
	fk := newFakeDozod(t)
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.Keygen(false, false)
	if err != nil {
		t.Fatal(err)
	}
	c := fk.client(t)
	if _, err := c.SetRecipient(context.Background(), id.Public); err != nil {
		t.Fatal(err)
	}
	return &env{fk, c, d, id}
}

func writeRandom(t *testing.T, n int) (string, []byte) {
	data := make([]byte, n)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "reads.fq")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func (e *env) upload(t *testing.T, path string) (*UploadResult, error) {
	return e.c.UploadFile(context.Background(), UploadOptions{Dataset: "DS1", Path: path, Dir: e.dir, Identity: e.id})
}

func (e *env) fetch(t *testing.T, o FetchOptions) (*FetchResult, error) {
	o.Dataset, o.Identity = "DS1", e.id
	if o.Name == "" {
		o.Name = "reads.fq"
	}
	return e.c.FetchFile(context.Background(), o)
}

func TestUploadFetch(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 5*fakePlainSeg+12345)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(Format(err, true))
	}
	sum := sha256.Sum256(data)
	if res.File.SHA256 != hex.EncodeToString(sum[:]) || res.Resumed || res.Segments != 6 {
		t.Fatalf("upload result %+v", res)
	}
	matches, _ := filepath.Glob(filepath.Join(e.dir.Path, journalDir, "*.json"))
	if len(matches) != 0 {
		t.Errorf("journal left after completion: %v", matches)
	}
	out := filepath.Join(t.TempDir(), "out.fq")
	fr, err := e.fetch(t, FetchOptions{Output: out})
	if err != nil {
		t.Fatal(Format(err, true))
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) || !fr.Verified {
		t.Fatalf("fetched file differs (verified=%v)", fr.Verified)
	}
	if m := perm(t, out); m != 0o600 {
		t.Errorf("fetched file mode %v", m)
	}
	if _, err := e.fetch(t, FetchOptions{Output: out}); err == nil {
		t.Error("fetch overwrote an existing file without Force")
	}

	// Standard output.
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("stdout fetch: %v", err)
	}

	// A range across a segment boundary fetches only its segments.
	buf.Reset()
	start := int64(2*fakePlainSeg - 100)
	fr, err = e.fetch(t, FetchOptions{Output: "-", Stdout: &buf, Range: &Range{start, 300}})
	if err != nil || !bytes.Equal(buf.Bytes(), data[start:start+300]) {
		t.Fatalf("range fetch: %v", err)
	}
	if fr.Stats.SegmentsRead != 2 {
		t.Errorf("range read %d segments, want 2", fr.Stats.SegmentsRead)
	}
	buf.Reset()
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf, Range: &Range{int64(len(data)) - 10, -1}}); err != nil || !bytes.Equal(buf.Bytes(), data[len(data)-10:]) {
		t.Fatalf("tail range: %v", err)
	}

	// Raw: a standard age file for the user's identity.
	rawPath := filepath.Join(t.TempDir(), "out.age")
	if _, err := e.fetch(t, FetchOptions{Output: rawPath, Raw: true}); err != nil {
		t.Fatal(Format(err, true))
	}
	rf, _ := os.Open(rawPath)
	defer rf.Close()
	dec, err := age.Decrypt(rf, e.id)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(dec)
	if err != nil || !bytes.Equal(plain, data) {
		t.Fatalf("raw file does not decrypt to the data: %v", err)
	}

	// Degraded storage: lose a piece; the data still comes back, and the
	// user is told.
	for _, tg := range e.fk.targets {
		tg.Delete(context.Background(), storage.PieceKey("DS1", res.File.ID, 1, 0))
	}
	var degraded int
	buf.Reset()
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf, OnDegraded: func(int, []storage.PieceFailure) { degraded++ }}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("degraded fetch: %v", err)
	}
	if degraded == 0 {
		t.Error("OnDegraded not called")
	}
}

func TestUploadEmptyAndExactSegment(t *testing.T) {
	e := newEnv(t)
	for i, n := range []int{0, fakePlainSeg, 2 * fakePlainSeg} {
		path, data := writeRandom(t, n)
		name := []string{"empty", "one", "two"}[i]
		res, err := e.c.UploadFile(context.Background(), UploadOptions{Dataset: "DS1", Path: path, Name: name, Dir: e.dir, Identity: e.id})
		if err != nil {
			t.Fatalf("%d bytes: %s", n, Format(err, true))
		}
		var buf bytes.Buffer
		if _, err := e.fetch(t, FetchOptions{Name: name, Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("%d bytes: fetch %v", n, err)
		}
		_ = res
	}
}

func TestUploadResume(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 6*fakePlainSeg+777)
	e.fk.failPutAfter.Store(6*3 + 2) // three segments, then failure
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("upload did not fail")
	} else if !strings.Contains(Format(err, false), "resume") {
		t.Errorf("failure does not mention resuming: %s", Format(err, false))
	}
	e.fk.failPutAfter.Store(0)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(Format(err, true))
	}
	if !res.Resumed || res.StartSegment != 3 {
		t.Fatalf("did not resume at segment 3: %+v", res)
	}
	sum := sha256.Sum256(data)
	if res.File.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatal("checksum after resume does not cover the whole file")
	}
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch after resumed upload: %v", err)
	}
}

func TestUploadChangedSourceStartsFresh(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 4*fakePlainSeg+1)
	fi, _ := os.Stat(path)
	e.fk.failPutAfter.Store(6*2 + 1)
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("upload did not fail")
	}
	first := e.fk.uploads["up1"]
	// Same size and mtime, different content in a committed segment: only
	// the re-hash can tell.
	data[10] ^= 0xff
	os.WriteFile(path, data, 0o644)
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	e.fk.failPutAfter.Store(0)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(Format(err, true))
	}
	if res.Resumed || res.UploadID == "up1" {
		t.Fatalf("resumed on changed content: %+v", res)
	}
	if len(e.fk.aborted) != 1 || e.fk.aborted[0] != "up1" {
		t.Errorf("old session not aborted: %v", e.fk.aborted)
	}
	second := e.fk.uploads[res.UploadID]
	if bytes.Equal(first.key, second.key) || bytes.Equal(first.nonce, second.nonce) {
		t.Fatal("file key or nonce reused on changed plaintext")
	}
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch: %v", err)
	}
}

func TestFetchResume(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 5*fakePlainSeg+99)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.fq")
	// An interrupted fetch: 2.5 segments on disk, 2 recorded as verified.
	verified := int64(2*fakePlainSeg + fakePlainSeg/2)
	os.WriteFile(out+".partial", data[:verified], 0o600)
	writeSidecar(out+".partial.dozo", sidecar{Version: 1, FileID: res.File.ID, SHA256: res.File.SHA256, Size: res.File.Size, Verified: verified})
	fr, err := e.fetch(t, FetchOptions{Output: out})
	if err != nil {
		t.Fatal(Format(err, true))
	}
	if !fr.Resumed || fr.From != 2*fakePlainSeg {
		t.Errorf("resumed=%v from %d, want from %d", fr.Resumed, fr.From, 2*fakePlainSeg)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatal("resumed fetch differs")
	}
	for _, p := range []string{out + ".partial", out + ".partial.dozo"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}

	// A corrupted kept prefix is caught by the whole-file checksum, and
	// nothing appears at the output path.
	out2 := filepath.Join(t.TempDir(), "out2.fq")
	bad := bytes.Clone(data[:verified])
	bad[7] ^= 1
	os.WriteFile(out2+".partial", bad, 0o600)
	writeSidecar(out2+".partial.dozo", sidecar{Version: 1, FileID: res.File.ID, SHA256: res.File.SHA256, Size: res.File.Size, Verified: verified})
	_, err = e.fetch(t, FetchOptions{Output: out2})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt prefix: %v", err)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Error("output exists after a failed fetch")
	}
	if _, err := os.Stat(out2 + ".partial"); err == nil {
		t.Error("bad partial kept for a later resume")
	}
	// The next run starts over and succeeds.
	if _, err := e.fetch(t, FetchOptions{Output: out2}); err != nil {
		t.Fatal(err)
	}
}

func TestPresignedURLsNotInErrors(t *testing.T) {
	e := newEnv(t)
	path, _ := writeRandom(t, 1000)
	e.fk.failPutAfter.Store(-1)
	e.fk.failPutAfter.Store(0)
	e.fk.store.Close() // storage unreachable
	_, err := e.upload(t, path)
	if err == nil {
		t.Fatal("upload to closed storage succeeded")
	}
	if f := Format(err, true); strings.Contains(f, "sig=") || strings.Contains(f, "secret") || strings.Contains(f, "s.test-token") {
		t.Errorf("secret in error: %s", f)
	}
}

func TestCAPinning(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok","version":"t"}`))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	pinned, err := New(Options{Broker: srv.URL, CACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := pinned.Health(context.Background()); err != nil || h.Status != "ok" {
		t.Fatalf("pinned CA: %v", err)
	}
	// Without the CA the broker's certificate is not trusted, and the user
	// is told how to fix it.
	plain, _ := New(Options{Broker: srv.URL})
	_, err = plain.Health(context.Background())
	if err == nil || !strings.Contains(Hint(err), "--ca-cert") {
		t.Fatalf("unpinned: %v (hint %q)", err, Hint(err))
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a cert"), 0o600)
	if _, err := New(Options{Broker: srv.URL, CACert: bad}); err == nil {
		t.Fatal("accepted a CA file without certificates")
	}
}

func TestLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockFile(p); !errors.Is(err, errLocked) {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	unlock2, err := lockFile(p)
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

// TestUploadCompletedButAnswerLost: dozod completes the upload but its
// answer is lost (a 502 from a proxy). The client repeats the complete,
// which returns the same file: one run succeeds. With retries off the run
// fails, and the next one resumes and finds the upload complete.
func TestUploadCompletedButAnswerLost(t *testing.T) {
	e := newEnv(t)
	e.c.retryFirst = time.Millisecond
	path, data := writeRandom(t, 2*fakePlainSeg+5)
	sum := sha256.Sum256(data)
	e.fk.loseComplete.Store(true)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(Format(err, true))
	}
	if e.fk.loseComplete.Load() || res.File.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("with retries: %+v", res)
	}

	e = newEnv(t)
	e.c.retryFor = -1
	e.fk.loseComplete.Store(true)
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("lost answer not reported")
	}
	res, err = e.upload(t, path)
	if err != nil {
		t.Fatal(Format(err, true))
	}
	if !res.Resumed || res.UploadID != "up1" || res.File.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("second run: %+v", res)
	}
	if m, _ := filepath.Glob(filepath.Join(e.dir.Path, journalDir, "*.json")); len(m) != 0 {
		t.Errorf("journal left: %v", m)
	}
}

// The token goes with every call: plain http only to a loopback broker.
func TestNewRefusesPlainHTTPToRemoteBroker(t *testing.T) {
	for _, b := range []string{"http://dozo.example.org:8443", "http://10.0.0.5:8443"} {
		if _, err := New(Options{Broker: b}); err == nil {
			t.Errorf("%s accepted", b)
		}
	}
	for _, b := range []string{"http://127.0.0.1:8443", "http://localhost:8443", "http://[::1]:8443", "https://dozo.example.org:8443"} {
		if _, err := New(Options{Broker: b}); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
}
