package transfer

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// writebackWindow is how many bytes a writeBehind lets accumulate before it
// asks the kernel to start writing them to disk.
const writebackWindow = 16 << 20

// writeBehind writes to a file and starts the disk writes of what it wrote
// a window at a time, without waiting for them; once a window is on disk,
// a window later, it drops those pages from the page cache. The fetch's
// closing fsync then finds most of the file already on disk instead of
// waiting for all of it, so writing the disk overlaps the transfer, and
// the fetch holds a few windows of page cache instead of the whole file:
// on a machine whose memory is full of cache, every page written past
// that would first have to be reclaimed, in the writing process, which
// cost a fetch of 1 GiB 1 to 1.5 CPU seconds of kernel time. Durability is
// unchanged: only the final fsync promises anything. A file read again
// right after its fetch is read from disk.
type writeBehind struct {
	f            *os.File
	off, started int64 // file offset written up to, and written back from
	dropped      int64
}

// newWriteBehind writes to f from offset off on.
func newWriteBehind(f *os.File, off int64) *writeBehind {
	return &writeBehind{f: f, off: off, started: off, dropped: off}
}

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writebackWindow {
		startWriteback(w.f, w.started, w.off-w.started)
		if w.started-w.dropped >= writebackWindow {
			dropWritten(w.f, w.dropped, w.started-w.dropped)
			w.dropped = w.started
		}
		w.started = w.off
	}
	return n, err
}

// reserveSpace allocates n bytes of disk for f from offset off on, without
// changing its size, so a fetch that cannot fit fails before it moves any
// data and the file's blocks are laid out in one piece. File systems that
// cannot preallocate are left to allocate as the data comes.
func reserveSpace(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := preallocate(f, off, n)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: not enough disk space for %d more bytes: %w", f.Name(), n, err)
	}
	return nil
}
