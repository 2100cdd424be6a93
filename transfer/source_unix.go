//go:build unix

package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
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

// checkOwner says why fi may not be written by this process ("" if it
// may): it must belong to us and have one link — a hard link planted to
// another of our files would otherwise be written through.
func checkOwner(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return ""
	case int(st.Uid) != os.Geteuid():
		return fmt.Sprintf("belongs to another user (uid %d)", st.Uid)
	case st.Nlink != 1:
		return fmt.Sprintf("has %d hard links", st.Nlink)
	}
	return ""
}

// checkDeviceOwner says why the character device or FIFO fi may not be
// written through ("" if it may): it must belong to us or to root. A FIFO
// another user made where the output goes would hand them the plaintext.
func checkDeviceOwner(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 || int(st.Uid) == os.Geteuid() {
		return ""
	}
	return fmt.Sprintf("belongs to another user (uid %d)", st.Uid)
}

// openDevice opens the character device or FIFO at path for writing: no
// O_CREAT, no O_TRUNC, no link followed, and the opened file must still
// be a device or FIFO of ours or root's (not something swapped in since
// it was checked). A FIFO nobody reads yet is opened once a reader comes
// (waiting is told when that starts), or not at all if ctx ends first.
// A FIFO is left non-blocking, so a write to a stalled reader ends with
// a write deadline.
func openDevice(ctx context.Context, op, path string, waiting func()) (*os.File, error) {
	told := false
	for {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
		if errors.Is(err, syscall.ENXIO) {
			// A FIFO without a reader: a non-blocking open cannot wait.
			if !told && waiting != nil {
				waiting()
				told = true
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return nil, openError(op, path, &fs.PathError{Op: "open", Path: path, Err: err})
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			syscall.Close(fd)
			return nil, opError(op, err)
		}
		fifo := st.Mode&syscall.S_IFMT == syscall.S_IFIFO
		switch {
		case !fifo && st.Mode&syscall.S_IFMT != syscall.S_IFCHR:
			syscall.Close(fd)
			return nil, unsafePath(op, path, "was replaced by another kind of file")
		case st.Uid != 0 && int(st.Uid) != os.Geteuid():
			syscall.Close(fd)
			return nil, unsafePath(op, path, fmt.Sprintf("belongs to another user (uid %d)", st.Uid))
		}
		if !fifo {
			// Devices are written blocking (some refuse polling).
			if err := syscall.SetNonblock(fd, false); err != nil {
				syscall.Close(fd)
				return nil, opError(op, err)
			}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// openOwnFile opens path read-write without following a symbolic link at
// it, creating it (0600, O_EXCL) if create is set and it does not exist.
// It returns an UnsafePathError (wrapped with op) unless the file is a
// regular file of ours with one link; nothing is written before that
// check, so a refused path is left as it was. A missing path without
// create is fs.ErrNotExist.
func openOwnFile(op, path string, create bool) (*os.File, error) {
	// O_NONBLOCK: a planted FIFO or device must not block the open; the
	// check below refuses it.
	const flags = os.O_RDWR | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	for range 3 {
		f, err := os.OpenFile(path, flags, 0)
		if errors.Is(err, fs.ErrNotExist) && create {
			f, err = os.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				continue // someone created it meanwhile: open that
			}
		}
		if err != nil {
			return nil, openError(op, path, err)
		}
		if err := checkOpened(op, path, f); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	return nil, opError(op, fmt.Errorf("%s keeps appearing and disappearing", path))
}

// openOwnFileRead opens path for reading with the same rules as
// openOwnFile (a file we wrote and nobody linked or replaced).
func openOwnFileRead(op, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, openError(op, path, err)
	}
	if err := checkOpened(op, path, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkOpened(op, path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return opError(op, err)
	}
	if why := checkOwnFile(fi); why != "" {
		return unsafePath(op, path, why)
	}
	return nil
}

// openError explains a failed no-follow open: ELOOP (EMLINK on some BSDs)
// means a symbolic link is at path.
func openError(op, path string, err error) error {
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK) {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return unsafePath(op, path, "is a symbolic link")
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return err // callers test for it
	}
	return opError(op, err)
}

// errLocked is returned when another dozo process holds a lock.
var errLocked = errors.New("another dozo process is working on it")

// lockFile takes an exclusive, non-blocking lock on path (created 0600) so
// two runs never drive the same upload or fetch at once. The lock goes
// with the process, so a crash never leaves it stale.
//
// unlock removes the file while still holding the lock, so no lock file
// is left behind. That is safe because a lock counts only if, once
// flocked, the file is still the one at path: a process that opened the
// file before its holder unlinked it, and locked it after, holds a lock
// on a file nobody else will open, sees that, and tries again.
func lockFile(path string) (unlock func(), err error) {
	op := "locking " + path
	for range 10 {
		f, err := openOwnFile(op, path, true)
		if err != nil {
			return nil, err
		}
		if lockOpenedHook != nil {
			lockOpenedHook()
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errLocked
			}
			return nil, opError(op, err)
		}
		if isAt(f, path) {
			return func() {
				if isAt(f, path) {
					os.Remove(path)
				}
				f.Close()
			}, nil
		}
		f.Close()
	}
	return nil, opError(op, errors.New("the lock file keeps being replaced"))
}

// isAt reports whether path still names the open file f.
func isAt(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

// lockOpenedHook, if set (by tests), runs between a lock file's open and
// its flock.
var lockOpenedHook func()

// syncDirErr makes the renames in dir durable.
func syncDirErr(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
