package filestore

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// The manifest and header stored beside a file's pieces say how to read it
// but not what the catalog calls it: the name, the plaintext checksums and
// who uploaded it live only in the catalog. FileInfo keeps a sealed copy of
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

// PutFileInfo stores a file's sealed info object (SealFileInfo) once per
// failure domain, like the manifest, the domains at once. A failed write
// is a *TargetError.
func PutFileInfo(ctx context.Context, targets []storage.Target, datasetID, fileID string, obj []byte) error {
	return eachDomain(targets, func(t storage.Target) error {
		if err := t.Put(ctx, FileInfoKey(datasetID, fileID), bytes.NewReader(obj), int64(len(obj))); err != nil {
			return &TargetError{Target: t.ID(), Op: "storing the file info of " + fileID, Err: err}
		}
		return nil
	})
}

// fileInfoMagic starts every sealed info object; the version lets a later
// format coexist.
const fileInfoMagic = "dozo-file-info-v1\n"

// maxFileInfo bounds a sealed info object read back from storage.
const maxFileInfo = 64 << 10

// FileInfo is what the catalog knows about a file beyond its manifest.
type FileInfo struct {
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

// SealFileInfo returns the sealed info object of a file.
func SealFileInfo(fileKey []byte, datasetID, fileID string, fi *FileInfo) ([]byte, error) {
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

// OpenFileInfo authenticates and decodes a sealed info object: it opens
// only under the key of the file it was sealed for, and only a well-formed
// name, size and checksums are returned.
func OpenFileInfo(fileKey []byte, datasetID, fileID string, obj []byte) (*FileInfo, error) {
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
	var fi FileInfo
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fi); err != nil {
		return nil, fmt.Errorf("sealed file info: %w", err)
	}
	if err := api.ValidateFileName(fi.Name); err != nil {
		return nil, fmt.Errorf("sealed file info: %w", err)
	}
	if fi.Size < 0 || !isLowerHex(fi.SHA256, 64) || !isLowerHex(fi.MD5, 32) {
		return nil, errors.New("sealed file info: bad size or checksums")
	}
	return &fi, nil
}

// ReadFileInfo reads the sealed info copy of a file on t and opens it. A
// missing copy is an error wrapping storage.ErrNotFound.
func ReadFileInfo(ctx context.Context, t storage.Target, fileKey []byte, datasetID, fileID string) (*FileInfo, error) {
	obj, err := ReadSmall(ctx, t, FileInfoKey(datasetID, fileID), maxFileInfo)
	if err != nil {
		return nil, err
	}
	return OpenFileInfo(fileKey, datasetID, fileID, obj)
}

// isLowerHex reports whether s is exactly n lowercase hex digits.
func isLowerHex(s string, n int) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == n && s == strings.ToLower(s)
}
