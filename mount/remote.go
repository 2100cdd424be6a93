package mount

import (
	"context"
	"errors"
	"io"
	"net/http"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/transfer"
)

// Remote is what a mount reads through: dozod's catalog, and stored files
// opened for random reads. Every Open is an access check and an audited
// fetch at dozod.
type Remote interface {
	Datasets(ctx context.Context) ([]api.Dataset, error)
	Files(ctx context.Context, dataset string) ([]api.File, error)
	// Open opens dataset/name; the returned File's reads run under ctx.
	Open(ctx context.Context, dataset, name string) (File, error)
}

// File is a stored file open for random reads of verified plaintext.
type File interface {
	io.ReaderAt
	Size() int64
	// ID is the catalog's ID of the file opened.
	ID() string
	Close() error
}

// NewRemote returns the Remote of a dozod client, opening files with
// transfer.Open and identity.
func NewRemote(c *client.Client, identity age.Identity) Remote {
	return &clientRemote{c: c, id: identity}
}

type clientRemote struct {
	c  *client.Client
	id age.Identity
}

func (r *clientRemote) Datasets(ctx context.Context) ([]api.Dataset, error) {
	return r.c.ListDatasets(ctx)
}

func (r *clientRemote) Files(ctx context.Context, dataset string) ([]api.File, error) {
	return r.c.ListFiles(ctx, dataset)
}

func (r *clientRemote) Open(ctx context.Context, dataset, name string) (File, error) {
	f, err := transfer.Open(ctx, r.c, transfer.OpenOptions{Dataset: dataset, Name: name, Identity: r.id})
	if err != nil {
		return nil, err
	}
	return remoteFile{f}, nil
}

type remoteFile struct{ *transfer.RemoteFile }

func (f remoteFile) ID() string { return f.Info.ID }

// refused reports whether err is dozod withdrawing or denying access (a
// revoked or expired grant, a freeze, a deleted file, an expired login)
// rather than a failure to answer.
func refused(err error) bool {
	if errors.Is(err, storage.ErrRefused) {
		return true
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
			return true
		}
	}
	return false
}
