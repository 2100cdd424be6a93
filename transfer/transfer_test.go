package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/storage"
)

// Journals, which hold sealed file keys, are 0600 in a 0700 directory.
func TestJournalPermissions(t *testing.T) {
	d, err := client.OpenDir(filepath.Join(t.TempDir(), "new", "dozo"))
	if err != nil {
		t.Fatal(err)
	}
	j := &Journal{Version: JournalVersion, path: JournalPath(d, "b", "ds", "n", "/p")}
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	if m := perm(t, j.path); m != 0o600 {
		t.Errorf("journal mode %v, want 0600", m)
	}
	if m := perm(t, filepath.Dir(j.path)); m != 0o700 {
		t.Errorf("journal dir mode %v", m)
	}
}

// A presigned URL in an error keeps its host only: the query is a credential.
func TestRedactPresignedURL(t *testing.T) {
	if got := redact("http://s3:9000/b/dozo/v1/x?X-Amz-Signature=abc&X-Amz-Credential=k"); got != "http://s3:9000" {
		t.Errorf("redact = %q", got)
	}
}

func TestJournalRoundTrip(t *testing.T) {
	d, _ := client.OpenDir(t.TempDir())
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
	jp := JournalPath(d, "https://b", "DS1", "x.bam", "/data/x.bam")
	if jp == JournalPath(d, "https://b", "DS1", "y.bam", "/data/x.bam") {
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
		s := sha256.Sum256(data[:(i+1)<<20])
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

// --- upload and fetch against the in-process fake dozod ---

type env struct {
	fk  *fakeDozod
	c   *client.Client
	dir *client.Dir
	id  *client.Identity
}

func newEnv(t *testing.T) *env {
	fk := newFakeDozod(t)
	d, err := client.OpenDir(t.TempDir())
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
	return UploadFile(context.Background(), e.c, UploadOptions{Dataset: "DS1", Path: path, Dir: e.dir, Identity: e.id})
}

func (e *env) fetch(t *testing.T, o FetchOptions) (*FetchResult, error) {
	o.Dataset, o.Identity = "DS1", e.id
	if o.Name == "" {
		o.Name = "reads.fq"
	}
	return FetchFile(context.Background(), e.c, o)
}

func TestUploadFetch(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 5*fakePlainSeg+12345)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if res.File.SHA256 != hex.EncodeToString(sum[:]) || res.Resumed || res.Segments != 6 {
		t.Fatalf("upload result %+v", res)
	}
	matches, _ := filepath.Glob(filepath.Join(e.dir.JournalDir(), "*.json"))
	if len(matches) != 0 {
		t.Errorf("journal left after completion: %v", matches)
	}
	out := filepath.Join(t.TempDir(), "out.fq")
	fr, err := e.fetch(t, FetchOptions{Output: out})
	if err != nil {
		t.Fatal(err)
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
		t.Fatal(err)
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
		res, err := UploadFile(context.Background(), e.c, UploadOptions{Dataset: "DS1", Path: path, Name: name, Dir: e.dir, Identity: e.id})
		if err != nil {
			t.Fatalf("%d bytes: %s", n, err)
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
	} else if !strings.Contains(message(err), "resume") {
		t.Errorf("failure does not mention resuming: %s", message(err))
	}
	e.fk.failPutAfter.Store(0)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
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
		t.Fatal(err)
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
		t.Fatal(err)
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
	f := client.Describe(err)
	said := f.What + f.Hint
	if f.API != nil {
		said += f.API.Path + f.API.Body.Error + f.API.Body.Hint
	}
	if f.Transport != nil {
		said += f.Transport.Path + f.Transport.Err.Error()
	}
	if strings.Contains(said, "sig=") || strings.Contains(said, "secret") || strings.Contains(said, "s.test-token") {
		t.Errorf("secret in error: %s", said)
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
	e.c = e.fk.client(t, func(o *client.Options) { o.RetryBackoff = time.Millisecond })
	path, data := writeRandom(t, 2*fakePlainSeg+5)
	sum := sha256.Sum256(data)
	e.fk.loseComplete.Store(true)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if e.fk.loseComplete.Load() || res.File.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("with retries: %+v", res)
	}

	e = newEnv(t)
	e.c = e.fk.client(t, func(o *client.Options) { o.RetryFor = -1 })
	e.fk.loseComplete.Store(true)
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("lost answer not reported")
	}
	res, err = e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.UploadID != "up1" || res.File.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("second run: %+v", res)
	}
	if m, _ := filepath.Glob(filepath.Join(e.dir.JournalDir(), "*.json")); len(m) != 0 {
		t.Errorf("journal left: %v", m)
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

// TestSmallFileCalls pins the requests a one-segment file costs, which
// bound a batch of small files: to dozod, for an upload, the begin (which
// brings the PUT URLs) and the complete (which carries the segment's
// commit); for a fetch, the header with the first presign batch (dozo
// then reports the fetch for the audit log, a second); to storage, one
// PUT per piece and a GET for each of the K pieces a healthy read needs.
func TestSmallFileCalls(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var calls []string
	h := e.fk.api.Config.Handler
	e.fk.api.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path)
		mu.Unlock()
		h.ServeHTTP(w, r)
	})
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		c := calls
		calls = nil
		return c
	}
	path, data := writeRandom(t, fakePlainSeg/2)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if c := taken(); len(c) != 2 || e.fk.puts.Load() != 6 || e.fk.commits.Load() != 1 {
		t.Errorf("upload of one segment: %d PUTs and %d calls to dozod (%d commits with the complete), want 6, 2 and 1: %q",
			e.fk.puts.Load(), len(c), e.fk.commits.Load(), c)
	}
	out := filepath.Join(t.TempDir(), "out.fq")
	if _, err := e.fetch(t, FetchOptions{Output: out, Dataset: "DS1", Name: res.File.Name}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("fetched file differs")
	}
	if c := taken(); len(c) != 1 || e.fk.gets.Load() != 4 {
		t.Errorf("fetch of one segment: %d GETs and %d calls to dozod, want 4 and 1: %q", e.fk.gets.Load(), len(c), c)
	}
}

// TestFetchReusesStorageConnections fetches ten one-segment files one
// after another from storage that answers ranged GETs without a
// Content-Length (chunked, as the fake does): each piece's connection
// goes back to the pool, so the fetches open at most the K a segment
// reads at once, not one per piece.
func TestFetchReusesStorageConnections(t *testing.T) {
	e := newEnv(t)
	path, _ := writeRandom(t, fakePlainSeg/2)
	for i := range 10 {
		if _, err := UploadFile(context.Background(), e.c, UploadOptions{Dataset: "DS1", Path: path, Name: fmt.Sprintf("f%d.fq", i), Dir: e.dir, Identity: e.id}); err != nil {
			t.Fatal(err)
		}
	}
	before := e.fk.storeConns.Load()
	for i := range 10 {
		if _, err := e.fetch(t, FetchOptions{Output: filepath.Join(t.TempDir(), "out.fq"), Name: fmt.Sprintf("f%d.fq", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fk.storeConns.Load() - before; n > 4 {
		t.Errorf("ten fetches of 4 pieces opened %d connections to storage; want the pooled ones reused", n)
	}
}
