package transfer

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/dozo-vault/dozo/crypto"
)

// TestAsyncSinkDecryptsInPlace decrypts a stream through an asyncSink,
// whose AvailableBuffer lets the decryptor open chunks inside its blocks,
// and checks that the output and the hash see exactly the plaintext, for
// sizes around chunk and block boundaries.
func TestAsyncSinkDecryptsInPlace(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, crypto.ChunkSize, crypto.ChunkSize + 1, pipeBlockSize - 1, pipeBlockSize, 3*pipeBlockSize + crypto.ChunkSize/2} {
		pt := make([]byte, size)
		for i := range pt {
			pt[i] = byte(rng.Uint32())
		}
		var ct bytes.Buffer
		w, err := crypto.NewStreamWriter(&ct, key, nonce, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := crypto.NewStreamReader(bytes.NewReader(ct.Bytes()), key, nonce, int64(ct.Len()))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		h := sha256.New()
		s := newAsyncSink(&out, h)
		if _, err := r.WriteTo(s); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(pt)
		if !bytes.Equal(out.Bytes(), pt) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("size %d: output or hash differs from the plaintext", size)
		}
	}
}

// TestAsyncSinkNoUnauthenticatedBytes flips a byte in the third chunk:
// what reaches the output must be the first two chunks' plaintext only,
// although the bad chunk was read into the sink's own block.
func TestAsyncSinkNoUnauthenticatedBytes(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	pt := bytes.Repeat([]byte("plaintext"), 5*crypto.ChunkSize/9)
	var ct bytes.Buffer
	w, _ := crypto.NewStreamWriter(&ct, key, nonce, 0)
	w.Write(pt)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(ct.Bytes())
	bad[2*(crypto.ChunkSize+crypto.ChunkOverhead)+100] ^= 1
	r, err := crypto.NewStreamReader(bytes.NewReader(bad), key, nonce, int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s := newAsyncSink(&out)
	if _, err := r.WriteTo(s); err == nil {
		t.Fatal("a tampered chunk decrypted")
	}
	s.Close()
	if !bytes.Equal(out.Bytes(), pt[:2*crypto.ChunkSize]) {
		t.Fatalf("output has %d bytes, want the %d of the two good chunks", out.Len(), 2*crypto.ChunkSize)
	}
}

// TestPipeBuffersReused passes 1 MiB through 16 sinks one after another,
// as a batch of small files does: the sinks take their blocks' buffers
// from the ones earlier sinks gave back, so far less than 16 MiB is
// allocated (the pool may lose buffers to a GC, hence the margin).
func TestPipeBuffersReused(t *testing.T) {
	data := bytes.Repeat([]byte{7}, pipeBlockSize)
	run := func() {
		s := newAsyncSink(io.Discard, sha256.New())
		if _, err := s.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	run()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 16 {
		run()
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 8*pipeBlockSize {
		t.Fatalf("16 sinks of 1 MiB allocated %d MiB; want their buffers reused", got>>20)
	}
}
