package mount

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
)

// catalog is an in-memory Remote: the datasets and files dozod would list,
// and the refusal it would answer with.
type catalog struct {
	datasets []api.Dataset
	files    map[string][]api.File
	refuse   error // answer to Files, if set
	down     error // answer to everything, if set
}

func (c *catalog) Datasets(context.Context) ([]api.Dataset, error) {
	if c.down != nil {
		return nil, c.down
	}
	return c.datasets, nil
}

func (c *catalog) Files(_ context.Context, ds string) ([]api.File, error) {
	if c.down != nil {
		return nil, c.down
	}
	if c.refuse != nil {
		return nil, c.refuse
	}
	return c.files[ds], nil
}

func (c *catalog) Open(context.Context, string, string) (File, error) {
	return nil, errors.New("not in this test")
}

func revoked() error {
	e := &client.APIError{Status: http.StatusForbidden}
	e.Body.Error = "your access to dataset \"D1\" was revoked"
	return e
}

// TestAccessChecks: reads are allowed only while the last successful
// check is under MaxAge old and no refusal came since; a dataset that
// stops being listed, or whose listing is refused, is denied until a
// check succeeds again; an unreachable dozod makes access go stale (fail
// closed), not stay open.
func TestAccessChecks(t *testing.T) {
	const seg = 1 << 20
	cat := &catalog{
		datasets: []api.Dataset{
			{ID: "D1", PlainSegmentSize: seg, Access: []string{"grantee"}},
			{ID: "D2", PlainSegmentSize: seg, Access: []string{"admin"}},         // may see, not read
			{ID: "D3", PlainSegmentSize: 512 << 20, Access: []string{"grantee"}}, // segments too big for the cache
		},
		files: map[string][]api.File{"D1": {
			{ID: "f1", Dataset: "D1", Name: "a.bam", Size: 10, State: api.FileAvailable},
			{ID: "f2", Dataset: "D1", Name: "b.bam", Size: 10, State: api.FileUploading},
		}},
	}
	now := time.Unix(1_000_000, 0)
	f := New(context.Background(), cat, Options{CacheSize: 64 << 20})
	f.now = func() time.Time { return now }
	ctx := context.Background()

	if err := f.Check(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.Datasets()
	if len(got) != 1 || got["D1"] != 1 {
		t.Fatalf("mounted %v, want only D1 with its one available file", got)
	}
	if err := f.allowed("D1"); err != nil {
		t.Fatalf("right after a check: %v", err)
	}

	now = now.Add(DefaultMaxAge + time.Second)
	if err := f.allowed("D1"); !errors.Is(err, errStale) {
		t.Fatalf("a minute after the last check: %v, want errStale", err)
	}
	cat.down = errors.New("connection refused")
	if err := f.Check(ctx); err == nil {
		t.Fatal("Check with dozod unreachable succeeded")
	}
	if err := f.allowed("D1"); !errors.Is(err, errStale) {
		t.Fatalf("dozod unreachable: %v, want errStale (fail closed)", err)
	}
	cat.down = nil
	if err := f.Check(ctx); err != nil || f.allowed("D1") != nil {
		t.Fatalf("dozod back: Check %v, allowed %v", err, f.allowed("D1"))
	}

	cat.refuse = revoked()
	f.Check(ctx)
	if err := f.allowed("D1"); err == nil || err.Error() != revoked().Error() {
		t.Fatalf("after a refused listing: %v, want dozod's refusal", err)
	}
	cat.refuse = nil
	f.Check(ctx)
	if err := f.allowed("D1"); err != nil {
		t.Fatalf("after access came back: %v", err)
	}

	saved := cat.datasets
	cat.datasets = nil // the grant is gone: dozod no longer lists D1
	f.Check(ctx)
	if err := f.allowed("D1"); err == nil {
		t.Fatal("a dataset no longer listed is still readable")
	}
	cat.datasets = saved
	f.Check(ctx)

	// A refusal seen elsewhere (an open, a presign) denies at once.
	f.deny("D1", revoked())
	if f.allowed("D1") == nil {
		t.Fatal("deny did not deny")
	}
	if f.errno(revoked()) != 13 { // EACCES
		t.Fatalf("errno of a refusal = %d, want EACCES", f.errno(revoked()))
	}

	// --dataset names one the user cannot read: the mount does not start.
	g := New(ctx, cat, Options{Dataset: "D2", CacheSize: 64 << 20})
	if err := g.Check(ctx); err == nil {
		t.Fatal("mounting a dataset the user may only see, not read, passed the check")
	}
	h := New(ctx, cat, Options{Dataset: "D3", CacheSize: 64 << 20})
	if err := h.Check(ctx); err == nil {
		t.Fatal("mounting a dataset whose segments do not fit the cache passed the check")
	}
}
