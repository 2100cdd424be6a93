// Package filestore writes and reads dozo files: an age header object (the
// age header followed by the payload nonce) and the age payload chunk stream,
// erasure-coded into segments across storage targets.
//
// It joins crypto (what the bytes are) and storage (where they go) and
// holds no policy: who may read, and which recipients a header is wrapped
// for, are the caller's decisions.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
)

// DefaultPlainSegmentSize is the plaintext covered by one segment. It is a
// multiple of the age chunk size, so segments start on chunk boundaries and
// an upload can resume at any segment.
//
// 32 MiB keeps the CLI's peak RSS well under 200 MiB (the writer holds two
// coded segments, 2*48 MiB; a fetch three plaintext segments, 3*32 MiB)
// while 8 MiB pieces are still large enough that per-request costs do not
// show (see `make bench`); a 1 MiB range fetch moves at most 32 MiB.
const DefaultPlainSegmentSize = 32 << 20

// Layout returns the storage layout for k+m coding of segments holding
// plainSegmentSize bytes of plaintext each.
func Layout(k, m int, plainSegmentSize int64) (storage.Layout, error) {
	stored, err := crypto.StoredSegmentSize(plainSegmentSize)
	if err != nil {
		return storage.Layout{}, err
	}
	l := storage.Layout{K: k, M: m, SegmentSize: stored}
	return l, l.Validate()
}

// WriteOptions describe one file to write.
type WriteOptions struct {
	DatasetID, FileID string
	Layout            storage.Layout // from Layout()
	Targets           []storage.Target
	// Placement, if set, is where each segment's pieces go (see
	// storage.WriterOptions).
	Placement func(segment int) ([]storage.Target, error)
	HashAlg   string // piece hash; "" for storage's default

	// Recipients receive the file key in the header object. Ignored when
	// resuming (FileKey set), as the header already exists.
	Recipients []age.Recipient

	// FileKey and Nonce resume an interrupted upload: the same key and
	// nonce, continuing at StartSegment. The caller must have checked that
	// the plaintext is unchanged: new plaintext under an old key and nonce
	// would reuse keystream.
	FileKey, Nonce []byte
	StartSegment   int

	Concurrency int
	// OnSegment is called once every piece of a segment is stored.
	OnSegment func(storage.SegmentMeta) error
	// NoChecksums skips the SHA-256 and MD5 of the plaintext (WriteResult
	// leaves them nil), for a caller that computes them itself: two more
	// passes over every byte are the largest CPU cost of a write.
	NoChecksums bool
}

// WriteResult is what a write produced.
type WriteResult struct {
	// HeaderObject is set for a fresh write; the caller stores it (it is
	// small) where its catalog expects it.
	HeaderObject []byte
	Segments     []storage.SegmentMeta
	HashAlg      string // the piece hash used, for storage.NewManifest
	// PlainBytes, SHA256 and MD5 cover the plaintext this call read, which
	// is the whole file unless it resumed (SHA256 and MD5 are nil with
	// NoChecksums).
	PlainBytes  int64
	SHA256, MD5 []byte
}

// Write encrypts src and stores it erasure-coded on the targets. src must
// start at the plaintext offset of opts.StartSegment.
func Write(ctx context.Context, src io.Reader, opts WriteOptions) (*WriteResult, error) {
	res := &WriteResult{}
	fileKey, nonce := opts.FileKey, opts.Nonce
	if fileKey == nil {
		if opts.StartSegment != 0 {
			return nil, errors.New("filestore: resuming needs the file key and nonce of the first attempt")
		}
		if len(opts.Recipients) == 0 {
			return nil, errors.New("filestore: no recipients for the file key")
		}
		var err error
		if fileKey, err = crypto.NewFileKey(); err != nil {
			return nil, err
		}
		defer clear(fileKey)
		if nonce, err = crypto.NewNonce(); err != nil {
			return nil, err
		}
		if res.HeaderObject, err = crypto.NewHeaderObject(fileKey, nonce, opts.Recipients...); err != nil {
			return nil, err
		}
	}
	chunksPerSegment := opts.Layout.SegmentSize / (crypto.ChunkSize + crypto.ChunkOverhead)

	sw, err := storage.NewWriter(ctx, storage.WriterOptions{
		DatasetID:    opts.DatasetID,
		FileID:       opts.FileID,
		Layout:       opts.Layout,
		Targets:      opts.Targets,
		Placement:    opts.Placement,
		HashAlg:      opts.HashAlg,
		StartSegment: opts.StartSegment,
		Concurrency:  opts.Concurrency,
		OnSegment:    opts.OnSegment,
	})
	if err != nil {
		return nil, err
	}
	enc, err := crypto.NewStreamWriter(sw, fileKey, nonce, uint64(opts.StartSegment)*uint64(chunksPerSegment))
	if err != nil {
		return nil, sw.Abort(err)
	}
	sums := NewChecksums(true)
	if !opts.NoChecksums {
		src = io.TeeReader(src, sums)
	}
	n, err := io.Copy(enc, src)
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		// The source or the encryption failed: the segment being filled
		// is not the end of the file and must not be stored as if it were.
		return nil, fmt.Errorf("writing file %s: %w", opts.FileID, sw.Abort(err))
	}
	if err := sw.Close(); err != nil {
		return nil, fmt.Errorf("writing file %s: %w", opts.FileID, err)
	}
	res.Segments = sw.Segments()
	res.HashAlg = sw.HashAlg()
	res.PlainBytes = n
	if !opts.NoChecksums {
		res.SHA256, res.MD5 = sums.SHA256.Sum(nil), sums.MD5.Sum(nil)
	}
	return res, nil
}
