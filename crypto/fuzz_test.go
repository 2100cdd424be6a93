package crypto_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/vault/vaulttest"
)

func FuzzSplitHeaderObject(f *testing.F) {
	ctx := context.Background()
	ft := vaulttest.NewKeys("ds1")
	x, pq := newX25519(f), newHybrid(f)
	tid := crypto.NewTransitIdentity(ctx, ft, "ds1", "f")
	for _, rs := range [][]age.Recipient{
		{x.Recipient()},
		{x.Recipient(), newX25519(f).Recipient()},
		{pq.Recipient()},
		{crypto.NewTransitRecipient(ctx, ft, "ds1", "f"), pq.Recipient()},
	} {
		obj := encrypt(f, nil, rs...).obj
		f.Add(obj)
		f.Add(obj[:len(obj)-1])
		f.Add(append(bytes.Clone(obj), '\n'))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		header, nonce, err := crypto.SplitHeaderObject(obj)
		if err != nil {
			return
		}
		if len(nonce) != crypto.NonceSize || !bytes.Equal(append(bytes.Clone(header), nonce...), obj) {
			t.Fatal("header || nonce != obj")
		}
		h, err := crypto.ParseHeader(header)
		if err != nil {
			t.Fatalf("ParseHeader rejects what SplitHeaderObject accepted: %v", err)
		}
		if out, err := h.Marshal(); err != nil || !bytes.Equal(out, header) {
			t.Fatalf("Marshal does not round-trip: %v", err)
		}
		// Hostile stanzas must not panic the identities dozo uses. They
		// may only succeed on the headers that really are for them.
		if key, _, err := crypto.OpenHeaderObject(obj, tid, x, pq); err == nil && len(key) != crypto.FileKeySize {
			t.Fatalf("OpenHeaderObject returned a %d-byte key", len(key))
		}
	})
}

func FuzzStreamWriter(f *testing.F) {
	id := newX25519(f)
	fileKey, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	obj, err := crypto.NewHeaderObject(fileKey, nonce, id.Recipient())
	if err != nil {
		f.Fatal(err)
	}
	const maxSize = 4*crypto.ChunkSize + 1000
	for _, size := range testSizes {
		f.Add(uint32(size), uint16(1), uint32(0), uint64(size), uint32(size/2))
		f.Add(uint32(size), uint16(3), uint32(crypto.ChunkSize), uint64(size)+1, uint32(size))
		f.Add(uint32(size), uint16(0), uint32(777), uint64(size)+2, uint32(0))
	}
	f.Fuzz(func(t *testing.T, size32 uint32, resume uint16, writeSize uint32, seed uint64, readOff uint32) {
		size := int(size32 % maxSize)
		pt := plaintext(size, seed)
		// Write in pieces, or io.Copy through ReadFrom with short reads.
		encrypt := chunks
		if seed&1 == 1 {
			encrypt = chunksReadFrom
		}
		payload := encrypt(t, fileKey, nonce, 0, pt, int(writeSize%(3*crypto.ChunkSize)))
		if int64(len(payload)) != crypto.CiphertextSize(int64(size)) {
			t.Fatalf("payload is %d bytes, CiphertextSize(%d) = %d", len(payload), size, crypto.CiphertextSize(int64(size)))
		}
		if ps, err := crypto.PlaintextSize(int64(len(payload))); err != nil || ps != int64(size) {
			t.Fatalf("PlaintextSize = %d, %v", ps, err)
		}
		file := append(bytes.Clone(obj), payload...)
		got, err := ageDecrypt(file, id)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("age.Decrypt: %v", err)
		}

		// Random access through age's ReaderAt.
		ra, n, err := age.DecryptReaderAt(bytes.NewReader(file), int64(len(file)), id)
		if err != nil || n != int64(size) {
			t.Fatalf("age.DecryptReaderAt: %d, %v", n, err)
		}
		off := int64(readOff) % (n + 1)
		part, err := io.ReadAll(io.NewSectionReader(ra, off, min(n-off, 3*crypto.ChunkSize)))
		if err != nil || !bytes.Equal(part, pt[off:off+int64(len(part))]) || int64(len(part)) != min(n-off, 3*crypto.ChunkSize) {
			t.Fatalf("ReadAt at %d: %v", off, err)
		}

		// Resuming at any chunk reproduces the tail.
		nchunks := max(1, (size+crypto.ChunkSize-1)/crypto.ChunkSize)
		k := int(resume) % nchunks
		tail := encrypt(t, fileKey, nonce, uint64(k), pt[k*crypto.ChunkSize:], int(writeSize%(2*crypto.ChunkSize)))
		if !bytes.Equal(tail, payload[k*encChunk:]) {
			t.Fatalf("size %d, resume at %d: tail differs", size, k)
		}
	})
}
