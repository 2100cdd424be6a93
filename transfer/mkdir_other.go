//go:build !unix

package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkDirOwner cannot tell owners apart here.
func checkDirOwner(fs.FileInfo) string { return "" }

// MakeParents makes the directories of name below dir, refusing a link or
// a file on the way (checked after each is made; there is no openat here).
func MakeParents(dir, name string) error {
	parts := strings.Split(name, "/")
	p := dir
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		if err := os.Mkdir(p, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return opError("fetching "+name, err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return opError("fetching "+name, err)
		}
		if !fi.IsDir() {
			return unsafePath("fetching "+name, p, fmt.Sprintf("is %s", fileKind(fi.Mode().Type())))
		}
	}
	return nil
}
