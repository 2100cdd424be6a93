package filestore

import (
	"crypto/md5"
	"crypto/sha256"
	"hash"
	"io"
)

// Checksums computes a plaintext's whole-file checksums, the ones the
// catalog keeps: SHA-256 always, MD5 when asked for. Write feeds both;
// Writers lets the hashes be fed side by side by separate goroutines.
type Checksums struct {
	SHA256 hash.Hash
	MD5    hash.Hash // nil unless asked for
}

// NewChecksums returns empty checksums, with MD5 if withMD5.
func NewChecksums(withMD5 bool) *Checksums {
	c := &Checksums{SHA256: sha256.New()}
	if withMD5 {
		c.MD5 = md5.New()
	}
	return c
}

// Write adds p to every hash in use; it never fails.
func (c *Checksums) Write(p []byte) (int, error) {
	c.SHA256.Write(p)
	if c.MD5 != nil {
		c.MD5.Write(p)
	}
	return len(p), nil
}

// Writers lists the hashes in use, each to be given the whole plaintext.
func (c *Checksums) Writers() []io.Writer {
	if c.MD5 == nil {
		return []io.Writer{c.SHA256}
	}
	return []io.Writer{c.SHA256, c.MD5}
}
