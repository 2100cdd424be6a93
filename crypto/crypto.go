// Package crypto encrypts dozo files in the age v1 format (c2sp.org/age),
// with the header and the payload kept as separate objects.
//
// An age file is a header, a 16-byte nonce and a STREAM of ChaCha20-Poly1305
// chunks. dozo stores the header followed by the nonce as the "header object"
// and the chunks, cut into segments, as the payload. Concatenated they form
// an ordinary age file that any age implementation decrypts, so the data
// stays readable without dozo.
//
// The split lets the file key be rewrapped for new recipients by rewriting
// only the small header object (see [Rewrap]), and lets an interrupted
// upload resume at a segment boundary (see [NewStreamWriter]), since every
// chunk is sealed independently under a key derived from the file key and
// the nonce alone.
package crypto

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
)

const (
	// FileKeySize is the size of an age file key.
	FileKeySize = 16
	// NonceSize is the size of the payload nonce that follows the header.
	NonceSize = 16
	// ChunkSize is the number of plaintext bytes in every STREAM chunk but
	// the last.
	ChunkSize = 64 << 10
	// ChunkOverhead is the Poly1305 tag added to every chunk.
	ChunkOverhead = 16
)

const encChunkSize = ChunkSize + ChunkOverhead

// NewFileKey returns a fresh random file key. A file key must encrypt one
// file only: the payload key is derived from it and the nonce.
func NewFileKey() ([]byte, error) {
	k := make([]byte, FileKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// NewNonce returns a fresh random payload nonce.
func NewNonce() ([]byte, error) {
	n := make([]byte, NonceSize)
	if _, err := rand.Read(n); err != nil {
		return nil, err
	}
	return n, nil
}

// headerMAC computes the age header MAC over the header bytes through "---".
func headerMAC(fileKey, withoutMAC []byte) []byte {
	key, err := hkdf.Key(sha256.New, fileKey, nil, "header", sha256.Size)
	if err != nil {
		panic("crypto: HKDF failed: " + err.Error()) // only on absurd lengths
	}
	defer clear(key)
	h := hmac.New(sha256.New, key)
	h.Write(withoutMAC)
	return h.Sum(nil)
}

// payloadKey derives the ChaCha20-Poly1305 key for the STREAM chunks.
// It depends only on the file key and nonce, which is what allows chunks to
// be sealed, resumed and checked independently of the header.
func payloadKey(fileKey, nonce []byte) []byte {
	key, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", 32)
	if err != nil {
		panic("crypto: HKDF failed: " + err.Error())
	}
	return key
}
