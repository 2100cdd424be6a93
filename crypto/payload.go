package crypto

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// PayloadReaderAt decrypts random-access ranges of an age chunk stream.
//
// Unlike age.DecryptReaderAt it does not read the final chunk up front:
// the chunk stream's size comes from an authenticated manifest, and every
// chunk is opened with its own index and, for the final index, the
// last-chunk flag, so a chunk that is moved, swapped, truncated or taken
// from another file fails authentication. Reading a range therefore touches
// only the chunks (and so the storage segments) that cover it.
//
// It never returns plaintext that did not authenticate.
type PayloadReaderAt struct {
	aead      cipher.AEAD
	src       io.ReaderAt
	size      int64 // plaintext
	lastChunk int64
	bufs      sync.Pool
}

// NewPayloadReaderAt returns a reader of the plaintext of the chunk stream
// src, which is ciphertextSize bytes long (no header, no nonce).
func NewPayloadReaderAt(fileKey, nonce []byte, src io.ReaderAt, ciphertextSize int64) (*PayloadReaderAt, error) {
	if len(fileKey) != FileKeySize || len(nonce) != NonceSize {
		return nil, errors.New("crypto: bad file key or nonce size")
	}
	size, err := PlaintextSize(ciphertextSize)
	if err != nil {
		return nil, err
	}
	key := payloadKey(fileKey, nonce)
	defer clear(key)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	r := &PayloadReaderAt{aead: aead, src: src, size: size,
		lastChunk: (ciphertextSize - 1) / encChunkSize}
	r.bufs.New = func() any { b := make([]byte, encChunkSize); return &b }
	return r, nil
}

// Size is the plaintext size.
func (r *PayloadReaderAt) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt; it is safe for concurrent use.
func (r *PayloadReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("crypto: negative offset %d", off)
	}
	if off >= r.size {
		if len(p) == 0 && off == r.size {
			return 0, nil
		}
		return 0, io.EOF
	}
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	buf := *bp
	var nonce [chacha20poly1305.NonceSize]byte
	n := 0
	for n < len(p) && off < r.size {
		idx := off / ChunkSize
		encLen := int64(encChunkSize)
		if idx == r.lastChunk {
			encLen = r.size - idx*ChunkSize + ChunkOverhead
		}
		ct := buf[:encLen]
		// io.ReaderAt may return io.EOF with a full read at the end.
		if m, err := r.src.ReadAt(ct, idx*encChunkSize); m < len(ct) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("crypto: reading chunk %d: %w", idx, err)
		}
		binary.BigEndian.PutUint64(nonce[3:11], uint64(idx))
		nonce[11] = 0
		if idx == r.lastChunk {
			nonce[11] = 1
		}
		pt, err := r.aead.Open(ct[:0], nonce[:], ct, nil)
		if err != nil {
			return n, fmt.Errorf("crypto: chunk %d failed authentication", idx)
		}
		c := copy(p[n:], pt[off-idx*ChunkSize:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
