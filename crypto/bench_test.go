package crypto_test

import (
	"bytes"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
)

const benchSize = 64 << 20

// BenchmarkStreamWriter encrypts 64 MiB, written in one call ("bulk") and in
// 32 KiB pieces as io.Copy would ("copy32k").
func BenchmarkStreamWriter(b *testing.B) {
	pt := plaintext(benchSize, 1)
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	for _, c := range []struct {
		name  string
		piece int
	}{{"bulk", benchSize}, {"copy32k", 32 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				w, err := crypto.NewStreamWriter(io.Discard, key, nonce, 0)
				if err != nil {
					b.Fatal(err)
				}
				for p := pt; len(p) > 0; p = p[min(c.piece, len(p)):] {
					w.Write(p[:min(c.piece, len(p))])
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamWriterReadFrom is io.Copy from a reader without WriteTo,
// like an *os.File, which lands in StreamWriter.ReadFrom.
func BenchmarkStreamWriterReadFrom(b *testing.B) {
	pt := plaintext(benchSize, 1)
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		w, err := crypto.NewStreamWriter(io.Discard, key, nonce, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, &shortReader{b: pt}); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAgeEncrypt is the baseline: filippo.io/age's Encrypt of the same
// bytes, header included.
func BenchmarkAgeEncrypt(b *testing.B) {
	pt := plaintext(benchSize, 1)
	r := newX25519(b).Recipient()
	for _, c := range []struct {
		name  string
		piece int
	}{{"bulk", benchSize}, {"copy32k", 32 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				w, err := age.Encrypt(io.Discard, r)
				if err != nil {
					b.Fatal(err)
				}
				for p := pt; len(p) > 0; p = p[min(c.piece, len(p)):] {
					w.Write(p[:min(c.piece, len(p))])
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPayloadOpen authenticates and decrypts 64 MiB of chunks through
// PayloadReaderAt, as a fetch does after the pieces' hashes matched.
func BenchmarkPayloadOpen(b *testing.B) {
	pt := plaintext(benchSize, 1)
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	var ct bytes.Buffer
	w, err := crypto.NewStreamWriter(&ct, key, nonce, 0)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(pt)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	src := bytes.NewReader(ct.Bytes())
	buf := make([]byte, 4<<20)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := crypto.NewPayloadReaderAt(key, nonce, src, int64(ct.Len()))
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < benchSize; off += int64(len(buf)) {
			if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}
