package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dozo-vault/dozo/client"

	"github.com/dozo-vault/dozo/storage"
)

// storedPieces returns the SHA-256 of every stored piece of a file, by
// target and key.
func (f *fakeDozod) storedPieces(t *testing.T, dataset, fileID string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for id, tg := range f.targets {
		err := tg.List(context.Background(), storage.FilePrefix(dataset, fileID), func(oi storage.ObjectInfo) error {
			rc, err := tg.Get(context.Background(), oi.Key, 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			h := sha256.New()
			if _, err := io.Copy(h, rc); err != nil {
				return err
			}
			out[id+"/"+oi.Key] = [32]byte(h.Sum(nil))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// An upload fails after some pieces of segment 3 are stored but before
// the segment is committed; the file then changes inside segment 3 with
// its size, mtime and inode as before. The rerun must not seal the new
// plaintext under the key, nonce and chunk counters whose ciphertext of
// the old plaintext is already on storage.
func TestResumeNeverReusesKeystreamOnChangedSegment(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 6*fakePlainSeg+777)
	fi, _ := os.Stat(path)
	ino := inode(t, path)
	e.fk.failPutAfter.Store(6*3 + 2) // segments 0-2, then two pieces of 3
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("upload did not fail")
	}
	first := e.fk.uploads["up1"]
	if len(first.Committed) != 3 {
		t.Fatalf("first run committed %d segments, want 3", len(first.Committed))
	}
	before := e.fk.storedPieces(t, "DS1", first.FileID)
	seg3 := 0
	for k := range before {
		if bytes.Contains([]byte(k), []byte("/seg-00000003/")) {
			seg3++
		}
	}
	if seg3 == 0 {
		t.Fatal("no piece of segment 3 was stored by the first run")
	}

	// Change a byte inside segment 3, in place, and restore the mtime.
	data[3*fakePlainSeg+10] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	if inode(t, path) != ino {
		t.Fatal("the rewrite changed the inode")
	}

	e.fk.failPutAfter.Store(0)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	after := e.fk.storedPieces(t, "DS1", first.FileID)
	for k, sum := range before {
		if got, ok := after[k]; ok && got != sum {
			t.Errorf("%s: the rerun stored different ciphertext under the first run's key and chunk counters", k)
		}
	}
	if res.UploadID == first.ID || bytes.Equal(e.fk.uploads[res.UploadID].key, first.key) {
		t.Fatalf("the rerun continued the first run's key (upload %s, resumed=%v)", res.UploadID, res.Resumed)
	}
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch: %v", err)
	}
}

// A segment recorded in the journal but not committed, with its plaintext
// unchanged, is resumed under the same key (re-sending it yields the very
// same ciphertext).
func TestResumeKeepsUnchangedRecordedSegment(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 6*fakePlainSeg+777)
	e.fk.failPutAfter.Store(6*3 + 2)
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("upload did not fail")
	}
	first := e.fk.uploads["up1"]
	before := e.fk.storedPieces(t, "DS1", first.FileID)
	e.fk.failPutAfter.Store(0)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.UploadID != first.ID || res.StartSegment != 3 {
		t.Fatalf("not resumed at segment 3: %+v", res)
	}
	after := e.fk.storedPieces(t, "DS1", first.FileID)
	for k, sum := range before {
		if after[k] != sum {
			t.Errorf("%s: re-sent with different ciphertext", k)
		}
	}
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch: %v", err)
	}
}

// Whoever can write the journal and knows the user's public key can seal
// a file key of their choosing into it. A resume must not encrypt with a
// key dozod's session does not hold.
func TestResumeRefusesPlantedFileKey(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 6*fakePlainSeg+777)
	e.fk.failPutAfter.Store(6*3 + 2)
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("upload did not fail")
	}
	abs, _ := filepath.Abs(path)
	jp := JournalPath(e.dir, e.c.Broker(), "DS1", "reads.fq", abs)
	j, err := LoadJournal(jp)
	if err != nil || j == nil {
		t.Fatalf("journal: %v", err)
	}
	planted := bytes.Repeat([]byte{7}, 16)
	if j.SealedKey, err = SealKey(e.id.Recipient, planted, bytes.Repeat([]byte{8}, 16)); err != nil {
		t.Fatal(err)
	}
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	e.fk.failPutAfter.Store(0)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.UploadID == "up1" {
		t.Fatalf("resumed with a file key dozod's session does not hold: %+v", res)
	}
	if bytes.Equal(e.fk.uploads[res.UploadID].key, planted) {
		t.Fatal("the new session uses the planted key")
	}
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch: %v", err)
	}
}

// Every piece PUT finds its segment's plaintext hash in the journal on
// disk already: a process killed at any moment leaves no ciphertext on
// storage that a resume would not re-verify.
func TestJournalRecordsSegmentBeforeItsPieces(t *testing.T) {
	e := newEnv(t)
	path, _ := writeRandom(t, 5*fakePlainSeg+3)
	jp := JournalPath(e.dir, e.c.Broker(), "DS1", "reads.fq", path)
	var mu sync.Mutex
	var problems []string
	puts := 0
	e.fk.onPut = func(key string) {
		var seg int
		i := strings.Index(key, "/seg-")
		if i < 0 {
			return
		}
		fmt.Sscanf(key[i:], "/seg-%d/", &seg)
		j, err := LoadJournal(jp)
		mu.Lock()
		defer mu.Unlock()
		puts++
		if err != nil || j == nil {
			problems = append(problems, fmt.Sprintf("%s: no journal (%v)", key, err))
			return
		}
		for _, s := range j.Segments {
			if s.Index == seg {
				return
			}
		}
		problems = append(problems, fmt.Sprintf("%s stored before segment %d's hash was recorded", key, seg))
	}
	if _, err := e.upload(t, path); err != nil {
		t.Fatal(err)
	}
	if puts != 6*6 {
		t.Errorf("%d PUTs, want 36", puts)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// A journal of the previous format is not resumed (its uncommitted
// segments may have pieces on storage with no recorded hash); its session
// is aborted so the fresh upload can take the name.
func TestOlderJournalStartsOver(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 6*fakePlainSeg+777)
	e.fk.failPutAfter.Store(6*3 + 2)
	if _, err := e.upload(t, path); err == nil {
		t.Fatal("upload did not fail")
	}
	jp := JournalPath(e.dir, e.c.Broker(), "DS1", "reads.fq", path)
	j, err := LoadJournal(jp)
	if err != nil || j == nil {
		t.Fatalf("journal: %v", err)
	}
	j.Version = 2
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	e.fk.failPutAfter.Store(0)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.UploadID == "up1" || len(e.fk.aborted) != 1 || e.fk.aborted[0] != "up1" {
		t.Fatalf("version 2 journal: %+v, aborted %v", res, e.fk.aborted)
	}
	var buf bytes.Buffer
	if _, err := e.fetch(t, FetchOptions{Output: "-", Stdout: &buf}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetch: %v", err)
	}
}

// writeSidecar writes a fetch's sidecar as an interrupted fetch leaves it.
func writeSidecar(path string, sc sidecar) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	return client.WriteSecret(path, b)
}

// TestFetchSidecarRewritten leaves a longer sidecar of another file
// version, readable by others, beside the output: the fetch starts over,
// and while it runs its sidecar is this file's record alone (nothing of
// the old one after it) and private; at the end it is gone.
func TestFetchSidecarRewritten(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 3*fakePlainSeg+5)
	res, err := e.upload(t, path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.fq")
	side := out + ".partial.dozo"
	os.WriteFile(out+".partial", data[:fakePlainSeg], 0o600)
	stale := sidecar{Version: 1, FileID: "f-" + strings.Repeat("x", 200), SHA256: res.File.SHA256, Size: res.File.Size, Verified: fakePlainSeg}
	if err := writeSidecar(side, stale); err != nil {
		t.Fatal(err)
	}
	os.Chmod(side, 0o644)
	var seen []string
	calls := 0
	fr, err := e.fetch(t, FetchOptions{Output: out, Progress: func(done, size int64) {
		calls++
		b, err := os.ReadFile(side)
		fi, serr := os.Stat(side)
		if err != nil || serr != nil {
			seen = append(seen, fmt.Sprintf("at %d: %v %v", done, err, serr))
			return
		}
		var sc sidecar
		if err := json.Unmarshal(bytes.TrimRight(b, "\x00 \n"), &sc); err != nil || sc.FileID != res.File.ID || fi.Mode().Perm() != 0o600 {
			seen = append(seen, fmt.Sprintf("at %d: %q (mode %v)", done, b, fi.Mode().Perm()))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if fr.Resumed {
		t.Error("resumed from another file version's sidecar")
	}
	if len(seen) > 0 || calls == 0 {
		t.Fatalf("sidecar during the fetch (%d looks): %v", calls, seen)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("fetched file differs")
	}
	if _, err := os.Stat(side); err == nil {
		t.Error("sidecar left behind")
	}
}
