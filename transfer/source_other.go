//go:build !unix

package transfer

import (
	"context"
	"errors"
	"github.com/dozo-vault/dozo/client"
	"io/fs"
	"os"
)

func sourceInfo(fi fs.FileInfo) SourceInfo {
	return SourceInfo{Size: fi.Size(), MTimeNS: fi.ModTime().UnixNano()}
}

// checkOwner cannot tell owners and links apart here.
func checkOwner(fs.FileInfo) string { return "" }

// checkDeviceOwner cannot tell owners apart here.
func checkDeviceOwner(fs.FileInfo) string { return "" }

// openDevice opens the device at path for writing, without creating or
// truncating it.
func openDevice(_ context.Context, op, path string, _ func()) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, opError(op, err)
	}
	return f, nil
}

// openOwnFile refuses a link at path (checked before the open: without
// O_NOFOLLOW a narrow race remains on these systems).
func openOwnFile(op, path string, create bool) (*os.File, error) {
	if err := checkNoUnsafeFile(op, path); err != nil {
		return nil, err
	}
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, opError(op, err)
	}
	return f, err
}

func openOwnFileRead(op, path string) (*os.File, error) {
	if err := checkNoUnsafeFile(op, path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, opError(op, err)
	}
	return f, err
}

var errLocked = errors.New("another dozo process is working on it")

// lockFile is a no-op where flock is unavailable.
func lockFile(string) (func(), error) { return func() {}, nil }

// syncDirErr is a no-op: directories cannot be synced here.
func syncDirErr(string) error { return nil }

// isAt reports whether path still names the open file f.
func isAt(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}
