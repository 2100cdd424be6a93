package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing the n bytes of f at off
// to disk, and returns without waiting for them.
func startWriteback(f *os.File, off, n int64) {
	withFd(f, func(fd int) error { return unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

func preallocate(f *os.File, off, n int64) error {
	return withFd(f, func(fd int) error { return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, off, n) })
}

// withFd runs op on f's descriptor (SyscallConn leaves the file's mode as
// it is, unlike Fd).
func withFd(f *os.File, op func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = op(int(fd)) }); err != nil {
		return err
	}
	return opErr
}

// dropWritten waits until the n bytes of f at off are on disk and drops
// them from the page cache.
func dropWritten(f *os.File, off, n int64) {
	withFd(f, func(fd int) error {
		if err := unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil {
			return err
		}
		return unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
	})
}
