package api

import (
	"fmt"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
)

// Segment size limits of a dataset, one rule for dozod and the client. A
// segment's plaintext is whole age chunks (a multiple of SegmentSizeUnit,
// 64 KiB) and at least MinPlainSegmentSize (1 MiB); once encrypted it is
// at most storage.MaxSegmentSize (1 GiB), so the largest plaintext per
// segment is MaxPlainSegmentSize (1023.75 MiB).
const (
	SegmentSizeUnit     = crypto.ChunkSize
	MinPlainSegmentSize = 1 << 20
	MaxPlainSegmentSize = storage.MaxSegmentSize / (crypto.ChunkSize + crypto.ChunkOverhead) * crypto.ChunkSize
)

// ValidateSegmentSize checks a dataset's plaintext segment size for an
// erasure code with k data pieces: a multiple of SegmentSizeUnit within
// MinPlainSegmentSize..MaxPlainSegmentSize whose stored size splits into k
// equal pieces. It accepts exactly what filestore.Layout accepts within
// those bounds, and its errors name a size that would do.
func ValidateSegmentSize(plain int64, k int) error {
	switch {
	case plain%SegmentSizeUnit != 0:
		return fmt.Errorf("segment size %d bytes: must be a multiple of 64KiB", plain)
	case plain < MinPlainSegmentSize:
		return fmt.Errorf("segment size %d bytes: must be at least 1MiB", plain)
	case plain > MaxPlainSegmentSize:
		return fmt.Errorf("segment size %d bytes: must be at most %dKiB (1023.75MiB; 1GiB once encrypted)", plain, MaxPlainSegmentSize>>10)
	case k < 1:
		return fmt.Errorf("erasure code with %d data pieces", k)
	}
	stored, err := crypto.StoredSegmentSize(plain)
	if err != nil {
		return err
	}
	if stored%int64(k) != 0 {
		// stored is chunks*(ChunkSize+ChunkOverhead): it splits into k
		// pieces when the chunk count is a multiple of k/gcd(k, that).
		step := int64(k) / gcd(int64(k), crypto.ChunkSize+crypto.ChunkOverhead) * SegmentSizeUnit
		return fmt.Errorf("segment size %d bytes: encrypted (%d bytes) it does not split into %d equal pieces; use a multiple of %dKiB",
			plain, stored, k, step>>10)
	}
	return nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
