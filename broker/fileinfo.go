package broker

import (
	"context"
	"errors"

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
	err = filestore.PutFileInfo(ctx, targets, ds.ID, f.ID, obj)
	var te *filestore.TargetError
	if errors.As(err, &te) {
		s.noteTargetError(ctx, te.Target, te.Err)
	}
	return err
}
