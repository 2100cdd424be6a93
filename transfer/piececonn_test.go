package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dozo-vault/dozo/api"
)

// pieceConn sends exactly the body net/http gives it, whichever way it
// takes: from memory in place, or through its buffer when the reader
// holds more than the limit or is of another kind.
func TestPieceConnSendsTheBody(t *testing.T) {
	data := make([]byte, 3<<20+5)
	rand.Read(data)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for name, c := range map[string]struct {
		body io.Reader
		n    int64
	}{
		"in memory":                {memBody{bytes.NewReader(data)}, int64(len(data))},
		"in memory past the limit": {memBody{bytes.NewReader(data)}, int64(len(data)) - 100},
		"other reader":             {io.MultiReader(bytes.NewReader(data)), int64(len(data))},
	} {
		got := make(chan []byte, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			b, _ := io.ReadAll(s)
			s.Close()
			got <- b
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		lr := &io.LimitedReader{R: c.body, N: c.n}
		n, err := pieceConn{conn.(*net.TCPConn)}.ReadFrom(lr)
		conn.Close()
		b := <-got
		if err != nil || n != c.n || lr.N != 0 || !bytes.Equal(b, data[:c.n]) {
			t.Errorf("%s: sent %d of %d (limit left %d), %v; peer got %d bytes, equal %v", name, n, c.n, lr.N, err, len(b), bytes.Equal(b, data[:c.n]))
		}
	}
}

// A piece PUT through the storage transport reaches the connection as a
// body in memory, which it writes from where it lies: net/http does not
// hide it behind a wrapper.
func TestPiecePutWrittenInPlace(t *testing.T) {
	data := make([]byte, 2<<20+3)
	rand.Read(data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(b, data) {
			t.Errorf("the server got %d bytes (%v), not the piece", len(b), err)
		}
	}))
	defer srv.Close()
	var inPlace int64
	inPlaceHook = func(n int64) { inPlace += n }
	defer func() { inPlaceHook = nil }()
	tg := &PresignedTarget{id: "t1", http: &http.Client{Transport: storageTransport()},
		presign: func(ctx context.Context, target, key string) (*api.PresignResponse, error) {
			return &api.PresignResponse{URL: srv.URL + "/" + key}, nil
		}}
	if err := tg.Put(t.Context(), "dozo/v1/DS1/f1/seg-00000000/piece-0", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// net/http may send the first bytes with the headers; the rest goes
	// from memory.
	if inPlace < int64(len(data))-64<<10 {
		t.Errorf("%d of %d bytes written in place", inPlace, len(data))
	}
}
