package filestore

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/ddbj/kura/crypto"
	"github.com/ddbj/kura/storage"
)

// ReadOptions configure reading a file back.
type ReadOptions struct {
	Targets     []storage.Target
	Concurrency int
	Readahead   int
	// OnDegraded is told about every segment that needed parity.
	OnDegraded func(segment int, failures []storage.PieceFailure)
}

// File is a stored file opened for reading. Every byte it returns was
// verified twice: its pieces against the manifest's hashes, and its chunk
// against the AEAD tag under the file key.
type File struct {
	ctx     context.Context
	m       *storage.Manifest
	r       *storage.Reader
	payload *crypto.PayloadReaderAt
	header  []byte // the age header, kept for WriteTo's MAC check
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
	header, _, _ := crypto.SplitHeaderObject(headerObject) // checked by OpenHeaderObject
	return &File{ctx: ctx, m: m, r: r, payload: p, header: header, fileKey: fileKey, nonce: nonce}, nil
}

// Size is the plaintext size.
func (f *File) Size() int64 { return f.payload.Size() }

// ReadAt reads plaintext at off, fetching only the segments that cover
// [off, off+len(p)).
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.payload.ReadAt(p, off) }

// WriteTo streams the whole plaintext to w, fetching segments ahead of the
// decryption. Through age's own decrypting reader, so the bytes are checked
// by the reference implementation of the format.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	s, err := f.r.Stream(f.ctx, 0)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	src := io.MultiReader(bytes.NewReader(f.header), bytes.NewReader(f.nonce), s)
	pr, err := age.Decrypt(src, age.NewInjectedFileKeyIdentity(f.fileKey))
	if err != nil {
		return 0, err
	}
	return io.Copy(w, pr)
}

// Stats are the storage reader's counters: segments, pieces and bytes
// fetched, and what needed parity.
func (f *File) Stats() storage.ReadStats { return f.r.Stats() }

// Close forgets the file key.
func (f *File) Close() error {
	clear(f.fileKey)
	return nil
}
