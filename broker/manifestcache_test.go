package broker

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// TestManifestCacheNeedsSameBytes: a verified manifest is reused only for
// the very bytes and key it was verified with, so a catalog row changed
// behind dozod's back (or a rotated key) is verified afresh; the cache
// stays within its bound.
func TestManifestCacheNeedsSameBytes(t *testing.T) {
	var c manifestCache
	raw := []byte(`{"version":1,"mac":"vault:v1:x"}`)
	c.add(&verifiedManifest{fileID: "f1", key: "k1", gen: 3, raw: bytes.Clone(raw)})
	if c.get("f1", "k1", 3, raw) == nil {
		t.Fatal("same bytes, same key: not reused")
	}
	changed := bytes.Replace(raw, []byte("v1"), []byte("v2"), 1)
	for _, q := range []struct {
		id, key string
		gen     int64
		raw     []byte
	}{{"f1", "k1", 3, changed}, {"f1", "k2", 3, raw}, {"f2", "k1", 3, raw}, {"f1", "k1", 3, nil}, {"f1", "k1", 4, raw}, {"f1", "k1", 2, raw}} {
		if c.get(q.id, q.key, q.gen, q.raw) != nil {
			t.Errorf("reused for %s/%s gen %d %q", q.id, q.key, q.gen, q.raw)
		}
	}
	c.reset()
	if c.get("f1", "k1", 3, raw) != nil {
		t.Fatal("reused after reset")
	}
	big := make([]byte, manifestCacheBytes/8)
	for i := range 20 {
		c.add(&verifiedManifest{fileID: fmt.Sprint("f", i), key: "k", raw: big})
	}
	if c.bytes > manifestCacheBytes || c.get("f19", "k", 0, big) == nil || c.get("f0", "k", 0, big) != nil {
		t.Fatalf("cache holds %d bytes (bound %d); newest kept, oldest dropped", c.bytes, manifestCacheBytes)
	}
}

// TestMACMemoFollowsKeyGeneration: a MAC memoised under one key generation
// is not accepted once a newer generation of that key has been read, nor
// is a Transit answer given before the newer generation was seen kept
// under it; an older generation read afterwards changes nothing.
func TestMACMemoFollowsKeyGeneration(t *testing.T) {
	var m macMemo
	data := []byte("manifest")
	m.add("k", data, "vault:v1:a")
	if !m.has("k", data, "vault:v1:a") {
		t.Fatal("memoised MAC not found")
	}
	gen := m.generation("k")
	if !m.observe("k", 1) || m.has("k", data, "vault:v1:a") {
		t.Fatal("MAC memoised before the rotation still accepted")
	}
	m.addAt("k", gen, data, "vault:v1:b") // Vault answered before generation 1 was read
	if m.has("k", data, "vault:v1:b") {
		t.Fatal("an answer from before the rotation was kept under the new generation")
	}
	if m.observe("k", 0) || m.generation("k") != 1 {
		t.Fatal("an older generation read later moved the memo back")
	}
	m.add("k", data, "vault:v2:c")
	if !m.has("k", data, "vault:v2:c") || m.has("other", data, "vault:v2:c") {
		t.Fatal("memo after the rotation")
	}
}

// TestReplicaSeesRotationByAnother: two dozods on one catalog. Once a
// rotation through one has retired the old key version, the other, whose
// cache and MAC memo hold the file's manifest verified under the old
// version, no longer accepts that manifest (here put back into the
// catalog row, as a restored backup or a tampered row would): Transit
// refuses its MAC, so both dozods refuse the fetch. The manifest the
// rotation wrote is served by both.
func TestReplicaSeesRotationByAnother(t *testing.T) {
	ctx := context.Background()
	keys := &versionedKeys{}
	a, _ := newEnvWith(t, keys)
	b := *a
	var targets []Target
	for _, tg := range a.targets {
		targets = append(targets, dirTarget{tg.(*storage.DirTarget)})
	}
	var err error
	b.srv, err = New(Options{
		Catalog: a.cat, Identifier: tokens, Keys: keys, Targets: targets,
		Admins: []string{"admin"}, Submitters: []string{"sam"},
		Logger: slog.New(slog.DiscardHandler), Version: "test",
		Now: func() time.Time { return a.now },
	})
	if err != nil {
		t.Fatal(err)
	}

	a.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	data := randBytes(2<<20 + 99)
	key, nonce := randBytes(16), randBytes(16)
	var up api.Upload
	a.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("a.vcf", len(data), key, nonce), &up)
	a.writeAndCommit("tok-sam", &up, data, key, nonce)
	sha, md := sha256.Sum256(data), md5.Sum(data)
	a.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", api.CompleteUploadRequest{SHA256: hex.EncodeToString(sha[:]), MD5: hex.EncodeToString(md[:])}, nil)
	id, _ := age.GenerateX25519Identity()
	b.must(200, "tok-sam", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)

	fetch := "/v1/datasets/DS1/files/a.vcf/fetch"
	batch := "/v1/fetches/" + up.FileID + "/presign-batch"
	all := api.FetchBatchRequest{First: 0, Count: up.Segments}
	var fr api.FetchResponse
	b.must(200, "tok-sam", "POST", fetch, nil, &fr) // b verifies and caches the v1 manifest
	b.must(200, "tok-sam", "POST", batch, all, nil)
	before, _ := a.cat.File(ctx, up.FileID)

	a.must(200, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)
	after, _ := a.cat.File(ctx, up.FileID)
	if bytes.Equal(before.Manifest, after.Manifest) {
		t.Fatal("rotation did not write a new manifest")
	}
	// Both serve the manifest the rotation wrote.
	for _, e := range []*env{a, &b} {
		var got api.FetchResponse
		e.must(200, "tok-sam", "POST", fetch, nil, &got)
		if got.Manifest.MAC == fr.Manifest.MAC {
			t.Fatalf("fetch after the rotation answers the old manifest (MAC %s)", got.Manifest.MAC)
		}
		e.must(200, "tok-sam", "POST", batch, all, nil)
	}

	// The pre-rotation manifest back in the row: Transit refuses its MAC.
	if err := a.cat.ReplaceKeyMaterial(ctx, up.FileID, after.HeaderObject, after.HeaderObject, after.Manifest, before.Manifest); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*env{"rotating dozod": a, "other dozod": &b} {
		if code, raw := e.call("tok-sam", "POST", fetch, nil, nil); code != 500 {
			t.Errorf("%s: fetch with the retired manifest: %d %.80s, want 500", name, code, raw)
		}
		if code, raw := e.call("tok-sam", "POST", batch, all, nil); code != 500 {
			t.Errorf("%s: presign batch with the retired manifest: %d %.80s, want 500", name, code, raw)
		}
	}
}
