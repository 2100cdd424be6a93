package api

import (
	"testing"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
)

// TestMaxPlainSegmentSize: the largest plaintext segment is the last whole
// chunk count whose encrypted size fits storage's bound.
func TestMaxPlainSegmentSize(t *testing.T) {
	s, err := crypto.StoredSegmentSize(MaxPlainSegmentSize)
	if err != nil || s > storage.MaxSegmentSize {
		t.Fatalf("MaxPlainSegmentSize stores as %d (%v), above %d", s, err, storage.MaxSegmentSize)
	}
	if s, _ := crypto.StoredSegmentSize(MaxPlainSegmentSize + SegmentSizeUnit); s <= storage.MaxSegmentSize {
		t.Fatalf("one more chunk still fits (%d bytes)", s)
	}
}

// TestSegmentSizeHint: the size a refusal suggests is accepted.
func TestSegmentSizeHint(t *testing.T) {
	for k := 1; k <= 20; k++ {
		step := int64(k) / gcd(int64(k), crypto.ChunkSize+crypto.ChunkOverhead) * SegmentSizeUnit
		p := (MinPlainSegmentSize + step - 1) / step * step
		if err := ValidateSegmentSize(p, k); err != nil {
			t.Errorf("k=%d: the suggested multiple %d is refused: %v", k, p, err)
		}
	}
}
