package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// s3TestTargets returns n S3Targets on fresh buckets of the server named by
// DOZO_TEST_S3_ENDPOINT (a URL: http://127.0.0.1:PORT) / _ACCESS_KEY /
// _SECRET_KEY, or skips. Target i is in domain "dom<i%3>" so placement
// behaves as on the three-server stack.
func s3TestTargets(t testing.TB, n int) []*S3Target {
	t.Helper()
	ep, ak, sk := os.Getenv("DOZO_TEST_S3_ENDPOINT"), os.Getenv("DOZO_TEST_S3_ACCESS_KEY"), os.Getenv("DOZO_TEST_S3_SECRET_KEY")
	if ep == "" || ak == "" || sk == "" {
		t.Skip("DOZO_TEST_S3_ENDPOINT, DOZO_TEST_S3_ACCESS_KEY, DOZO_TEST_S3_SECRET_KEY not set")
	}
	ctx := context.Background()
	stamp := time.Now().UnixNano()
	var out []*S3Target
	for i := range n {
		s, err := NewS3Target(S3Config{
			ID: fmt.Sprintf("t%d", i), Domain: fmt.Sprintf("dom%d", i%3),
			Endpoint: ep, AccessKey: ak, SecretKey: sk,
			Bucket: fmt.Sprintf("dozo-test-%x-%d", stamp, i), Region: os.Getenv("DOZO_TEST_S3_REGION"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(ctx); err != nil { // idempotent
			t.Fatal(err)
		}
		t.Cleanup(func() {
			var keys []string
			s.List(ctx, "", func(oi ObjectInfo) error { keys = append(keys, oi.Key); return nil })
			for _, k := range keys {
				s.Delete(ctx, k)
			}
			s.Client().RemoveBucket(ctx, s.Bucket())
		})
		out = append(out, s)
	}
	return out
}

func TestS3Target(t *testing.T) {
	s := s3TestTargets(t, 1)[0]
	ctx := context.Background()
	key := PieceKey("ds", "f", 3, 1)
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat missing: %v", err)
	}
	if _, err := s.Get(ctx, key, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete missing: %v", err)
	}
	if err := s.Put(ctx, "../x", strings.NewReader("x"), 1); err == nil {
		t.Error("bad key accepted")
	}
	if err := s.Put(ctx, key, strings.NewReader("hello world"), 11); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, -1, "hello world"}, {6, -1, "world"}, {0, 5, "hello"}, {6, 100, "world"}, {3, 0, ""}, {0, 1, "h"}} {
		rc, err := s.Get(ctx, key, c.off, c.n)
		if err != nil {
			t.Fatalf("Get(%d,%d): %v", c.off, c.n, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != c.want {
			t.Errorf("Get(%d,%d) = %q, want %q", c.off, c.n, b, c.want)
		}
	}
	oi, err := s.Stat(ctx, key)
	if err != nil || oi.Size != 11 || oi.Key != key || oi.ETag == "" {
		t.Errorf("Stat = %+v, %v", oi, err)
	}
	// A multipart upload (piece larger than the part size).
	big := randBytes(9, minPartSize*2+123)
	s2, _ := NewS3Target(S3Config{ID: "big", Domain: "d", Endpoint: os.Getenv("DOZO_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("DOZO_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("DOZO_TEST_S3_SECRET_KEY"),
		Bucket: s.Bucket(), PartSize: minPartSize})
	if err := s2.Put(ctx, "dozo/v1/ds/big", bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "dozo/v1/ds/big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, big) {
		t.Error("multipart object differs")
	}
	var keys []string
	if err := s.List(ctx, "dozo/v1/ds/", func(oi ObjectInfo) error { keys = append(keys, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "dozo/v1/ds/big,"+key {
		t.Errorf("List = %q", keys)
	}
	stop := errors.New("stop")
	if err := s.List(ctx, "", func(ObjectInfo) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("List error: %v", err)
	}
	// Presigned URLs work with a plain HTTP client.
	u, err := s.PresignPut(ctx, "dozo/v1/ds/presigned", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, u.String(), strings.NewReader("via presign"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %v %v", err, resp)
	}
	resp.Body.Close()
	u, err = s.PresignGet(ctx, "dozo/v1/ds/presigned", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "via presign" {
		t.Errorf("presigned GET = %q", b)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete: %v", err)
	}
}

func TestS3RoundTrip(t *testing.T) {
	s3s := s3TestTargets(t, 6)
	targets := make([]Target, len(s3s))
	for i, s := range s3s {
		targets[i] = s
	}
	l := Layout{K: 4, M: 2, SegmentSize: 1 << 20}
	data := randBytes(21, 5<<20+777)
	m := writeStream(t, targets, l, "f", data)
	auth := NewHMACAuthenticator([]byte("s3 test key"))
	if err := m.Sign(context.Background(), auth); err != nil {
		t.Fatal(err)
	}
	// Lose a whole failure domain: every segment is still readable.
	ctx := context.Background()
	for i, seg := range m.Segments {
		for j, p := range seg.Pieces {
			if p.Target == "t0" || p.Target == "t3" {
				if err := targets[map[string]int{"t0": 0, "t3": 3}[p.Target]].Delete(ctx, PieceKey("ds1", "f", i, j)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	r, err := NewReader(ctx, m, ReaderOptions{Targets: targets, Authenticator: auth})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("stream differs")
	}
	st := r.Stats()
	t.Logf("stats after losing domain dom0: %+v", st)
	if st.SegmentsDegraded == 0 || st.PiecesBad == 0 {
		t.Errorf("degradation not reported: %+v", st)
	}
	p := make([]byte, 100000)
	if _, err := r.ReadAt(p, 3<<20-5000); err != nil || !bytes.Equal(p, data[3<<20-5000:3<<20-5000+100000]) {
		t.Errorf("ReadAt: %v", err)
	}
}

func s3BenchTargets(b *testing.B) []Target {
	var ts []Target
	for _, s := range s3TestTargets(b, 6) {
		ts = append(ts, s)
	}
	return ts
}

// BenchmarkWriterS3 and BenchmarkReaderS3 store and read a 256 MiB stream
// 4+2 on six buckets of the DOZO_TEST_S3_* server.
func BenchmarkWriterS3(b *testing.B) {
	benchWriter(b, s3BenchTargets(b))
}

func BenchmarkReaderS3(b *testing.B) {
	targets := s3BenchTargets(b)
	m := writeStream(b, targets, DefaultLayout(), "f", randBytes(5, benchStream))
	b.SetBytes(benchStream)
	for b.Loop() {
		r, err := NewReader(context.Background(), m, ReaderOptions{Targets: targets})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEnsureBucketUnreachable: a server that does not answer is told
// apart from one that answers with an error, so dozod can start with the
// target down instead of not at all.
func TestEnsureBucketUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	tg, err := NewS3Target(S3Config{ID: "gone", Domain: "d", Endpoint: "http://" + addr, Bucket: "dozo", AccessKey: "k", SecretKey: "secretsecret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tg.EnsureBucket(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("EnsureBucket on a closed port: %v, want ErrUnreachable", err)
	}
}
