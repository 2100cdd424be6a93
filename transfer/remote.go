package transfer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// OpenOptions says which stored file to open for random reads.
type OpenOptions struct {
	Dataset, Name string
	Identity      age.Identity
	// Concurrency bounds parallel piece transfers per segment (0: default).
	Concurrency int
	// Readahead is how many segments after the one read are fetched ahead
	// (0: the fetch default for the file's segment size).
	Readahead int
	// OnDegraded, if set, is told of segments read with pieces missing.
	OnDegraded func(segment int, failures []storage.PieceFailure)
}

// RemoteFile is a stored file opened for random reads. ReadAt fetches,
// verifies and decrypts only the segments that cover the bytes asked for;
// nothing is written to disk. Each Open is one audited fetch at dozod.
type RemoteFile struct {
	*filestore.File
	// Info is dozod's record of the file (name, size, checksums).
	Info api.File
}

// Open opens dataset/name for random reads with the caller's identity. It
// checks, as a fetch does, that the manifest belongs to the file and that
// the header opens for the identity before any payload is read.
func Open(ctx context.Context, c *client.Client, o OpenOptions) (*RemoteFile, error) {
	op := "opening " + o.Dataset + "/" + o.Name
	if o.Identity == nil {
		return nil, opError(op, client.ErrNoIdentity)
	}
	fr, err := c.Fetch(ctx, o.Dataset, o.Name)
	if err != nil {
		return nil, opError(op, err)
	}
	m := fr.Manifest
	hdr, err := checkFetch(op, fr, o.Identity)
	if err != nil {
		return nil, err
	}
	ra := o.Readahead
	if ra <= 0 {
		ra = readahead(m.SegmentSize)
	}
	targets, entries := FetchTargets(c, m, fr.Targets)
	ropts := filestore.ReadOptions{Targets: targets, Entries: entries, Concurrency: o.Concurrency,
		OnDegraded: o.OnDegraded, Readahead: ra}
	f, err := filestore.Open(ctx, m, hdr, ropts, o.Identity)
	if err != nil {
		return nil, opError(op, err)
	}
	return &RemoteFile{File: f, Info: fr.File}, nil
}

// checkFetch checks dozod's answer to a fetch before any payload is read:
// the manifest head is well formed and this file's (a valid manifest of another file would
// decrypt to the wrong data or fail late), and the header opens for id, so
// a key that was never wrapped for the caller is a clear error up front.
// It returns the decoded header object.
func checkFetch(op string, fr *api.FetchResponse, id age.Identity) ([]byte, error) {
	m := fr.Manifest
	switch {
	case m == nil:
		return nil, opError(op, errors.New("dozod sent no manifest"))
	case m.DatasetID != fr.File.Dataset || m.FileID != fr.File.ID:
		return nil, opError(op, fmt.Errorf("dozod sent the manifest of %s/%s for file %s", m.DatasetID, m.FileID, fr.File.ID))
	case len(m.Segments) != 0:
		return nil, opError(op, errors.New("dozod sent a whole manifest, not its head: it is older than this client"))
	}
	if err := m.ValidateHead(); err != nil {
		return nil, opError(op, fmt.Errorf("dozod sent a malformed manifest head: %w", err))
	}
	hdr, err := base64.StdEncoding.DecodeString(fr.HeaderObject)
	if err != nil {
		return nil, opError(op, fmt.Errorf("dozod sent a malformed header: %w", err))
	}
	fileKey, _, err := crypto.OpenHeaderObject(hdr, id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, hintError(op, "run 'dozo key register' so dozod wraps keys for your current identity",
				errors.New("the file's header is not wrapped for your identity"))
		}
		return nil, opError(op, err)
	}
	clear(fileKey)
	return hdr, nil
}
