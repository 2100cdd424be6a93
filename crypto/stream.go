package crypto

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// StreamWriter encrypts a plaintext into age STREAM chunks: each ChunkSize
// bytes of plaintext sealed with ChaCha20-Poly1305 under the payload key, with
// the chunk counter and a last-chunk flag as nonce. It writes chunks only, not
// the header or the nonce.
//
// The last-chunk flag is what stops truncation at a chunk boundary, so a
// full chunk is held back until more plaintext arrives (or Close is called),
// and no chunk is ever emitted as non-final that turns out to be the last.
// Consequently each Write emits whole chunks only, possibly none.
type StreamWriter struct {
	aead    cipher.AEAD
	dst     io.Writer
	buf     []byte // plaintext buffered in buf[:n], sealed in place
	n       int
	spare   []byte // read-ahead buffer for ReadFrom, swapped with buf
	counter uint64 // index of the next chunk
	nonce   [chacha20poly1305.NonceSize]byte
	err     error
}

var errClosed = errors.New("crypto: StreamWriter is closed")

// NewStreamWriter returns a StreamWriter whose first chunk has index
// firstChunk. A fresh file starts at 0. To resume an interrupted upload at a
// segment boundary, start at the index of the first missing chunk and feed the
// plaintext from firstChunk*ChunkSize on: the output is byte for byte what an
// uninterrupted writer would have produced from there.
//
// fileKey and nonce must be those of the file's header object. A file key
// must never encrypt more than one plaintext: sealing different data as the
// same chunk index reuses ChaCha20 keystream, and chunks of an interrupted
// attempt may already have reached storage. So resume only if the source is
// known to be unchanged; otherwise start over with a new file key and nonce.
func NewStreamWriter(dst io.Writer, fileKey, nonce []byte, firstChunk uint64) (*StreamWriter, error) {
	if len(fileKey) != FileKeySize {
		return nil, fmt.Errorf("crypto: file key is %d bytes, want %d", len(fileKey), FileKeySize)
	}
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("crypto: nonce is %d bytes, want %d", len(nonce), NonceSize)
	}
	key := payloadKey(fileKey, nonce)
	defer clear(key)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	return &StreamWriter{
		aead:    aead,
		dst:     dst,
		buf:     make([]byte, encChunkSize),
		counter: firstChunk,
	}, nil
}

// Write encrypts p. It emits only chunks known not to be the last; the rest of
// p is buffered until the next Write or Close.
func (w *StreamWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		// A full buffer with more plaintext coming is not the last chunk.
		if w.n == ChunkSize {
			if err := w.seal(w.buf[:ChunkSize], false); err != nil {
				return written, err
			}
		}
		// With nothing buffered and more than a chunk in p, seal straight
		// from p and skip the copy.
		if w.n == 0 && len(p) > ChunkSize {
			if err := w.seal(p[:ChunkSize], false); err != nil {
				return written, err
			}
			p = p[ChunkSize:]
			written += ChunkSize
			continue
		}
		c := copy(w.buf[w.n:ChunkSize], p)
		w.n += c
		p = p[c:]
		written += c
	}
	return written, nil
}

// ReadFrom implements io.ReaderFrom, so that io.Copy reads plaintext
// straight into the chunk buffer rather than through an intermediate one. Like
// Write, it leaves the last chunk buffered for Close. It returns nil at EOF.
func (w *StreamWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	var total int64
	for {
		if w.n < ChunkSize {
			m, err := r.Read(w.buf[w.n:ChunkSize])
			if m < 0 || m > ChunkSize-w.n {
				return total, errors.New("crypto: invalid Read result")
			}
			w.n += m
			total += int64(m)
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		// The buffer is full. Whether it is the last chunk depends on
		// whether any plaintext follows, so read ahead into the spare
		// buffer before sealing.
		if w.spare == nil {
			w.spare = make([]byte, encChunkSize)
		}
		m, err := r.Read(w.spare[:ChunkSize])
		if m < 0 || m > ChunkSize {
			return total, errors.New("crypto: invalid Read result")
		}
		if m > 0 {
			if err := w.seal(w.buf[:ChunkSize], false); err != nil {
				return total, err
			}
			w.buf, w.spare = w.spare, w.buf
			w.n = m
			total += int64(m)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close seals and writes the buffered plaintext as the last chunk. It does not
// close the underlying writer. The last chunk can be empty only for an empty
// plaintext, so Close fails on a writer resumed past chunk 0 that was given no
// plaintext.
func (w *StreamWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.n == 0 && w.counter != 0 {
		w.err = errors.New("crypto: no plaintext after the resume point; a final chunk past the first can't be empty")
		return w.err
	}
	if err := w.seal(w.buf[:w.n], true); err != nil {
		return err
	}
	w.err = errClosed
	return nil
}

// seal encrypts plaintext as chunk w.counter into w.buf and writes it to
// w.dst. plaintext is either w.buf[:w.n], sealed in place, or does not overlap
// w.buf at all.
func (w *StreamWriter) seal(plaintext []byte, last bool) error {
	if !last && w.counter == math.MaxUint64 {
		// Unreachable for real files (2^64 chunks); refuse rather than wrap.
		w.err = errors.New("crypto: STREAM chunk counter overflow")
		return w.err
	}
	// Nonce: 11-byte big-endian counter, then the last-chunk flag. The top
	// three counter bytes stay zero.
	binary.BigEndian.PutUint64(w.nonce[3:11], w.counter)
	if last {
		w.nonce[11] = 1
	} else {
		w.nonce[11] = 0
	}
	// Seal straight into the destination's buffer when it offers one (the
	// storage writer's segment), saving a copy of every byte.
	out := w.buf[:0]
	if ab, ok := w.dst.(interface{ AvailableBuffer() []byte }); ok {
		if b := ab.AvailableBuffer(); cap(b) >= len(plaintext)+ChunkOverhead {
			out = b
		}
	}
	ct := w.aead.Seal(out, w.nonce[:], plaintext, nil)
	w.n = 0
	w.counter++
	if _, err := w.dst.Write(ct); err != nil {
		w.err = err
		return err
	}
	return nil
}

// CiphertextSize returns the size of the chunk stream (no header or nonce)
// for plaintextSize bytes of plaintext; an empty plaintext is one empty
// chunk. It returns -1 if plaintextSize is negative or the result would
// overflow an int64.
func CiphertextSize(plaintextSize int64) int64 {
	if plaintextSize < 0 {
		return -1
	}
	chunks := max(1, plaintextSize/ChunkSize+min(1, plaintextSize%ChunkSize))
	if plaintextSize > math.MaxInt64-chunks*ChunkOverhead {
		return -1
	}
	return plaintextSize + chunks*ChunkOverhead
}

// PlaintextSize returns the plaintext size for a chunk stream of
// ciphertextSize bytes, or an error if no stream has that size: every chunk
// but the last must be full, and the last may be empty only if it is the
// only one.
func PlaintextSize(ciphertextSize int64) (int64, error) {
	if ciphertextSize < ChunkOverhead {
		return 0, fmt.Errorf("crypto: invalid ciphertext size %d", ciphertextSize)
	}
	full := ciphertextSize / encChunkSize
	rest := ciphertextSize % encChunkSize
	switch {
	case rest == 0: // the last chunk is full
		return ciphertextSize - full*ChunkOverhead, nil
	case full == 0 && rest == ChunkOverhead: // empty plaintext
		return 0, nil
	case rest <= ChunkOverhead:
		return 0, fmt.Errorf("crypto: invalid ciphertext size %d", ciphertextSize)
	}
	return ciphertextSize - (full+1)*ChunkOverhead, nil
}

// StoredSegmentSize returns the ciphertext size of a payload segment holding
// plainSegmentSize bytes of plaintext. Segments must hold whole chunks, so
// plainSegmentSize must be a positive multiple of ChunkSize. (The file's last
// segment may be shorter; use CiphertextSize of the remaining plaintext.)
func StoredSegmentSize(plainSegmentSize int64) (int64, error) {
	if plainSegmentSize <= 0 || plainSegmentSize%ChunkSize != 0 {
		return 0, fmt.Errorf("crypto: segment size %d is not a positive multiple of %d", plainSegmentSize, ChunkSize)
	}
	chunks := plainSegmentSize / ChunkSize
	if plainSegmentSize > math.MaxInt64-chunks*ChunkOverhead {
		return 0, fmt.Errorf("crypto: segment size %d too large", plainSegmentSize)
	}
	return plainSegmentSize + chunks*ChunkOverhead, nil
}

// StreamReader decrypts a whole payload sequentially, the counterpart of
// StreamWriter for callers that know the ciphertext's length (from the
// manifest). Unlike age's reader it decrypts each chunk in place in one
// reused buffer, so a long stream allocates nothing per chunk (age's
// reader allocated the stream's size again in garbage, which set the
// fetch's peak RSS through the GC's pacing).
//
// Security property: every byte handed out belongs to a chunk that
// authenticated with its index and, for the last chunk, the last-chunk
// flag; a truncated, extended or reordered stream fails. The header MAC
// must have been checked (OpenHeader) before the file key is used here.
type StreamReader struct {
	aead      cipher.AEAD
	src       io.Reader
	lastChunk uint64
	size      int64 // ciphertext
	buf       []byte
	nonce     [chacha20poly1305.NonceSize]byte
}

// NewStreamReader returns a reader of the plaintext of the ciphertextSize
// bytes of payload read from src.
func NewStreamReader(src io.Reader, fileKey, nonce []byte, ciphertextSize int64) (*StreamReader, error) {
	if len(fileKey) != FileKeySize || len(nonce) != NonceSize {
		return nil, errors.New("crypto: bad file key or nonce size")
	}
	if _, err := PlaintextSize(ciphertextSize); err != nil {
		return nil, err
	}
	key := payloadKey(fileKey, nonce)
	defer clear(key)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	return &StreamReader{aead: aead, src: src, size: ciphertextSize,
		lastChunk: uint64((ciphertextSize - 1) / encChunkSize), buf: make([]byte, encChunkSize)}, nil
}

// ChunkLender is a source that can lend its next bytes where they lie
// instead of copying them out, as a storage stream holding whole
// segments can. Next returns the next n bytes, or fewer with an error at
// the end (io.EOF when there were none); the slice is valid until the
// next call of any of the source's methods, and its holder must not
// write to it.
type ChunkLender interface {
	io.Reader
	Next(n int) ([]byte, error)
}

// WriteTo decrypts the whole payload into w, one authenticated chunk at a
// time, and checks that src ends exactly at the stated size.
//
// Bytes are copied once at most: the ciphertext is opened from where src
// lends it (ChunkLender) or read into the destination's spare buffer
// (AvailableBuffer), and the plaintext lands in that buffer where there
// is one. w sees a chunk's plaintext only by Write, after it
// authenticated.
func (r *StreamReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	lender, lends := r.src.(ChunkLender)
	ab, spare := w.(interface{ AvailableBuffer() []byte })
	for idx := uint64(0); idx <= r.lastChunk; idx++ {
		encLen := int64(encChunkSize)
		if idx == r.lastChunk {
			encLen = r.size - int64(idx)*encChunkSize
		}
		dst := r.buf[:encLen]
		if spare {
			if b := ab.AvailableBuffer(); int64(cap(b)) >= encLen {
				dst = b[:encLen]
			}
		}
		var ct []byte
		var err error
		if lends {
			ct, err = lender.Next(int(encLen))
			if err == nil && int64(len(ct)) != encLen {
				err = io.ErrUnexpectedEOF
			}
		} else {
			ct = dst
			_, err = io.ReadFull(r.src, ct)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return total, fmt.Errorf("crypto: reading chunk %d: %w", idx, err)
		}
		binary.BigEndian.PutUint64(r.nonce[3:11], idx)
		r.nonce[11] = 0
		if idx == r.lastChunk {
			r.nonce[11] = 1
		}
		pt, err := r.aead.Open(dst[:0], r.nonce[:], ct, nil)
		if err != nil {
			return total, fmt.Errorf("crypto: chunk %d failed authentication", idx)
		}
		n, err := w.Write(pt)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.src, one[:]); n != 0 {
		return total, errors.New("crypto: data after the last chunk")
	}
	return total, nil
}
