package filestore

import (
	"context"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
)

// ReadOptions configure reading a file back.
type ReadOptions struct {
	Targets     []storage.Target
	Concurrency int
	Readahead   int
	// OnDegraded is told about every segment that needed parity.
	OnDegraded func(segment int, failures []storage.PieceFailure)
	// Entries supplies the segment entries when m is a manifest head
	// (see storage.ReaderOptions.Entries).
	Entries storage.EntrySource
}

// File is a stored file opened for reading. Every byte it returns was
// verified twice: its pieces against the manifest's hashes, and its chunk
// against the AEAD tag under the file key.
type File struct {
	ctx     context.Context
	m       *storage.Manifest
	r       *storage.Reader
	payload *crypto.PayloadReaderAt
	fileKey []byte
	nonce   []byte
}

// Open unwraps the file key from headerObject with one of identities and
// prepares reads of the file m describes. The caller must have verified m
// (its MAC) or received it over an authenticated channel.
func Open(ctx context.Context, m *storage.Manifest, headerObject []byte, opts ReadOptions, identities ...age.Identity) (*File, error) {
	fileKey, nonce, err := crypto.OpenHeaderObject(headerObject, identities...)
	if err != nil {
		return nil, fmt.Errorf("opening header of file %s: %w", m.FileID, err)
	}
	r, err := storage.NewReader(ctx, m, storage.ReaderOptions{
		Targets:     opts.Targets,
		Concurrency: opts.Concurrency,
		Readahead:   opts.Readahead,
		OnDegraded:  opts.OnDegraded,
		Entries:     opts.Entries,
	})
	if err != nil {
		clear(fileKey)
		return nil, err
	}
	p, err := crypto.NewPayloadReaderAt(fileKey, nonce, r, m.Size)
	if err != nil {
		clear(fileKey)
		return nil, fmt.Errorf("file %s: %w", m.FileID, err)
	}
	return &File{ctx: ctx, m: m, r: r, payload: p, fileKey: fileKey, nonce: nonce}, nil
}

// Size is the plaintext size.
func (f *File) Size() int64 { return f.payload.Size() }

// ReadAt reads plaintext at off, fetching only the segments that cover
// [off, off+len(p)).
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.payload.ReadAt(p, off) }

// WriteTo streams the whole plaintext to w, fetching segments ahead of the
// decryption. crypto.StreamReader decrypts in place in one reused buffer
// (age's reader allocated every chunk anew); the header's MAC was checked
// by Open, and the payload format is the one age reads (the integration
// tests decrypt stored files with the stock age CLI).
func (f *File) WriteTo(w io.Writer) (int64, error) {
	s, err := f.r.Stream(f.ctx, 0)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	pr, err := crypto.NewStreamReader(s, f.fileKey, f.nonce, f.m.Size)
	if err != nil {
		return 0, err
	}
	return pr.WriteTo(w)
}

// Stats are the storage reader's counters: segments, pieces and bytes
// fetched, and what needed parity.
func (f *File) Stats() storage.ReadStats { return f.r.Stats() }

// Close forgets the file key.
func (f *File) Close() error {
	clear(f.fileKey)
	return nil
}
