package scrub

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
	"github.com/dozo-vault/dozo/vault/vaulttest"
)

// flakyTarget is a target that can be switched off, as a stopped S3
// server would be: every call fails as unreachable.
type flakyTarget struct {
	*storage.DirTarget
	off *atomic.Bool
}

var errOff = fmt.Errorf("dial tcp 127.0.0.1:1: connection refused: %w", storage.ErrUnreachable)

func (f flakyTarget) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if f.off.Load() {
		return nil, errOff
	}
	return f.DirTarget.Get(ctx, key, off, n)
}

func (f flakyTarget) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if f.off.Load() {
		return storage.ObjectInfo{}, errOff
	}
	return f.DirTarget.Stat(ctx, key)
}

func (f flakyTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.off.Load() {
		return errOff
	}
	return f.DirTarget.Put(ctx, key, r, size)
}

// fixture is a real catalog and six directory targets on three domains,
// with files written as an upload writes them.
type fixture struct {
	t       *testing.T
	cat     *catalog.Catalog
	keys    *vaulttest.Keys
	dirs    []*storage.DirTarget
	targets []storage.Target
	off     map[string]*atomic.Bool
	now     time.Time
	logs    *bytes.Buffer
	events  chan Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "dozo.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	fx := &fixture{t: t, cat: cat, keys: &vaulttest.Keys{}, off: map[string]*atomic.Bool{},
		now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}, events: make(chan Event, 100)}
	for _, srv := range []string{"s1", "s2", "s3"} {
		for _, b := range []string{"a", "b"} {
			d, err := storage.NewDirTarget(srv+"-"+b, srv, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			fx.off[d.ID()] = &atomic.Bool{}
			fx.dirs = append(fx.dirs, d)
			fx.targets = append(fx.targets, flakyTarget{d, fx.off[d.ID()]})
		}
	}
	return fx
}

// options are the fixture's dependencies; the clock is frozen.
func (fx *fixture) options() Options {
	return Options{
		Catalog: fx.cat, Keys: fx.keys, Targets: fx.targets,
		Record: func(_ context.Context, e Event) error {
			select {
			case fx.events <- e:
			default:
			}
			return nil
		},
		Now:    func() time.Time { return fx.now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// dataset records a dataset of layout k+m with 1 MiB plaintext segments.
func (fx *fixture) dataset(id string, k, m int) {
	fx.t.Helper()
	l, err := filestore.Layout(k, m, 1<<20)
	if err != nil {
		fx.t.Fatal(err)
	}
	if err := fx.keys.CreateKey(context.Background(), "dozo-"+id); err != nil {
		fx.t.Fatal(err)
	}
	err = fx.cat.CreateDataset(context.Background(), catalog.Dataset{ID: id, Title: "t", K: k, M: m, PlainSegmentSize: 1 << 20,
		SegmentSize: l.SegmentSize, TransitKey: "dozo-" + id, CreatedBy: "sam", CreatedAt: fx.now})
	if err != nil {
		fx.t.Fatal(err)
	}
}

// file stores size random bytes as dataset ds's file name, with its signed
// manifest in the catalog and its metadata copies on storage, and returns
// its id.
func (fx *fixture) file(ds, name string, size int) string {
	fx.t.Helper()
	ctx := context.Background()
	d, err := fx.cat.Dataset(ctx, ds)
	if err != nil {
		fx.t.Fatal(err)
	}
	l, err := filestore.Layout(d.K, d.M, d.PlainSegmentSize)
	if err != nil {
		fx.t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		fx.t.Fatal(err)
	}
	fileID := fmt.Sprintf("f%016x", rand.Uint64())
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	w, err := filestore.Write(ctx, bytes.NewReader(data), filestore.WriteOptions{DatasetID: ds, FileID: fileID, Layout: l,
		Targets: fx.targets, Recipients: []age.Recipient{id.Recipient()}})
	if err != nil {
		fx.t.Fatal(err)
	}
	m, err := storage.NewManifest(ds, fileID, l, w.HashAlg, w.Segments)
	if err != nil {
		fx.t.Fatal(err)
	}
	if err := m.Sign(ctx, vault.TransitHMAC{Keys: fx.keys, Key: d.TransitKey}); err != nil {
		fx.t.Fatal(err)
	}
	mb, err := m.Marshal()
	if err != nil {
		fx.t.Fatal(err)
	}
	if err := filestore.PutMetadata(ctx, fx.targets, m, w.HeaderObject); err != nil {
		fx.t.Fatal(err)
	}
	f := catalog.File{ID: fileID, DatasetID: ds, Name: name, Size: int64(size), StoredSize: m.Size, HashAlg: m.HashAlg,
		HeaderObject: w.HeaderObject, Manifest: mb, SHA256: hex.EncodeToString(w.SHA256), MD5: hex.EncodeToString(w.MD5), CreatedBy: "sam", CreatedAt: fx.now}
	if err := fx.cat.RestoreFile(ctx, f, w.Segments, fx.now); err != nil {
		fx.t.Fatal(err)
	}
	return fileID
}

func (fx *fixture) manifest(fileID string) *storage.Manifest {
	fx.t.Helper()
	f, err := fx.cat.File(context.Background(), fileID)
	if err != nil {
		fx.t.Fatal(err)
	}
	m, err := storage.ParseManifest(f.Manifest)
	if err != nil {
		fx.t.Fatal(err)
	}
	return m
}

// removePiece deletes piece j of segment i of a file, by the catalog's
// manifest.
func (fx *fixture) removePiece(fileID string, i, j int) {
	fx.t.Helper()
	m := fx.manifest(fileID)
	for _, d := range fx.dirs {
		if d.ID() == m.Segments[i].Pieces[j].Target {
			if err := os.Remove(filepath.Join(d.Dir(), storage.PieceKey(m.DatasetID, m.FileID, i, j))); err != nil {
				fx.t.Fatal(err)
			}
			return
		}
	}
	fx.t.Fatalf("no target for segment %d piece %d", i, j)
}

// create records a run of the dataset's files, as Scheduler.Create does,
// without starting it.
func (fx *fixture) create(rec catalog.ScrubRun) {
	fx.t.Helper()
	ctx := context.Background()
	cands, err := fx.cat.ScrubCandidates(ctx, rec.DatasetID, rec.FileName)
	if err != nil {
		fx.t.Fatal(err)
	}
	if rec.StartedAt.IsZero() {
		rec.StartedAt = fx.now
	}
	if err := fx.cat.CreateScrubRun(ctx, rec, cands); err != nil {
		fx.t.Fatal(err)
	}
}

// wait polls run id until it is no longer running, and returns its tally.
func (fx *fixture) wait(id string) (*catalog.ScrubRun, Result) {
	fx.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := fx.cat.ScrubRun(ctx, id)
		if err != nil {
			fx.t.Fatal(err)
		}
		if r.State != catalog.ScrubRunning {
			return r, fx.tally(id)
		}
		if time.Now().After(deadline) {
			fx.t.Fatalf("scrub %s still running", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (fx *fixture) tally(id string) Result {
	fx.t.Helper()
	files, err := fx.cat.ScrubFiles(context.Background(), id)
	if err != nil {
		fx.t.Fatal(err)
	}
	res, err := Tally(files, true)
	if err != nil {
		fx.t.Fatal(err)
	}
	return res
}
