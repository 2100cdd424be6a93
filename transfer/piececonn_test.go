package transfer

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
)

// pieceConn sends exactly the body net/http gives it, whichever way it
// takes: from a bytes.Reader in place, or through its buffer when the
// reader holds more than the limit or is of another kind.
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
		"bytes.Reader":                {bytes.NewReader(data), int64(len(data))},
		"bytes.Reader past the limit": {bytes.NewReader(data), int64(len(data)) - 100},
		"other reader":                {io.MultiReader(bytes.NewReader(data)), int64(len(data))},
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
