package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// rewriteInPlace changes data's byte at off in the file at path, keeping
// its size, mtime and inode: a change only the content check can see.
func rewriteInPlace(t *testing.T, path string, data []byte, off int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ino := inode(t, path)
	data[off] ^= 0xff
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[off:off+1], int64(off)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if inode(t, path) != ino {
		t.Fatal("the rewrite changed the inode")
	}
}

// interruptedUpload writes a random file of size bytes and uploads it
// until storage refuses the third piece of segment 3: segments 0-2 are
// committed, some pieces of segment 3 stored.
func (e *env) interruptedUpload(t *testing.T, size int) (path string, data []byte, first *fakeUpload) {
	t.Helper()
	path, data = writeRandom(t, size)
	e.fk.failPutAfter.Store(6*3 + 2)
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("upload did not fail")
	}
	e.fk.failPutAfter.Store(0)
	return path, data, e.fk.uploads["up1"]
}

// fetchIs checks that the stored file reads back as data.
func (e *env) fetchIs(t *testing.T, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch: %v", err)
	}
}

// A byte of a segment the first run committed changes between runs (size,
// mtime and inode as before): the rerun must start over under a new key,
// and the first run's pieces are never rewritten with other ciphertext.
func TestResumeStartsOverOnChangedCommittedSegment(t *testing.T) {
	e := newEnv(t)
	path, data, first := e.interruptedUpload(t, 6*fakePlainSeg+777)
	if len(first.Committed) != 3 {
		t.Fatalf("first run committed %d segments, want 3", len(first.Committed))
	}
	before := e.fk.storedPieces(t, "DS1", first.FileID)
	rewriteInPlace(t, path, data, fakePlainSeg+12345) // in segment 1
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.UploadID == first.ID || bytes.Equal(e.fk.uploads[res.UploadID].key, first.key) {
		t.Fatalf("resumed under the first run's key after a sent segment changed: %+v", res)
	}
	if len(e.fk.aborted) != 1 || e.fk.aborted[0] != first.ID {
		t.Errorf("aborted sessions %v, want [%s]", e.fk.aborted, first.ID)
	}
	after := e.fk.storedPieces(t, "DS1", first.FileID)
	for k, sum := range before {
		if got, ok := after[k]; ok && got != sum {
			t.Errorf("%s: rewritten under the first run's key and chunk counters", k)
		}
	}
	want := sha256.Sum256(data)
	if res.File.SHA256 != hex.EncodeToString(want[:]) {
		t.Errorf("SHA-256 %s, want the changed file's", res.File.SHA256)
	}
	e.fetchIs(t, data)
}

// A byte changes in the part of the file the first run never read (no
// hash recorded, no ciphertext made): nothing of it is on storage, so the
// rerun resumes under the same key and stores the file as it is now.
func TestResumeTakesChangedUnsentPart(t *testing.T) {
	e := newEnv(t)
	const segs = 40
	path, data, first := e.interruptedUpload(t, segs*fakePlainSeg+99)
	j, err := LoadJournal(JournalPath(e.dir, e.c.Broker(), "DS1", "reads.fq", path))
	if err != nil || j == nil {
		t.Fatalf("journal: %v", err)
	}
	// The reader runs ahead of the PUTs by a bounded number of blocks.
	if last := j.Segments[len(j.Segments)-1].Index; last >= segs {
		t.Fatalf("the first run recorded segment %d: the whole file was read", last)
	}
	rewriteInPlace(t, path, data, len(data)-1) // in the last segment
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.UploadID != first.ID || res.StartSegment != 3 {
		t.Fatalf("not resumed at segment 3: %+v", res)
	}
	want := sha256.Sum256(data)
	if res.File.SHA256 != hex.EncodeToString(want[:]) {
		t.Errorf("SHA-256 %s, want the changed file's", res.File.SHA256)
	}
	e.fetchIs(t, data)
}

// A journal written by the previous version (per-segment BLAKE3 hashes)
// is not read: LoadJournal says so plainly, and the upload starts over
// with a new key after aborting the old session, which holds the name.
func TestVersion3JournalStartsOver(t *testing.T) {
	e := newEnv(t)
	path, data, _ := e.interruptedUpload(t, 6*fakePlainSeg+777)
	jp := JournalPath(e.dir, e.c.Broker(), "DS1", "reads.fq", path)
	j, err := LoadJournal(jp)
	if err != nil || j == nil {
		t.Fatalf("journal: %v", err)
	}
	// The journal as version 3 wrote it.
	var v3 map[string]any
	b, _ := os.ReadFile(jp)
	if err := json.Unmarshal(b, &v3); err != nil {
		t.Fatal(err)
	}
	v3["version"] = 3
	var segs []map[string]any
	for _, s := range j.Segments {
		segs = append(segs, map[string]any{"index": s.Index, "blake3": strings.Repeat("ab", 32)})
	}
	v3["segments"] = segs
	b, _ = json.Marshal(v3)
	if err := os.WriteFile(jp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadJournal(jp)
	if ve := (*JournalVersionError)(nil); !errors.As(err, &ve) || ve.UploadID != "up1" ||
		!strings.Contains(err.Error(), "older dozo (format 3") {
		t.Fatalf("loading a version 3 journal: %v", err)
	}

	var notices []string
	res, err := UploadFile(t.Context(), e.c, UploadOptions{Dataset: "DS1", Path: path, Dir: e.dir, Identity: e.id,
		Notice: func(f string, a ...any) { notices = append(notices, f) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.UploadID == "up1" || len(e.fk.aborted) != 1 || e.fk.aborted[0] != "up1" {
		t.Fatalf("version 3 journal: %+v, aborted %v", res, e.fk.aborted)
	}
	if len(notices) == 0 || !strings.Contains(notices[0], "starting over") {
		t.Errorf("notices %q, want one saying the upload starts over", notices)
	}
	e.fetchIs(t, data)
}

// The journal a real upload leaves records, per segment, the SHA-256 of
// the plaintext from byte 0 to the segment's end: no other hash, and no
// plaintext.
func TestJournalRecordsPrefixSHA256(t *testing.T) {
	e := newEnv(t)
	path, data, _ := e.interruptedUpload(t, 6*fakePlainSeg+777)
	j, err := LoadJournal(JournalPath(e.dir, e.c.Broker(), "DS1", "reads.fq", path))
	if err != nil || j == nil || len(j.Segments) < 4 {
		t.Fatalf("journal: %+v, %v", j, err)
	}
	for k, s := range j.Segments {
		end := min(int64(s.Index+1)*j.PlainSegmentSize, int64(len(data)))
		want := sha256.Sum256(data[:end])
		if s.Index != k || s.PrefixSHA256 != hex.EncodeToString(want[:]) {
			t.Errorf("segment %d: %+v, want index %d and SHA-256 of bytes [0, %d)", k, s, k, end)
		}
	}
}

// parseJournal refuses what the resume logic could trip on.
func TestParseJournalRefuses(t *testing.T) {
	good := Journal{Version: JournalVersion, Source: SourceInfo{Size: 3 << 20}, PlainSegmentSize: 1 << 20,
		Segments: []SegmentHash{{0, "a"}, {2, "c"}}, CreatedAt: time.Unix(0, 0).UTC()}
	for what, mutate := range map[string]func(*Journal){
		"":                   func(*Journal) {},
		"index past the end": func(j *Journal) { j.Segments[1].Index = 3 },
		"negative index":     func(j *Journal) { j.Segments[0].Index = -1 },
		"repeated index":     func(j *Journal) { j.Segments[1].Index = 0 },
		"out of order":       func(j *Journal) { j.Segments[0].Index, j.Segments[1].Index = 2, 0 },
		"zero segment size":  func(j *Journal) { j.PlainSegmentSize = 0 },
		"negative size":      func(j *Journal) { j.Source.Size = -1 },
		"other version":      func(j *Journal) { j.Version = 3 },
	} {
		j := good
		j.Segments = append([]SegmentHash(nil), good.Segments...)
		mutate(&j)
		b, _ := json.Marshal(&j)
		_, err := parseJournal(b)
		if (err == nil) != (what == "") {
			t.Errorf("%q: %v", what, err)
		}
	}
}

// FuzzParseJournal: parseJournal never panics, and what it accepts is a
// journal the resume logic can rely on (indices inside the file, each
// once, in order) that survives a save and a parse unchanged.
func FuzzParseJournal(f *testing.F) {
	seed := Journal{Version: JournalVersion, Dataset: "DS1", Name: "x.bam", Source: SourceInfo{Size: 5<<20 + 1, MTimeNS: 1},
		PlainSegmentSize: 1 << 20, Segments: []SegmentHash{{0, strings.Repeat("0", 64)}, {1, "ff"}}}
	b, _ := json.Marshal(&seed)
	f.Add(b)
	f.Add([]byte(`{"version":4,"plain_segment_size":1,"source":{"size":0},"segments":[{"index":0}]}`))
	f.Add([]byte(`{"version":4,"plain_segment_size":9223372036854775807,"source":{"size":9223372036854775807},"segments":[{"index":1}]}`))
	f.Add([]byte(`{"version":3,"segments":[{"index":0,"blake3":"00"}]}`))
	f.Add([]byte(`{"version":4,"plain_segment_size":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := parseJournal(b)
		if err != nil {
			return
		}
		n := plainSegments(j.Source.Size, j.PlainSegmentSize)
		if j.Version != JournalVersion || j.PlainSegmentSize <= 0 || j.Source.Size < 0 || n < 1 {
			t.Fatalf("accepted %+v", j)
		}
		for k, s := range j.Segments {
			if s.Index < 0 || int64(s.Index) >= n || (k > 0 && s.Index <= j.Segments[k-1].Index) {
				t.Fatalf("accepted segment %d of %d: %+v", s.Index, n, j.Segments)
			}
		}
		again, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := parseJournal(again)
		if err != nil {
			t.Fatalf("re-parsing a saved journal: %v", err)
		}
		if !bytes.Equal(mustJSON(t, j2), again) {
			t.Fatalf("round trip changed the journal:\n%s\n%s", again, mustJSON(t, j2))
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
