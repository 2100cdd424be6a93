package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
)

// Piece hash algorithms. Both produce 32-byte digests, stored as 64
// lowercase hex characters.
const (
	HashSHA256 = "sha256"
	HashBLAKE3 = "blake3"
)

// DefaultHashAlg is BLAKE3: on the reference machine (AMD Turin-class vCPU
// with SHA-NI and AVX-512) zeebo/blake3 hashed 16 MiB pieces at ~2.6 GB/s
// per core against ~1.4 GB/s for crypto/sha256 (BenchmarkHashBLAKE3 /
// BenchmarkHashSHA256). Every stored and every read byte is hashed, so this
// is the cheaper choice; SHA-256 remains available for sites that require a
// FIPS algorithm.
const DefaultHashAlg = HashBLAKE3

const hashHexLen = 64

func checkHashAlg(alg string) error {
	switch alg {
	case HashSHA256, HashBLAKE3:
		return nil
	}
	return fmt.Errorf("storage: unknown hash algorithm %q (want %q or %q)", alg, HashSHA256, HashBLAKE3)
}

// sumPiece returns the digest of b under alg, which must have passed
// checkHashAlg.
func sumPiece(alg string, b []byte) [32]byte {
	if alg == HashSHA256 {
		return sha256.Sum256(b)
	}
	return blake3.Sum256(b)
}

func hashHex(alg string, b []byte) string {
	d := sumPiece(alg, b)
	return hex.EncodeToString(d[:])
}

// validHashHex accepts exactly 64 lowercase hex digits; one spelling per
// digest keeps the signed manifest encoding canonical.
func validHashHex(s string) bool {
	if len(s) != hashHexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
