package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dozo-vault/dozo/storage"
)

// maxHeaderObject bounds what GetHeaderObject reads: an age header with a
// handful of stanzas is well under a kilobyte.
const maxHeaderObject = 64 << 10

// maxManifest bounds a manifest read from storage (a 200 GB file with
// 64 MiB segments is about 1.5 MB of JSON).
const maxManifest = 64 << 20

// metadataTargets picks one target per failure domain, so the small
// metadata objects survive the loss of any domain, as the pieces do.
func metadataTargets(targets []storage.Target) []storage.Target {
	seen := map[string]bool{}
	var out []storage.Target
	for _, t := range targets {
		if !seen[t.Domain()] {
			seen[t.Domain()] = true
			out = append(out, t)
		}
	}
	return out
}

// PutMetadata stores the header object and the signed manifest next to
// the pieces, one copy per failure domain, so that storage alone is enough
// to scrub a file or rebuild the catalog. The domains are written at once;
// within each the header goes first, so a manifest copy on storage always
// has its header beside it.
func PutMetadata(ctx context.Context, targets []storage.Target, m *storage.Manifest, headerObject []byte) error {
	if m.MAC == "" {
		return errors.New("filestore: refusing to store an unsigned manifest")
	}
	mb, err := m.Marshal()
	if err != nil {
		return err
	}
	return eachDomain(targets, func(t storage.Target) error {
		if err := t.Put(ctx, storage.HeaderKey(m.DatasetID, m.FileID), bytes.NewReader(headerObject), int64(len(headerObject))); err != nil {
			return &TargetError{Target: t.ID(), Op: "storing header of " + m.FileID, Err: err}
		}
		if err := t.Put(ctx, storage.ManifestKey(m.DatasetID, m.FileID), bytes.NewReader(mb), int64(len(mb))); err != nil {
			return &TargetError{Target: t.ID(), Op: "storing manifest of " + m.FileID, Err: err}
		}
		return nil
	})
}

// TargetError is a write that failed on one target, so that a caller can
// note the target's health.
type TargetError struct {
	Target string
	Op     string // what failed: "storing manifest of FILE"
	Err    error  // the target's own error
}

func (e *TargetError) Error() string { return e.Op + " on " + e.Target + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

// eachDomain runs write on one target per failure domain (metadataTargets),
// all at once, and waits for every one. It returns nil when all succeeded,
// else the error of the first failed target in that order: the same error
// a write one domain after the other would have stopped at, while the
// others' writes are done or failed too.
func eachDomain(targets []storage.Target, write func(storage.Target) error) error {
	ts := metadataTargets(targets)
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = write(t)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// GetMetadata returns the first manifest copy that verifies under a, with
// the header object stored beside it.
func GetMetadata(ctx context.Context, targets []storage.Target, a storage.Authenticator, datasetID, fileID string) (*storage.Manifest, []byte, error) {
	var errs []error
	for _, t := range targets {
		mb, err := ReadSmall(ctx, t, storage.ManifestKey(datasetID, fileID), maxManifest)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := storage.ParseManifest(mb)
		if err == nil {
			err = m.Verify(ctx, a)
		}
		if err == nil && (m.DatasetID != datasetID || m.FileID != fileID) {
			err = errors.New("manifest names another file")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("manifest on %s: %w", t.ID(), err))
			continue
		}
		hdr, err := ReadSmall(ctx, t, storage.HeaderKey(datasetID, fileID), maxHeaderObject)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return m, hdr, nil
	}
	return nil, nil, fmt.Errorf("no valid metadata for file %s: %w", fileID, errors.Join(errs...))
}
