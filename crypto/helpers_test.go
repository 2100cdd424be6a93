package crypto_test

import (
	"bytes"
	"io"
	mrand "math/rand/v2"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
)

const encChunk = crypto.ChunkSize + crypto.ChunkOverhead

// testSizes are plaintext sizes around every chunk boundary case.
var testSizes = []int{
	0, 1,
	crypto.ChunkSize - 1, crypto.ChunkSize, crypto.ChunkSize + 1,
	2 * crypto.ChunkSize, 3*crypto.ChunkSize + 7, 5 * crypto.ChunkSize,
}

// plaintext returns n deterministic pseudo-random bytes.
func plaintext(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	r.Read(b)
	return b
}

// sealed is a file as dozo stores it.
type sealed struct {
	obj, payload   []byte // header object and chunk stream
	fileKey, nonce []byte
}

// file returns the standard age file: header object || chunks.
func (s sealed) file() []byte {
	return append(append([]byte{}, s.obj...), s.payload...)
}

func encrypt(t testing.TB, pt []byte, recipients ...age.Recipient) sealed {
	t.Helper()
	fileKey, err := crypto.NewFileKey()
	if err != nil {
		t.Fatal(err)
	}
	nonce, err := crypto.NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	obj, err := crypto.NewHeaderObject(fileKey, nonce, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	return sealed{obj: obj, payload: chunks(t, fileKey, nonce, 0, pt, 0), fileKey: fileKey, nonce: nonce}
}

// chunks runs a StreamWriter from firstChunk over pt, in writes of
// writeSize bytes (all at once if 0).
func chunks(t testing.TB, fileKey, nonce []byte, firstChunk uint64, pt []byte, writeSize int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := crypto.NewStreamWriter(&buf, fileKey, nonce, firstChunk)
	if err != nil {
		t.Fatal(err)
	}
	if writeSize == 0 {
		writeSize = max(1, len(pt))
	}
	for p := pt; len(p) > 0; {
		n := min(writeSize, len(p))
		if m, err := w.Write(p[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v; want %d", m, err, n)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ageDecrypt decrypts a whole file with filippo.io/age's streaming reader.
func ageDecrypt(file []byte, ids ...age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(file), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// ageDecryptAt decrypts a whole file with filippo.io/age's random-access
// reader, which authenticates the final chunk up front.
func ageDecryptAt(file []byte, ids ...age.Identity) ([]byte, error) {
	r, size, err := age.DecryptReaderAt(bytes.NewReader(file), int64(len(file)), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.NewSectionReader(r, 0, size))
}

// checkDecrypts requires both age readers to return pt.
func checkDecrypts(t *testing.T, file, pt []byte, ids ...age.Identity) {
	t.Helper()
	for name, dec := range map[string]func([]byte, ...age.Identity) ([]byte, error){
		"Decrypt": ageDecrypt, "DecryptReaderAt": ageDecryptAt,
	} {
		got, err := dec(file, ids...)
		if err != nil {
			t.Fatalf("age.%s: %v", name, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("age.%s: plaintext differs (%d bytes, want %d)", name, len(got), len(pt))
		}
	}
}

// checkRejected requires both age readers to fail on file.
func checkRejected(t *testing.T, what string, file []byte, ids ...age.Identity) {
	t.Helper()
	if _, err := ageDecrypt(file, ids...); err == nil {
		t.Errorf("%s: age.Decrypt accepted it", what)
	}
	if _, err := ageDecryptAt(file, ids...); err == nil {
		t.Errorf("%s: age.DecryptReaderAt accepted it", what)
	}
}

func newX25519(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newHybrid(t testing.TB) *age.HybridIdentity {
	t.Helper()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// headerLen returns the length of the age header at the start of file.
func headerLen(t testing.TB, file []byte) int {
	t.Helper()
	h, err := age.ExtractHeader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	return len(h)
}

// chunksReadFrom is chunks through StreamWriter.ReadFrom, with src
// returning reads of at most readSize bytes (unbounded if 0).
func chunksReadFrom(t testing.TB, fileKey, nonce []byte, firstChunk uint64, pt []byte, readSize int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := crypto.NewStreamWriter(&buf, fileKey, nonce, firstChunk)
	if err != nil {
		t.Fatal(err)
	}
	var src io.Reader = &shortReader{b: pt, max: readSize}
	if n, err := io.Copy(w, src); err != nil || n != int64(len(pt)) {
		t.Fatalf("io.Copy = %d, %v; want %d", n, err, len(pt))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// shortReader returns at most max bytes per Read, and io.EOF together with
// the last bytes, as some readers do. It has no WriteTo, so io.Copy uses
// the writer's ReadFrom.
type shortReader struct {
	b   []byte
	max int
}

func (r *shortReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if r.max > 0 && len(p) > r.max {
		p = p[:r.max]
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	if len(r.b) == 0 {
		return n, io.EOF
	}
	return n, nil
}
