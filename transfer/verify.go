package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"hash"
	"io"
	"io/fs"
	"os"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/filestore"
)

// VerifyResult compares a local copy of a stored file with the catalog.
type VerifyResult struct {
	Dataset string `json:"dataset"`
	Name    string `json:"name"`
	FileID  string `json:"file_id"`
	Path    string `json:"path"`
	Size    int64  `json:"size"`         // of the local copy
	Want    int64  `json:"catalog_size"` // the catalog's
	// SHA256 and MD5 are the local copy's; MD5 only when asked for.
	SHA256 string `json:"sha256,omitempty"`
	MD5    string `json:"md5,omitempty"`
	// CatalogSHA256 and CatalogMD5 are what the catalog records.
	CatalogSHA256 string `json:"catalog_sha256"`
	CatalogMD5    string `json:"catalog_md5,omitempty"`
	// Checked names the checksums compared; Mismatches those that differ
	// ("size", "sha256", "md5"). Match is true only if every one compared
	// and none differs.
	Checked    []string `json:"checked"`
	Mismatches []string `json:"mismatches"`
	Match      bool     `json:"match"`
}

// ErrNoChecksum means the catalog has no checksum to compare a copy with.
var ErrNoChecksum = errors.New("the catalog records no checksum for this file")

// VerifyLocal hashes the local file at path and compares it with the
// catalog's size and SHA-256 of dataset/name (and MD5 when withMD5). It
// reads only the file list from dozod: no fetch, no key. A mismatch is a
// result with Match false, not an error; errors are for what could not be
// compared (no such file here or in the dataset, unreadable copy).
func VerifyLocal(ctx context.Context, c *client.Client, dataset, name, path string, withMD5 bool) (*VerifyResult, error) {
	op := "verifying " + path + " against " + dataset + "/" + name
	fp, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, hintError(op, "give the path of your local copy", fmt.Errorf("%s does not exist", path))
	}
	if err != nil {
		return nil, opError(op, err)
	}
	defer fp.Close()
	fi, err := fp.Stat()
	if err != nil {
		return nil, opError(op, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, opError(op, fmt.Errorf("%s is not a regular file", path))
	}
	files, err := c.ListFiles(ctx, dataset)
	if err != nil {
		return nil, opError(op, err)
	}
	var f *api.File
	for i := range files {
		if files[i].Name == name && files[i].State != "uploading" {
			f = &files[i]
		}
	}
	if f == nil {
		return nil, hintError(op, "see 'dozo ls "+dataset+"'", fmt.Errorf("dataset %s has no file %q", dataset, name))
	}
	if f.SHA256 == "" && (!withMD5 || f.MD5 == "") {
		return nil, opError(op, ErrNoChecksum)
	}
	r := &VerifyResult{Dataset: dataset, Name: name, FileID: f.ID, Path: path, Size: fi.Size(), Want: f.Size,
		CatalogSHA256: f.SHA256, Checked: []string{"size"}, Mismatches: []string{}}
	if withMD5 {
		r.CatalogMD5 = f.MD5
	}
	if r.Size != r.Want {
		// Different lengths cannot hash alike: no need to read the copy.
		r.Mismatches = append(r.Mismatches, "size")
		return r, nil
	}
	sums := filestore.NewChecksums(withMD5)
	if _, err := io.CopyBuffer(sums, readerCtx{ctx, fp}, make([]byte, 1<<20)); err != nil {
		return nil, opError(op, err)
	}
	compare := func(what, want string, h hash.Hash) string {
		got := hex.EncodeToString(h.Sum(nil))
		if want != "" {
			r.Checked = append(r.Checked, what)
			if got != want {
				r.Mismatches = append(r.Mismatches, what)
			}
		}
		return got
	}
	r.SHA256 = compare("sha256", f.SHA256, sums.SHA256)
	if sums.MD5 != nil {
		r.MD5 = compare("md5", f.MD5, sums.MD5)
	}
	r.Match = len(r.Mismatches) == 0
	return r, nil
}

// readerCtx stops a long read when ctx ends (an interrupted verify of a
// 200 GB copy).
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
