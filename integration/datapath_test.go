package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

const mib = 1 << 20

// randomReader is a fast deterministic source of incompressible bytes.
func randomReader(seed uint64, size int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return io.LimitReader(rand.NewChaCha8(s), size)
}

func sha256Of(t testing.TB, r io.Reader) [32]byte {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// dataset is a Transit key plus the ids a test writes under.
type dataset struct {
	id  string
	key string
	vc  *vault.Client
}

func newDataset(t testing.TB, s *stack) *dataset {
	t.Helper()
	id := uniqueName("ds")
	d := &dataset{id: id, key: "dozo-" + id, vc: s.vault(t)}
	if err := d.vc.CreateKey(testContext(t), d.key); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *dataset) auth() storage.Authenticator { return vault.TransitHMAC{Keys: d.vc, Key: d.key} }

// storedFile is what writeFile leaves behind.
type storedFile struct {
	m      *storage.Manifest
	header []byte
	size   int64
}

// writeFile encrypts src to the dataset's Transit key (bound to fileID),
// erasure-codes it onto targets and stores the signed manifest and header.
func writeFile(t testing.TB, ctx context.Context, d *dataset, targets []storage.Target, fileID string, src io.Reader, plainSegment int64) *storedFile {
	t.Helper()
	layout, err := filestore.Layout(4, 2, plainSegment)
	if err != nil {
		t.Fatal(err)
	}
	res, err := filestore.Write(ctx, src, filestore.WriteOptions{
		DatasetID:  d.id,
		FileID:     fileID,
		Layout:     layout,
		Targets:    targets,
		Recipients: []age.Recipient{crypto.NewTransitRecipient(ctx, d.vc, d.key, fileID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := storage.NewManifest(d.id, fileID, layout, res.HashAlg, res.Segments)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(ctx, d.auth()); err != nil {
		t.Fatal(err)
	}
	if err := filestore.PutMetadata(ctx, targets, m, res.HeaderObject); err != nil {
		t.Fatal(err)
	}
	return &storedFile{m: m, header: res.HeaderObject, size: res.PlainBytes}
}

func openFile(t testing.TB, ctx context.Context, d *dataset, targets []storage.Target, fileID string) *filestore.File {
	t.Helper()
	m, hdr, err := filestore.GetMetadata(ctx, targets, d.auth(), d.id, fileID)
	if err != nil {
		t.Fatal(err)
	}
	f, err := filestore.Open(ctx, m, hdr, filestore.ReadOptions{Targets: targets},
		crypto.NewTransitIdentity(ctx, d.vc, d.key, fileID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestRoundTrip200MiB writes 200 MiB of random bytes through crypto and
// storage onto the three MinIO servers, reads them back byte-identical, and
// again with one whole server stopped.
func TestRoundTrip200MiB(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	d := newDataset(t, s)
	targets := s.targets(t)
	const size = 200 * mib
	want := sha256Of(t, randomReader(1, size))
	writeFile(t, ctx, d, targets, "big", randomReader(1, size), filestore.DefaultPlainSegmentSize)

	f := openFile(t, ctx, d, targets, "big")
	if f.Size() != size {
		t.Fatalf("size %d, want %d", f.Size(), size)
	}
	h := sha256.New()
	if n, err := f.WriteTo(h); err != nil || n != size {
		t.Fatalf("read back: n=%d err=%v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("read back differs from what was written")
	}
	segs := int64((size + filestore.DefaultPlainSegmentSize - 1) / filestore.DefaultPlainSegmentSize)
	if st := f.Stats(); st.PiecesBad != 0 || st.SegmentsRead != segs {
		t.Fatalf("healthy read stats %+v: want %d segments, no bad pieces", st, segs)
	}

	for server := 1; server <= 3; server++ {
		restart := s.stopMinio(t, server)
		f := openFile(t, ctx, d, targets, "big")
		h.Reset()
		if _, err := f.WriteTo(h); err != nil {
			t.Fatalf("read with minio%d down: %v", server, err)
		}
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("read with minio%d down differs", server)
		}
		st := f.Stats()
		if st.PiecesBad == 0 || st.PiecesReconstructed == 0 {
			t.Fatalf("minio%d down but stats show no degraded read: %+v", server, st)
		}
		restart()
	}
}

// corruptObject rewrites an object with one bit flipped, straight on the
// server with admin credentials, as bit rot would.
func corruptObject(t testing.TB, ctx context.Context, tg storage.Target, key string) {
	t.Helper()
	rc, err := tg.Get(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := tg.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

func targetByID(t testing.TB, targets []storage.Target, id string) storage.Target {
	for _, tg := range targets {
		if tg.ID() == id {
			return tg
		}
	}
	t.Fatalf("no target %q", id)
	return nil
}

// TestPieceLoss: two bad pieces of a segment are repaired from parity on
// the fly; three make the read fail with an error naming the segment.
func TestPieceLoss(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	d := newDataset(t, s)
	targets := s.targets(t)
	const size, seg = 5*mib + 12345, 1 * mib
	want := sha256Of(t, randomReader(2, size))
	sf := writeFile(t, ctx, d, targets, "lossy", randomReader(2, size), seg)
	if len(sf.m.Segments) != 6 {
		t.Fatalf("%d segments, want 6", len(sf.m.Segments))
	}
	const victim = 2
	pieces := sf.m.Segments[victim].Pieces
	key := func(p int) string { return storage.PieceKey(d.id, "lossy", victim, p) }
	// One data piece deleted, one data piece corrupted.
	if err := targetByID(t, targets, pieces[0].Target).Delete(ctx, key(0)); err != nil {
		t.Fatal(err)
	}
	corruptObject(t, ctx, targetByID(t, targets, pieces[3].Target), key(3))

	f := openFile(t, ctx, d, targets, "lossy")
	var degraded []int
	f2, err := filestore.Open(ctx, sf.m, sf.header, filestore.ReadOptions{Targets: targets,
		OnDegraded: func(seg int, _ []storage.PieceFailure) { degraded = append(degraded, seg) }},
		crypto.NewTransitIdentity(ctx, d.vc, d.key, "lossy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ff := range []*filestore.File{f, f2} {
		if got := sha256Of(t, io.NewSectionReader(ff, 0, ff.Size())); got != want {
			t.Fatal("read with two bad pieces differs")
		}
	}
	if st := f.Stats(); st.PiecesBad != 2 || st.SegmentsDegraded != 1 {
		t.Fatalf("stats %+v: want exactly 2 bad pieces in 1 degraded segment", st)
	}
	if len(degraded) != 1 || degraded[0] != victim {
		t.Fatalf("OnDegraded saw segments %v, want [%d]", degraded, victim)
	}

	// A third bad piece (parity) exceeds m=2.
	corruptObject(t, ctx, targetByID(t, targets, pieces[4].Target), key(4))
	f3 := openFile(t, ctx, d, targets, "lossy")
	_, err = io.Copy(io.Discard, io.NewSectionReader(f3, 0, f3.Size()))
	var se *storage.SegmentError
	if !errors.As(err, &se) || se.Segment != victim || se.Usable != 3 {
		t.Fatalf("got %v, want a SegmentError for segment %d with 3 usable pieces", err, victim)
	}
	if !strings.Contains(err.Error(), "segment 2") {
		t.Fatalf("error %q does not name the segment", err)
	}
	// The sequential path fails the same way, without writing bad bytes.
	if _, err := f3.WriteTo(io.Discard); !errors.As(err, &se) {
		t.Fatalf("WriteTo: got %v, want a SegmentError", err)
	}
}

// TestRangeRead: a 1 MiB range from the middle reads back correctly and
// fetches only the segments covering it.
func TestRangeRead(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	d := newDataset(t, s)
	targets := s.targets(t)
	const size, seg = 64 * mib, 4 * mib
	src, err := io.ReadAll(randomReader(3, size))
	if err != nil {
		t.Fatal(err)
	}
	sf := writeFile(t, ctx, d, targets, "ranged", bytes.NewReader(src), seg)
	pieceSize := sf.m.Segments[0].PieceSize
	for _, tc := range []struct {
		off      int64
		segments int64
	}{
		{off: 30*mib + 123, segments: 1},        // inside segment 7
		{off: 31*mib + mib/2, segments: 2},      // across segments 7 and 8
		{off: size - mib, segments: 1},          // the tail
		{off: 0, segments: 1},                   // the head
		{off: 32*mib - 64<<10 - 1, segments: 2}, // starts in the last chunk of segment 7
	} {
		f := openFile(t, ctx, d, targets, "ranged")
		got := make([]byte, mib)
		if _, err := f.ReadAt(got, tc.off); err != nil {
			t.Fatalf("ReadAt(%d): %v", tc.off, err)
		}
		if !bytes.Equal(got, src[tc.off:tc.off+mib]) {
			t.Fatalf("range at %d differs", tc.off)
		}
		st := f.Stats()
		if st.SegmentsRead != tc.segments || st.PieceBytes > tc.segments*4*pieceSize {
			t.Fatalf("range at %d: stats %+v, want %d segment(s) and at most %d piece bytes",
				tc.off, st, tc.segments, tc.segments*4*pieceSize)
		}
	}
}

// TestHeaderBoundToFile: a stored header moved onto another file id does
// not open: the file id is Transit associated data.
func TestHeaderBoundToFile(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	d := newDataset(t, s)
	targets := s.targets(t)
	a := writeFile(t, ctx, d, targets, "file-a", randomReader(4, mib), mib)
	b := writeFile(t, ctx, d, targets, "file-b", randomReader(5, mib), mib)
	if _, err := filestore.Open(ctx, b.m, a.header, filestore.ReadOptions{Targets: targets},
		crypto.NewTransitIdentity(ctx, d.vc, d.key, "file-b")); err == nil {
		t.Fatal("header of file-a opened as file-b")
	}
	// The same header still opens as itself.
	if _, err := filestore.Open(ctx, a.m, a.header, filestore.ReadOptions{Targets: targets},
		crypto.NewTransitIdentity(ctx, d.vc, d.key, "file-a")); err != nil {
		t.Fatal(err)
	}
	// Another dataset's key does not open it either.
	other := newDataset(t, s)
	if _, err := filestore.Open(ctx, a.m, a.header, filestore.ReadOptions{Targets: targets},
		crypto.NewTransitIdentity(ctx, other.vc, other.key, "file-a")); err == nil {
		t.Fatal("header opened with another dataset's key")
	}
}

// TestStockAgeDecryptsRewrapped: a header rewrapped from the Transit key to
// a researcher's age recipient, followed by the stored payload, is a
// standard age file that the reference CLI decrypts; and storage holds no
// plaintext.
func TestStockAgeDecryptsRewrapped(t *testing.T) {
	s := needStack(t)
	ctx := testContext(t)
	d := newDataset(t, s)
	targets := s.targets(t)
	marker := []byte("DOZO-PLAINTEXT-MARKER-0123456789")
	plain := bytes.Repeat(marker, (3*mib)/len(marker)+7)
	sf := writeFile(t, ctx, d, targets, "agefile", bytes.NewReader(plain), mib)

	ageBin := findTool(t, "age")
	for name, newID := range map[string]func() (age.Identity, age.Recipient, string){
		"x25519": func() (age.Identity, age.Recipient, string) {
			id, _ := age.GenerateX25519Identity()
			return id, id.Recipient(), id.String()
		},
		"mlkem768x25519": func() (age.Identity, age.Recipient, string) {
			id, _ := age.GenerateHybridIdentity()
			return id, id.Recipient(), id.String()
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, rcpt, secret := newID()
			hdr, err := crypto.RewrapHeaderObject(sf.header, crypto.NewTransitIdentity(ctx, d.vc, d.key, "agefile"), rcpt)
			if err != nil {
				t.Fatal(err)
			}
			r, err := storage.NewReader(ctx, sf.m, storage.ReaderOptions{Targets: targets})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			encPath, keyPath := filepath.Join(dir, "f.age"), filepath.Join(dir, "key.txt")
			var enc bytes.Buffer
			enc.Write(hdr)
			if _, err := r.WriteTo(&enc); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(encPath, enc.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(keyPath, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(ageBin, "-d", "-i", keyPath, encPath).Output()
			if err != nil {
				t.Fatalf("age -d: %v", err)
			}
			if !bytes.Equal(out, plain) {
				t.Fatal("age -d output differs from the plaintext")
			}
		})
	}

	// Nothing the file left on storage contains the plaintext marker.
	objects := 0
	for _, tg := range targets {
		err := tg.List(ctx, storage.DatasetPrefix(d.id), func(oi storage.ObjectInfo) error {
			objects++
			rc, err := tg.Get(ctx, oi.Key, 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				return err
			}
			if bytes.Contains(b, marker[:16]) {
				t.Errorf("object %s on %s contains plaintext", oi.Key, tg.ID())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := 6*4 + 2*3; objects != want { // 4 segments x 6 pieces, header+manifest per domain
		t.Fatalf("scanned %d objects, want %d", objects, want)
	}
}

// findTool finds a helper program on PATH or in the tools cache.
func findTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	out, err := exec.Command(filepath.Join(repoRoot(), "scripts", "tools.sh"), "path").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (scripts/tools.sh age)", name)
	}
	t.Skipf("%s not installed (scripts/tools.sh age)", name)
	return ""
}
