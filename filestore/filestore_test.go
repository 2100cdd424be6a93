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
	"testing"

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
