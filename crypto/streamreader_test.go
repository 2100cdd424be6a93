package crypto_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
)

func streamRead(s sealed, payload []byte) ([]byte, error) {
	r, err := crypto.NewStreamReader(bytes.NewReader(payload), s.fileKey, s.nonce, int64(len(s.payload)))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = r.WriteTo(&out)
	return out.Bytes(), err
}

// TestStreamReaderRoundTrip: StreamReader returns what StreamWriter
// sealed, for sizes around chunk boundaries (a full last chunk included).
func TestStreamReaderRoundTrip(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	for _, n := range testSizes {
		pt := plaintext(n, uint64(n))
		s := encrypt(t, pt, id.Recipient())
		got, err := streamRead(s, s.payload)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: %d bytes back, err %v", n, len(got), err)
		}
	}
}

// TestStreamReaderRejectsTampering: a flipped bit, a truncated stream, a
// swapped pair of chunks and trailing bytes all fail, and nothing of a
// bad chunk is returned.
func TestStreamReaderRejectsTampering(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	pt := plaintext(3*crypto.ChunkSize+7, 5)
	s := encrypt(t, pt, id.Recipient())
	flip := bytes.Clone(s.payload)
	flip[encChunk+10] ^= 1
	swap := bytes.Clone(s.payload)
	copy(swap[:encChunk], s.payload[encChunk:2*encChunk])
	copy(swap[encChunk:2*encChunk], s.payload[:encChunk])
	for name, c := range map[string]struct {
		payload []byte
		want    string
		good    int
	}{
		"flipped":   {flip, "chunk 1 failed authentication", crypto.ChunkSize},
		"truncated": {s.payload[:len(s.payload)-1], "reading chunk 3", 3 * crypto.ChunkSize},
		"swapped":   {swap, "chunk 0 failed authentication", 0},
		"trailing":  {append(bytes.Clone(s.payload), 0), "data after the last chunk", len(pt)},
	} {
		got, err := streamRead(s, c.payload)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
		if len(got) != c.good || !bytes.Equal(got, pt[:len(got)]) {
			t.Errorf("%s: %d bytes handed out, want the %d authenticated ones", name, len(got), c.good)
		}
	}
	// A wrong ciphertext size makes the last-chunk flag wrong: it fails too.
	r, _ := crypto.NewStreamReader(bytes.NewReader(s.payload[:2*encChunk]), s.fileKey, s.nonce, 2*encChunk)
	if _, err := r.WriteTo(io.Discard); err == nil {
		t.Error("a stream cut at a chunk boundary decrypted")
	}
}

// lender is a crypto.ChunkLender over a byte slice that marks what it
// lent, so a test can see that the reader never wrote to it.
type lender struct {
	data []byte
	pos  int
}

func (l *lender) Read(p []byte) (int, error) {
	if l.pos == len(l.data) {
		return 0, io.EOF
	}
	n := copy(p, l.data[l.pos:])
	l.pos += n
	return n, nil
}

func (l *lender) Next(n int) ([]byte, error) {
	if l.pos == len(l.data) {
		return nil, io.EOF
	}
	if n > len(l.data)-l.pos {
		b := l.data[l.pos:]
		l.pos = len(l.data)
		return b, io.ErrUnexpectedEOF
	}
	b := l.data[l.pos : l.pos+n : l.pos+n]
	l.pos += n
	return b, nil
}

// spareWriter is a bytes.Buffer with AvailableBuffer, as the fetch's sink.
type spareWriter struct{ bytes.Buffer }

// TestStreamReaderFromLender: a source that lends its bytes in place is
// decrypted without being written to, with the same results as a plain
// reader, tampering included.
func TestStreamReaderFromLender(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	read := func(s sealed, payload []byte, size int64) ([]byte, error) {
		r, err := crypto.NewStreamReader(&lender{data: payload}, s.fileKey, s.nonce, size)
		if err != nil {
			return nil, err
		}
		var out spareWriter
		_, err = r.WriteTo(&out)
		return out.Bytes(), err
	}
	for _, n := range testSizes {
		pt := plaintext(n, uint64(n))
		s := encrypt(t, pt, id.Recipient())
		payload := bytes.Clone(s.payload)
		got, err := read(s, payload, int64(len(payload)))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: %d bytes back, err %v", n, len(got), err)
		}
		if !bytes.Equal(payload, s.payload) {
			t.Fatalf("size %d: the lent ciphertext was written to", n)
		}
	}
	pt := plaintext(3*crypto.ChunkSize+7, 5)
	s := encrypt(t, pt, id.Recipient())
	flip := bytes.Clone(s.payload)
	flip[encChunk+10] ^= 1
	for name, c := range map[string]struct {
		payload []byte
		size    int64
		want    string
		good    int
	}{
		"flipped":   {flip, int64(len(flip)), "chunk 1 failed authentication", crypto.ChunkSize},
		"truncated": {s.payload[:len(s.payload)-1], int64(len(s.payload)), "reading chunk 3", 3 * crypto.ChunkSize},
		"trailing":  {append(bytes.Clone(s.payload), 0), int64(len(s.payload)), "data after the last chunk", len(pt)},
		"cut":       {s.payload[:2*encChunk], 2 * encChunk, "chunk 1 failed authentication", crypto.ChunkSize},
	} {
		got, err := read(s, c.payload, c.size)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
		if len(got) != c.good || !bytes.Equal(got, pt[:len(got)]) {
			t.Errorf("%s: %d bytes handed out, want the %d authenticated ones", name, len(got), c.good)
		}
	}
}
