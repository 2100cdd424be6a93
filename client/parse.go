package client

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// ValidateName checks a file's name in dozo before anything is sent; it is
// dozod's own rule, api.ValidateFileName.
var ValidateName = api.ValidateFileName

// DefaultName is the name a local file gets in dozo: its base name, in
// NFC (api.NormalizeFileName).
func DefaultName(path string) string {
	return api.NormalizeFileName(filepath.Base(filepath.Clean(path)))
}

// ParseFileRef splits "DATASET/NAME". The dataset id is checked like
// storage ids; the name is put in NFC (api.NormalizeFileName) and checked
// with ValidateName.
func ParseFileRef(s string) (dataset, name string, err error) {
	dataset, name, ok := strings.Cut(api.NormalizeFileName(s), "/")
	if !ok || dataset == "" || name == "" {
		return "", "", fmt.Errorf("bad file reference %q: want DATASET/NAME, e.g. JGAD000001/sample1.cram", s)
	}
	if err := storage.ValidateID(dataset); err != nil {
		return "", "", fmt.Errorf("bad dataset id %q: use A-Z a-z 0-9 . _ - (not starting with . or -)", dataset)
	}
	if err := ValidateName(name); err != nil {
		return "", "", err
	}
	return dataset, name, nil
}
