package broker

import (
	"bytes"
	"fmt"
	"testing"
)

// TestManifestCacheNeedsSameBytes: a verified manifest is reused only for
// the very bytes and key it was verified with, so a catalog row changed
// behind dozod's back (or a rotated key) is verified afresh; the cache
// stays within its bound.
func TestManifestCacheNeedsSameBytes(t *testing.T) {
	var c manifestCache
	raw := []byte(`{"version":1,"mac":"vault:v1:x"}`)
	c.add(&verifiedManifest{fileID: "f1", key: "k1", raw: bytes.Clone(raw)})
	if c.get("f1", "k1", raw) == nil {
		t.Fatal("same bytes, same key: not reused")
	}
	changed := bytes.Replace(raw, []byte("v1"), []byte("v2"), 1)
	for _, q := range []struct {
		id, key string
		raw     []byte
	}{{"f1", "k1", changed}, {"f1", "k2", raw}, {"f2", "k1", raw}, {"f1", "k1", nil}} {
		if c.get(q.id, q.key, q.raw) != nil {
			t.Errorf("reused for %s/%s %q", q.id, q.key, q.raw)
		}
	}
	c.reset()
	if c.get("f1", "k1", raw) != nil {
		t.Fatal("reused after reset")
	}
	big := make([]byte, manifestCacheBytes/8)
	for i := range 20 {
		c.add(&verifiedManifest{fileID: fmt.Sprint("f", i), key: "k", raw: big})
	}
	if c.bytes > manifestCacheBytes || c.get("f19", "k", big) == nil || c.get("f0", "k", big) != nil {
		t.Fatalf("cache holds %d bytes (bound %d); newest kept, oldest dropped", c.bytes, manifestCacheBytes)
	}
}
