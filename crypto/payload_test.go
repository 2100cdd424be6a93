package crypto_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/dozo-vault/dozo/crypto"
)

// endEOFReader returns io.EOF together with a read that reaches the end,
// as io.ReaderAt allows.
type endEOFReader struct{ b []byte }

func (r endEOFReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if off+int64(n) == int64(len(r.b)) {
		return n, io.EOF
	}
	return n, nil
}

func TestPayloadReaderAtRanges(t *testing.T) {
	id := newX25519(t)
	for _, size := range testSizes {
		pt := plaintext(size, uint64(size))
		s := encrypt(t, pt, id.Recipient())
		for _, src := range []io.ReaderAt{bytes.NewReader(s.payload), endEOFReader{s.payload}} {
			r, err := crypto.NewPayloadReaderAt(s.fileKey, s.nonce, src, int64(len(s.payload)))
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != int64(size) {
				t.Fatalf("size %d, want %d", r.Size(), size)
			}
			for _, rg := range [][2]int{{0, size}, {size / 3, size / 2}, {max(0, size-5), size}, {crypto.ChunkSize - 3, crypto.ChunkSize + 3}} {
				off, end := rg[0], min(rg[1], size)
				if off > end {
					continue
				}
				got := make([]byte, end-off)
				if n, err := r.ReadAt(got, int64(off)); n != len(got) || (err != nil && err != io.EOF) {
					t.Fatalf("size %d: ReadAt(%d..%d) = %d, %v", size, off, end, n, err)
				}
				if !bytes.Equal(got, pt[off:end]) {
					t.Fatalf("size %d: range %d..%d differs", size, off, end)
				}
			}
			// Reading past the end reports io.EOF with what there was.
			if size > 0 {
				got := make([]byte, 10)
				n, err := r.ReadAt(got, int64(size-1))
				if n != 1 || err != io.EOF || got[0] != pt[size-1] {
					t.Fatalf("size %d: read across the end = %d, %v", size, n, err)
				}
			}
		}
	}
}

func TestPayloadReaderAtRejectsTampering(t *testing.T) {
	id := newX25519(t)
	pt := plaintext(3*crypto.ChunkSize+100, 9)
	s := encrypt(t, pt, id.Recipient())
	read := func(payload []byte, size int64, off int64) error {
		r, err := crypto.NewPayloadReaderAt(s.fileKey, s.nonce, bytes.NewReader(payload), size)
		if err != nil {
			return err
		}
		_, err = r.ReadAt(make([]byte, 10), off)
		return err
	}
	flipped := bytes.Clone(s.payload)
	flipped[crypto.ChunkSize+crypto.ChunkOverhead+5] ^= 1
	if read(flipped, int64(len(flipped)), crypto.ChunkSize) == nil {
		t.Error("flipped bit in chunk 1 not detected")
	}
	swapped := bytes.Clone(s.payload)
	enc := crypto.ChunkSize + crypto.ChunkOverhead
	copy(swapped[:enc], s.payload[enc:2*enc])
	copy(swapped[enc:2*enc], s.payload[:enc])
	if read(swapped, int64(len(swapped)), 0) == nil {
		t.Error("swapped chunks not detected")
	}
	// Truncated at a chunk boundary: the new final chunk lacks the
	// last-chunk flag, so reading it fails.
	trunc := s.payload[:3*enc]
	if read(trunc, int64(len(trunc)), 2*crypto.ChunkSize) == nil {
		t.Error("truncation at a chunk boundary not detected")
	}
	other := encrypt(t, pt, id.Recipient())
	if r, err := crypto.NewPayloadReaderAt(other.fileKey, other.nonce, bytes.NewReader(s.payload), int64(len(s.payload))); err == nil {
		if _, err := r.ReadAt(make([]byte, 10), 0); err == nil {
			t.Error("payload opened with another file's key")
		}
	}
	if _, err := crypto.NewPayloadReaderAt(s.fileKey, s.nonce, bytes.NewReader(s.payload), 5); err == nil {
		t.Error("impossible ciphertext size accepted")
	}
}
