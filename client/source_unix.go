//go:build unix

package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// sourceInfo identifies the version of an open source file. Inode and
// device catch a path that now names another file with the same size and
// mtime (e.g. a re-generated output moved into place).
func sourceInfo(fi fs.FileInfo) SourceInfo {
	si := SourceInfo{Size: fi.Size(), MTimeNS: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		si.Inode = uint64(st.Ino)
		si.Device = uint64(st.Dev)
	}
	return si
}

// errLocked is returned when another dozo process holds a lock.
var errLocked = errors.New("another dozo process is working on it")

// lockFile takes an exclusive, non-blocking lock on path (created 0600) so
// two runs never drive the same upload or fetch at once. The lock goes
// with the process, so a crash never leaves it stale.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// The lock file stays behind: removing it would let a waiting opener
	// lock an unlinked inode while a third process locks a new file.
	return func() { f.Close() }, nil
}
