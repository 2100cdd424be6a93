package broker

import (
	"bytes"
	"context"
	"fmt"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// putFileInfo stores the sealed info of a completing upload on one target
// per failure domain, like the manifest. The file key is unwrapped by
// Transit for this and cleared at once.
func (s *Server) putFileInfo(ctx context.Context, targets []storage.Target, ds *catalog.Dataset, f *catalog.File, sha, md5 string) error {
	key, _, err := crypto.OpenHeaderObject(f.HeaderObject, crypto.NewTransitIdentity(ctx, s.keys, ds.TransitKey, f.ID))
	if err != nil {
		return internal("opening the header", err)
	}
	defer clear(key)
	obj, err := filestore.SealFileInfo(key, ds.ID, f.ID, &filestore.FileInfo{
		Name: f.Name, Size: f.Size, SHA256: sha, MD5: md5, CreatedBy: f.CreatedBy, CreatedAt: f.CreatedAt.UTC(),
		DatasetTitle: ds.Title,
	})
	if err != nil {
		return internal("sealing the file info", err)
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t.Domain()] {
			continue
		}
		seen[t.Domain()] = true
		if err := t.Put(ctx, filestore.FileInfoKey(ds.ID, f.ID), bytes.NewReader(obj), int64(len(obj))); err != nil {
			s.noteTargetError(ctx, t.ID(), err)
			return fmt.Errorf("storing the file info of %s on %s: %w", f.ID, t.ID(), err)
		}
	}
	return nil
}
