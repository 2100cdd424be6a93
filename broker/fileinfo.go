package broker

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
)

// The manifest and header stored beside a file's pieces say how to read it
// but not what the catalog calls it: the name, the plaintext checksums and
// who uploaded it live only in the catalog. fileInfo keeps a sealed copy of
// them on storage too, so a lost catalog can be rebuilt with names and
// checksums (dozod catalog rebuild).
//
// It is sealed (ChaCha20-Poly1305) under a key derived from the file key,
// bound to the dataset and file ids: storage learns nothing about names
// (which can be sample ids), and a copy moved to another file does not
// open. Only the Transit key that opens the header opens it, so rotating
// and rewrapping headers keeps it readable without touching it.

// FileInfoKey returns the object key of a file's sealed info.
func FileInfoKey(datasetID, fileID string) string {
	return storage.FilePrefix(datasetID, fileID) + "info.sealed"
}

// fileInfoMagic starts every sealed info object; the version lets a later
// format coexist.
const fileInfoMagic = "dozo-file-info-v1\n"

// maxFileInfo bounds a sealed info object read back from storage.
const maxFileInfo = 64 << 10

// fileInfo is what the catalog knows about a file beyond its manifest.
type fileInfo struct {
	Name         string    `json:"name"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	MD5          string    `json:"md5"`
	CreatedBy    string    `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
	DatasetTitle string    `json:"dataset_title,omitempty"`
}

func fileInfoAEAD(fileKey []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, fileKey, nil, "dozo/v1 file-info", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return chacha20poly1305.New(k)
}

func fileInfoAD(datasetID, fileID string) []byte {
	return []byte("dozo/v1 file-info\x00" + datasetID + "\x00" + fileID)
}

// sealFileInfo returns the sealed info object of a file.
func sealFileInfo(fileKey []byte, datasetID, fileID string, fi *fileInfo) ([]byte, error) {
	a, err := fileInfoAEAD(fileKey)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(fi)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	rand.Read(nonce)
	out := append([]byte(fileInfoMagic), nonce...)
	return a.Seal(out, nonce, pt, fileInfoAD(datasetID, fileID)), nil
}

// openFileInfo authenticates and decodes a sealed info object.
func openFileInfo(fileKey []byte, datasetID, fileID string, obj []byte) (*fileInfo, error) {
	a, err := fileInfoAEAD(fileKey)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(obj, []byte(fileInfoMagic))
	if !ok || len(rest) < a.NonceSize() {
		return nil, errors.New("not a sealed file info object")
	}
	pt, err := a.Open(nil, rest[:a.NonceSize()], rest[a.NonceSize():], fileInfoAD(datasetID, fileID))
	if err != nil {
		return nil, errors.New("sealed file info does not open for this file")
	}
	var fi fileInfo
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fi); err != nil {
		return nil, fmt.Errorf("sealed file info: %w", err)
	}
	if err := ValidateName(fi.Name); err != nil {
		return nil, fmt.Errorf("sealed file info: %w", err)
	}
	if fi.Size < 0 || !isLowerHex(fi.SHA256, 64) || !isLowerHex(fi.MD5, 32) {
		return nil, errors.New("sealed file info: bad size or checksums")
	}
	return &fi, nil
}

// putFileInfo stores the sealed info of a completing upload on one target
// per failure domain, like the manifest. The file key is unwrapped by
// Transit for this and cleared at once.
func (s *Server) putFileInfo(ctx context.Context, targets []storage.Target, ds *catalog.Dataset, f *catalog.File, sha, md5 string) error {
	key, _, err := crypto.OpenHeaderObject(f.HeaderObject, crypto.NewTransitIdentity(ctx, s.keys, ds.TransitKey, f.ID))
	if err != nil {
		return internal("opening the header", err)
	}
	defer clear(key)
	obj, err := sealFileInfo(key, ds.ID, f.ID, &fileInfo{
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
		if err := t.Put(ctx, FileInfoKey(ds.ID, f.ID), bytes.NewReader(obj), int64(len(obj))); err != nil {
			s.noteTargetError(ctx, t.ID(), err)
			return fmt.Errorf("storing the file info of %s on %s: %w", f.ID, t.ID(), err)
		}
	}
	return nil
}
