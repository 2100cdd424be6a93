package filestore

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dozo-vault/dozo/storage"
)

// StoredFiles maps the id of every file with a manifest on storage to the
// targets holding a copy of it (sorted by target id).
type StoredFiles map[string][]string

// ListManifests lists the manifests of a dataset on every target, for
// rebuilding a lost catalog from storage. Only keys of the form
// <dataset prefix><valid file id>/manifest.json count: anything else under
// the prefix (pieces, headers, stray objects) is ignored. A target that
// cannot be listed is reported in errs and skipped, so a dataset can be
// recovered while one failure domain is down (metadata is stored once per
// domain).
func ListManifests(ctx context.Context, targets []storage.Target, datasetID string) (StoredFiles, map[string]error) {
	out := StoredFiles{}
	errs := map[string]error{}
	prefix := storage.DatasetPrefix(datasetID)
	for _, t := range targets {
		err := t.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			rest, ok := strings.CutPrefix(oi.Key, prefix)
			if !ok {
				return nil
			}
			fileID, name, ok := strings.Cut(rest, "/")
			if !ok || name != "manifest.json" || storage.ValidateID(fileID) != nil {
				return nil
			}
			out[fileID] = append(out[fileID], t.ID())
			return nil
		})
		if err != nil {
			errs[t.ID()] = err
		}
	}
	for id := range out {
		slices.Sort(out[id])
	}
	return out, errs
}

// ReadSmall reads a whole object of at most limit bytes; a larger one is an
// error rather than a large allocation.
func ReadSmall(ctx context.Context, t storage.Target, key string, limit int64) ([]byte, error) {
	rc, err := t.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", key, t.ID(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", key, t.ID(), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s on %s: larger than %d bytes", key, t.ID(), limit)
	}
	return b, nil
}
