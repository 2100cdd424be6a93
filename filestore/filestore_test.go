package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

func dirTargets(t *testing.T) []storage.Target {
	var ts []storage.Target
	base := t.TempDir()
	for s := 1; s <= 3; s++ {
		for _, b := range []string{"a", "b"} {
			id := fmt.Sprintf("s%d-%s", s, b)
			dir := filepath.Join(base, id)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			d, err := storage.NewDirTarget(id, fmt.Sprintf("s%d", s), dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			ts = append(ts, d)
		}
	}
	return ts
}

func random(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

const seg = 4 * crypto.ChunkSize

func TestWriteOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	targets := dirTargets(t)
	id, _ := age.GenerateX25519Identity()
	layout, err := filestore.Layout(4, 2, seg)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, seg - 1, seg, 3*seg + 12345} {
		plain := random(size, byte(size))
		fid := fmt.Sprintf("f%d", size)
		res, err := filestore.Write(ctx, bytes.NewReader(plain), filestore.WriteOptions{
			DatasetID: "ds", FileID: fid, Layout: layout, Targets: targets,
			Recipients: []age.Recipient{id.Recipient()},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.PlainBytes != int64(size) {
			t.Fatalf("PlainBytes %d, want %d", res.PlainBytes, size)
		}
		m, err := storage.NewManifest("ds", fid, layout, res.HashAlg, res.Segments)
		if err != nil {
			t.Fatal(err)
		}
		f, err := filestore.Open(ctx, m, res.HeaderObject, filestore.ReadOptions{Targets: targets}, id)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := f.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("size %d: WriteTo differs (err %v)", size, err)
		}
		if size > 10 {
			got := make([]byte, 10)
			if _, err := f.ReadAt(got, int64(size/2)); err != nil || !bytes.Equal(got, plain[size/2:size/2+10]) {
				t.Fatalf("size %d: ReadAt differs (err %v)", size, err)
			}
		}
		// A stranger's identity does not open the header.
		other, _ := age.GenerateX25519Identity()
		if _, err := filestore.Open(ctx, m, res.HeaderObject, filestore.ReadOptions{Targets: targets}, other); err == nil {
			t.Fatal("opened with a stranger's identity")
		}
	}
}

// failAfter is a source that fails once n bytes were read.
type failAfter struct {
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk read error")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestResumeAfterSourceFailure: a write that dies mid-file keeps its
// committed segments; resuming with the same key and nonce at the next
// segment yields a file identical to an uninterrupted one.
func TestResumeAfterSourceFailure(t *testing.T) {
	ctx := context.Background()
	targets := dirTargets(t)
	id, _ := age.GenerateX25519Identity()
	layout, _ := filestore.Layout(4, 2, seg)
	plain := random(5*seg+777, 7)
	key, _ := crypto.NewFileKey()
	nonce, _ := crypto.NewNonce()
	hdr, err := crypto.NewHeaderObject(key, nonce, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	var committed []storage.SegmentMeta
	_, err = filestore.Write(ctx, &failAfter{bytes.NewReader(plain), 2*seg + 100}, filestore.WriteOptions{
		DatasetID: "ds", FileID: "f", Layout: layout, Targets: targets, FileKey: key, Nonce: nonce,
		OnSegment: func(s storage.SegmentMeta) error { committed = append(committed, s); return nil },
	})
	if err == nil {
		t.Fatal("write from a failing source succeeded")
	}
	if len(committed) != 2 {
		t.Fatalf("%d segments committed before the failure, want 2", len(committed))
	}
	res, err := filestore.Write(ctx, bytes.NewReader(plain[2*seg:]), filestore.WriteOptions{
		DatasetID: "ds", FileID: "f", Layout: layout, Targets: targets, FileKey: key, Nonce: nonce,
		StartSegment: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := storage.NewManifest("ds", "f", layout, res.HashAlg, append(committed, res.Segments...))
	if err != nil {
		t.Fatal(err)
	}
	f, err := filestore.Open(ctx, m, hdr, filestore.ReadOptions{Targets: targets}, id)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := f.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), plain) {
		t.Fatalf("resumed file differs (err %v)", err)
	}
}

func TestMetadataCopiesPerDomain(t *testing.T) {
	ctx := context.Background()
	targets := dirTargets(t)
	id, _ := age.GenerateX25519Identity()
	layout, _ := filestore.Layout(4, 2, seg)
	res, err := filestore.Write(ctx, bytes.NewReader(random(seg, 1)), filestore.WriteOptions{
		DatasetID: "ds", FileID: "f", Layout: layout, Targets: targets, Recipients: []age.Recipient{id.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := storage.NewManifest("ds", "f", layout, res.HashAlg, res.Segments)
	if err != nil {
		t.Fatal(err)
	}
	auth := storage.NewHMACAuthenticator([]byte("0123456789abcdef0123456789abcdef"))
	if err := filestore.PutMetadata(ctx, targets, m, res.HeaderObject); err == nil {
		t.Fatal("unsigned manifest stored")
	}
	if err := m.Sign(ctx, auth); err != nil {
		t.Fatal(err)
	}
	if err := filestore.PutMetadata(ctx, targets, m, res.HeaderObject); err != nil {
		t.Fatal(err)
	}
	copies := 0
	for _, tg := range targets {
		if _, err := tg.Stat(ctx, storage.ManifestKey("ds", "f")); err == nil {
			copies++
		}
	}
	if copies != 3 {
		t.Fatalf("%d manifest copies, want one per domain (3)", copies)
	}
	// The first domain's copy is tampered with: the next one is used.
	first := targets[0]
	bad := []byte(`{"version":1}`)
	if err := first.Put(ctx, storage.ManifestKey("ds", "f"), bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	got, hdr, err := filestore.GetMetadata(ctx, targets, auth, "ds", "f")
	if err != nil || got.MAC != m.MAC || !bytes.Equal(hdr, res.HeaderObject) {
		t.Fatalf("GetMetadata: %v", err)
	}
	if _, _, err := filestore.GetMetadata(ctx, targets, storage.NewHMACAuthenticator([]byte("another key, another key, 32 by")), "ds", "f"); err == nil {
		t.Fatal("manifest verified under another key")
	}
}

// gatedTarget holds every Put until want Puts are in flight at once (or
// a deadlock guard gives up), and records the keys put, in order.
type gatedTarget struct {
	storage.Target
	g    *gate
	fail error
}

type gate struct {
	mu       sync.Mutex
	inFlight int
	want     int
	met      bool
	open     chan struct{}
	keys     map[string][]string // target id -> keys in order
}

func (t *gatedTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	g := t.g
	g.mu.Lock()
	g.inFlight++
	if g.inFlight >= g.want && !g.met {
		g.met = true
		close(g.open)
	}
	g.mu.Unlock()
	select {
	case <-g.open:
	case <-time.After(10 * time.Second): // deadlock guard: the writes were not concurrent
	}
	g.mu.Lock()
	g.inFlight--
	g.keys[t.ID()] = append(g.keys[t.ID()], key)
	g.mu.Unlock()
	if t.fail != nil {
		return t.fail
	}
	return t.Target.Put(ctx, key, r, size)
}

// TestMetadataDomainsAtOnce: the metadata of a file is written to the
// failure domains at once, the header before the manifest on each, and a
// failed domain is named while the others get their copies.
func TestMetadataDomainsAtOnce(t *testing.T) {
	ctx := context.Background()
	g := &gate{want: 3, open: make(chan struct{}), keys: map[string][]string{}}
	broken := errors.New("disk on fire")
	var targets []storage.Target
	for i, tg := range dirTargets(t) {
		gt := &gatedTarget{Target: tg, g: g}
		if i == 2 { // s2-a, the second domain's copy
			gt.fail = broken
		}
		targets = append(targets, gt)
	}
	layout, _ := filestore.Layout(4, 2, seg)
	m, err := storage.NewManifest("ds", "f", layout, storage.DefaultHashAlg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(ctx, storage.NewHMACAuthenticator([]byte("0123456789abcdef0123456789abcdef"))); err != nil {
		t.Fatal(err)
	}
	err = filestore.PutMetadata(ctx, targets, m, []byte("header"))
	var te *filestore.TargetError
	if !errors.As(err, &te) || te.Target != "s2-a" || !errors.Is(err, broken) {
		t.Fatalf("PutMetadata with s2-a failing: %v, want a TargetError naming s2-a", err)
	}
	if !g.met {
		t.Fatal("the three domains were not written at once")
	}
	for _, id := range []string{"s1-a", "s3-a"} {
		if k := g.keys[id]; len(k) != 2 || k[0] != storage.HeaderKey("ds", "f") || k[1] != storage.ManifestKey("ds", "f") {
			t.Errorf("%s got %q, want the header then the manifest", id, k)
		}
	}
	if k := g.keys["s2-a"]; len(k) != 1 {
		t.Errorf("s2-a got %q, want the header only (its write failed)", k)
	}
	for _, id := range []string{"s1-b", "s2-b", "s3-b"} {
		if k := g.keys[id]; len(k) != 0 {
			t.Errorf("%s got %q: one copy per domain only", id, k)
		}
	}

	g2 := &gate{want: 3, open: make(chan struct{}), keys: map[string][]string{}}
	for _, tg := range targets {
		tg.(*gatedTarget).g = g2
	}
	err = filestore.PutFileInfo(ctx, targets, "ds", "f", []byte("sealed"))
	if !errors.As(err, &te) || te.Target != "s2-a" || !strings.Contains(err.Error(), "file info of f on s2-a") {
		t.Fatalf("PutFileInfo with s2-a failing: %v", err)
	}
	if !g2.met || len(g2.keys["s1-a"]) != 1 || len(g2.keys["s3-a"]) != 1 {
		t.Fatalf("file info not written to the domains at once: %v", g2.keys)
	}
}
