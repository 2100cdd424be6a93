package crypto_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
	"testing/iotest"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
)

// TestAgeDecryptsOurFiles: header object || chunks is a standard age file.
func TestAgeDecryptsOurFiles(t *testing.T) {
	x, pq := newX25519(t), newHybrid(t)
	for _, size := range testSizes {
		pt := plaintext(size, uint64(size))
		t.Run(fmt.Sprintf("X25519/%d", size), func(t *testing.T) {
			s := encrypt(t, pt, x.Recipient())
			if got := int64(len(s.payload)); got != crypto.CiphertextSize(int64(size)) {
				t.Fatalf("payload is %d bytes, CiphertextSize says %d", got, crypto.CiphertextSize(int64(size)))
			}
			checkDecrypts(t, s.file(), pt, x)
			checkRejected(t, "wrong identity", s.file(), newX25519(t))
		})
		t.Run(fmt.Sprintf("hybrid/%d", size), func(t *testing.T) {
			s := encrypt(t, pt, pq.Recipient())
			checkDecrypts(t, s.file(), pt, pq)
		})
	}
}

// TestOurChunksMatchAge: for a file written by filippo.io/age, OpenHeader
// recovers the file key and StreamWriter reproduces the payload exactly.
func TestOurChunksMatchAge(t *testing.T) {
	x, pq := newX25519(t), newHybrid(t)
	keys := []struct {
		name string
		id   age.Identity
		r    age.Recipient
	}{
		{"X25519", x, x.Recipient()},
		{"hybrid", pq, pq.Recipient()},
	}
	for _, size := range testSizes {
		for _, k := range keys {
			t.Run(fmt.Sprintf("%s/%d", k.name, size), func(t *testing.T) {
				pt := plaintext(size, uint64(size)+7)
				var buf bytes.Buffer
				w, err := age.Encrypt(&buf, k.r)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(pt); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				checkAgeFile(t, buf.Bytes(), pt, k.id)
			})
		}
	}
}

// checkAgeFile opens an age file produced elsewhere and requires our chunk
// stream for the same key and nonce to equal its payload.
func checkAgeFile(t *testing.T, file, pt []byte, id age.Identity) {
	t.Helper()
	n := headerLen(t, file) + crypto.NonceSize
	fileKey, nonce, err := crypto.OpenHeaderObject(file[:n], id)
	if err != nil {
		t.Fatal(err)
	}
	if got := chunks(t, fileKey, nonce, 0, pt, 0); !bytes.Equal(got, file[n:]) {
		t.Fatalf("chunk stream differs from age's (%d vs %d bytes)", len(got), len(file)-n)
	}
	if got, err := crypto.PlaintextSize(int64(len(file) - n)); err != nil || got != int64(len(pt)) {
		t.Fatalf("PlaintextSize = %d, %v; want %d", got, err, len(pt))
	}
}

// TestWritePatterns: how plaintext is split across Write calls must not
// change the output.
func TestWritePatterns(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	pt := plaintext(4*crypto.ChunkSize+100, 3)
	want := chunks(t, key, nonce, 0, pt, 0)
	for _, ws := range []int{1, 7, 4096, crypto.ChunkSize - 1, crypto.ChunkSize, crypto.ChunkSize + 1, 3 * crypto.ChunkSize} {
		ws := ws
		if ws == 1 {
			// One-byte writes over the first two chunks only, to keep it quick.
			small := pt[:2*crypto.ChunkSize+1]
			if got := chunks(t, key, nonce, 0, small, 1); !bytes.Equal(got, chunks(t, key, nonce, 0, small, 0)) {
				t.Fatalf("write size 1: output differs")
			}
			continue
		}
		if got := chunks(t, key, nonce, 0, pt, ws); !bytes.Equal(got, want) {
			t.Fatalf("write size %d: output differs", ws)
		}
	}
}

// TestReadFrom: io.Copy into a StreamWriter (its ReadFrom) produces the same
// chunks as Write, whatever the reads look like.
func TestReadFrom(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	for _, size := range testSizes {
		pt := plaintext(size, uint64(size)+5)
		want := chunks(t, key, nonce, 0, pt, 0)
		for _, rs := range []int{0, 1000, crypto.ChunkSize - 1, crypto.ChunkSize, crypto.ChunkSize + 1} {
			if got := chunksReadFrom(t, key, nonce, 0, pt, rs); !bytes.Equal(got, want) {
				t.Fatalf("size %d, reads of %d: output differs", size, rs)
			}
		}
		if size <= 2*crypto.ChunkSize+1 {
			if got := chunksReadFrom(t, key, nonce, 0, pt, 1); !bytes.Equal(got, want) {
				t.Fatalf("size %d, one-byte reads: output differs", size)
			}
		}
		if size > crypto.ChunkSize {
			tail := chunksReadFrom(t, key, nonce, 1, pt[crypto.ChunkSize:], 777)
			if !bytes.Equal(tail, want[encChunk:]) {
				t.Fatalf("size %d: resumed ReadFrom differs", size)
			}
		}
	}
}

// TestReadFromError: a failed read leaves the writer consistent, so the
// caller may supply the rest of the plaintext another way.
func TestReadFromError(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	pt := plaintext(3*crypto.ChunkSize+9, 6)
	want := chunks(t, key, nonce, 0, pt, 0)
	for _, cut := range []int{0, 5, crypto.ChunkSize, crypto.ChunkSize + 1, 2*crypto.ChunkSize + 3} {
		var buf bytes.Buffer
		w, _ := crypto.NewStreamWriter(&buf, key, nonce, 0)
		w.Write(pt[:1])
		fail := errors.New("read failed")
		n, err := w.ReadFrom(io.MultiReader(&shortReader{b: pt[1 : cut+1], max: 999}, iotest.ErrReader(fail)))
		if !errors.Is(err, fail) || n != int64(cut) {
			t.Fatalf("cut %d: ReadFrom = %d, %v", cut, n, err)
		}
		w.Write(pt[cut+1:])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("cut %d: output differs", cut)
		}
	}
}

// TestNoPerChunkAllocations: the hot path reuses its buffers.
func TestNoPerChunkAllocations(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	w, _ := crypto.NewStreamWriter(io.Discard, key, nonce, 0)
	p := make([]byte, 3*crypto.ChunkSize+5)
	src := &shortReader{}
	var r io.Reader = src
	w.Write(p)
	w.ReadFrom(&shortReader{b: p}) // allocates the read-ahead buffer once
	for name, f := range map[string]func(){
		"Write":         func() { w.Write(p) },
		"Write (small)": func() { w.Write(p[:1000]) },
		"ReadFrom": func() {
			src.b = p
			w.ReadFrom(r)
		},
	} {
		if n := testing.AllocsPerRun(20, f); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
}

// TestWriteEmitsOnlyKnownChunks: a full chunk is held back until more
// plaintext arrives, so it is never written as non-final by mistake.
func TestWriteEmitsOnlyKnownChunks(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	var buf bytes.Buffer
	w, _ := crypto.NewStreamWriter(&buf, key, nonce, 0)
	w.Write(make([]byte, crypto.ChunkSize))
	if buf.Len() != 0 {
		t.Fatalf("a full chunk was written before the next byte: %d bytes", buf.Len())
	}
	w.Write([]byte{1})
	if buf.Len() != encChunk {
		t.Fatalf("after one more byte: %d bytes written, want %d", buf.Len(), encChunk)
	}
	w.Write(make([]byte, 3*crypto.ChunkSize-1))
	if buf.Len() != 3*encChunk {
		t.Fatalf("after three chunks: %d bytes written, want %d", buf.Len(), 3*encChunk)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 4*encChunk {
		t.Fatalf("after Close: %d bytes written, want %d", buf.Len(), 4*encChunk)
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Error("Write after Close succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

// TestResume: starting at chunk N on the plaintext from N*ChunkSize yields
// exactly the tail of a full encryption.
func TestResume(t *testing.T) {
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	for _, size := range testSizes {
		pt := plaintext(size, uint64(size)+11)
		full := chunks(t, key, nonce, 0, pt, 0)
		nchunks := max(1, (size+crypto.ChunkSize-1)/crypto.ChunkSize)
		for n := 0; n < nchunks; n++ {
			tail := chunks(t, key, nonce, uint64(n), pt[n*crypto.ChunkSize:], 5000)
			if !bytes.Equal(tail, full[n*encChunk:]) {
				t.Fatalf("size %d, resume at chunk %d: tail differs", size, n)
			}
		}
		// Resuming past the end of the plaintext has nothing to write, and
		// an empty final chunk is only valid as chunk 0.
		if size > 0 && size%crypto.ChunkSize == 0 {
			w, _ := crypto.NewStreamWriter(new(bytes.Buffer), key, nonce, uint64(nchunks))
			if err := w.Close(); err == nil {
				t.Fatalf("size %d: empty final chunk at index %d accepted", size, nchunks)
			}
		}
	}
}

func TestNewStreamWriterArguments(t *testing.T) {
	if _, err := crypto.NewStreamWriter(new(bytes.Buffer), make([]byte, 32), make([]byte, 16), 0); err == nil {
		t.Error("32-byte file key accepted")
	}
	if _, err := crypto.NewStreamWriter(new(bytes.Buffer), make([]byte, 16), make([]byte, 12), 0); err == nil {
		t.Error("12-byte nonce accepted")
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriteErrorsAreSticky(t *testing.T) {
	w, _ := crypto.NewStreamWriter(&failWriter{after: 1}, make([]byte, 16), make([]byte, 16), 0)
	if _, err := w.Write(make([]byte, 2*crypto.ChunkSize+1)); err == nil {
		t.Fatal("write error lost")
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Fatal("Write after an error succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after an error succeeded")
	}
}

func TestCounterOverflow(t *testing.T) {
	w, _ := crypto.NewStreamWriter(new(bytes.Buffer), make([]byte, 16), make([]byte, 16), math.MaxUint64)
	if _, err := w.Write(make([]byte, crypto.ChunkSize+1)); err == nil {
		t.Fatal("chunk counter wrapped around")
	}
	w, _ = crypto.NewStreamWriter(new(bytes.Buffer), make([]byte, 16), make([]byte, 16), math.MaxUint64)
	w.Write([]byte{1})
	if err := w.Close(); err != nil {
		t.Fatalf("final chunk at the last counter: %v", err)
	}
}

// TestPayloadTamper: reordered, truncated, extended or foreign chunks must
// not decrypt.
func TestPayloadTamper(t *testing.T) {
	id := newX25519(t)
	pt := plaintext(3*crypto.ChunkSize+500, 4)
	s := encrypt(t, pt, id.Recipient())
	other := encrypt(t, pt, id.Recipient())
	checkDecrypts(t, s.file(), pt, id)

	hdr := s.obj
	chunk := func(p []byte, i int) []byte { return p[i*encChunk : min(len(p), (i+1)*encChunk)] }
	build := func(parts ...[]byte) []byte {
		f := bytes.Clone(hdr)
		for _, p := range parts {
			f = append(f, p...)
		}
		return f
	}
	p := s.payload
	c0, c1, c2, c3 := chunk(p, 0), chunk(p, 1), chunk(p, 2), chunk(p, 3)

	cases := map[string][]byte{
		"drop last chunk":             build(c0, c1, c2),
		"drop two last chunks":        build(c0, c1),
		"cut mid last chunk":          build(c0, c1, c2, c3[:len(c3)/2]),
		"cut last chunk to its tag":   build(c0, c1, c2, c3[:crypto.ChunkOverhead]),
		"cut last byte":               build(p[:len(p)-1]),
		"cut mid first chunk":         build(c0[:1000]),
		"no payload":                  build(),
		"swap chunks 0 and 1":         build(c1, c0, c2, c3),
		"swap chunks 1 and 2":         build(c0, c2, c1, c3),
		"duplicate a chunk":           build(c0, c0, c1, c2, c3),
		"chunk from another file":     build(c0, chunk(other.payload, 1), c2, c3),
		"last chunk of another file":  build(c0, c1, c2, chunk(other.payload, 3)),
		"trailing byte":               build(p, []byte{0}),
		"trailing chunk":              build(p, c3),
		"flipped bit in first chunk":  build(flip(p, 17)),
		"flipped bit in last tag":     build(flip(p, len(p)-1)),
		"flipped bit in middle chunk": build(flip(p, encChunk+crypto.ChunkSize/2)),
	}
	for name, f := range cases {
		checkRejected(t, name, f, id)
	}

	// A writer resumed with the wrong counter produces chunks that don't fit.
	wrong := chunks(t, s.fileKey, s.nonce, 2, pt[crypto.ChunkSize:], 0)
	checkRejected(t, "resumed at the wrong counter", build(c0, wrong), id)
	// The right counter fits.
	right := chunks(t, s.fileKey, s.nonce, 1, pt[crypto.ChunkSize:], 0)
	checkDecrypts(t, build(c0, right), pt, id)

	// A full final chunk must carry the last-chunk flag.
	full := plaintext(2*crypto.ChunkSize, 5)
	s = encrypt(t, full, id.Recipient())
	checkDecrypts(t, s.file(), full, id)
	hdr = s.obj
	checkRejected(t, "drop full final chunk", build(chunk(s.payload, 0)), id)
}

func flip(p []byte, i int) []byte {
	p = bytes.Clone(p)
	p[i] ^= 0x20
	return p
}

func TestSizes(t *testing.T) {
	for _, c := range []struct{ pt, ct int64 }{
		{0, 16},
		{1, 17},
		{crypto.ChunkSize, encChunk},
		{crypto.ChunkSize + 1, encChunk + 17},
		{10 * crypto.ChunkSize, 10 * encChunk},
		{200 << 30, 200<<30 + 16*(200<<30)/crypto.ChunkSize},
	} {
		if got := crypto.CiphertextSize(c.pt); got != c.ct {
			t.Errorf("CiphertextSize(%d) = %d, want %d", c.pt, got, c.ct)
		}
		if got, err := crypto.PlaintextSize(c.ct); err != nil || got != c.pt {
			t.Errorf("PlaintextSize(%d) = %d, %v; want %d", c.ct, got, err, c.pt)
		}
	}
	for _, bad := range []int64{-1, math.MinInt64, math.MaxInt64, math.MaxInt64 - 100} {
		if got := crypto.CiphertextSize(bad); got != -1 {
			t.Errorf("CiphertextSize(%d) = %d, want -1", bad, got)
		}
	}
	// The largest valid plaintext size.
	maxPT := int64(math.MaxInt64) - (math.MaxInt64/encChunk+1)*crypto.ChunkOverhead
	if ct := crypto.CiphertextSize(maxPT); ct < 0 {
		t.Errorf("CiphertextSize(%d) = %d", maxPT, ct)
	} else if pt, err := crypto.PlaintextSize(ct); err != nil || pt != maxPT {
		t.Errorf("PlaintextSize(CiphertextSize(%d)) = %d, %v", maxPT, pt, err)
	}

	// PlaintextSize accepts exactly the sizes CiphertextSize produces.
	var ranges [][2]int64
	for k := int64(0); k < 4; k++ {
		ranges = append(ranges, [2]int64{k*encChunk - 40, k*encChunk + 40})
	}
	ranges = append(ranges, [2]int64{math.MaxInt64 - 3*encChunk, math.MaxInt64 - 3*encChunk + 40})
	ranges = append(ranges, [2]int64{math.MaxInt64 - 40, math.MaxInt64})
	for _, r := range ranges {
		for c := r[0]; c <= r[1] && c >= r[0]; c++ {
			pt, err := crypto.PlaintextSize(c)
			if err != nil {
				continue
			}
			if crypto.CiphertextSize(pt) != c {
				t.Errorf("PlaintextSize(%d) = %d, but CiphertextSize(%d) = %d", c, pt, pt, crypto.CiphertextSize(pt))
			}
		}
	}
	for _, c := range []int64{-1, 0, 15, encChunk + 1, encChunk + 16, 2*encChunk + 16} {
		if _, err := crypto.PlaintextSize(c); err == nil {
			t.Errorf("PlaintextSize(%d) accepted", c)
		}
	}
	for _, pt := range []int64{0, 1, 15, 16, 17, crypto.ChunkSize, crypto.ChunkSize + 1, 3*crypto.ChunkSize - 1} {
		if got, _ := crypto.PlaintextSize(crypto.CiphertextSize(pt)); got != pt {
			t.Errorf("PlaintextSize(CiphertextSize(%d)) = %d", pt, got)
		}
	}
}

func TestStoredSegmentSize(t *testing.T) {
	for _, c := range []struct{ pt, ct int64 }{
		{crypto.ChunkSize, encChunk},
		{64 << 20, 64<<20 + 16*1024},
		{1 << 30, 1<<30 + 16*16384},
	} {
		if got, err := crypto.StoredSegmentSize(c.pt); err != nil || got != c.ct {
			t.Errorf("StoredSegmentSize(%d) = %d, %v; want %d", c.pt, got, err, c.ct)
		}
		// A segment of whole chunks in the middle of a file is exactly
		// what the chunk stream holds for that much plaintext.
		if got := crypto.CiphertextSize(c.pt); got != c.ct {
			t.Errorf("CiphertextSize(%d) = %d", c.pt, got)
		}
	}
	for _, bad := range []int64{0, -crypto.ChunkSize, 1, crypto.ChunkSize + 1, crypto.ChunkSize / 2, math.MaxInt64 / crypto.ChunkSize * crypto.ChunkSize} {
		if _, err := crypto.StoredSegmentSize(bad); err == nil {
			t.Errorf("StoredSegmentSize(%d) accepted", bad)
		}
	}
}
