package transfer

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
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
//
// Where the file system allows, it writes directly instead (O_DIRECT): the
// bytes go from the caller's buffer to the disk, with no copy into the
// page cache and no page cache to manage, which is most of what writing
// costs the CPU. That needs buffers, lengths and offsets aligned to
// directAlign; the first write that is not (the file's short tail, or a
// caller's odd buffer) turns direct I/O off and continues as above.
type writeBehind struct {
	f            *os.File
	off, started int64 // file offset written up to, and written back from
	dropped      int64
	direct       bool // f is in direct I/O mode
}

// directAlign is the alignment direct I/O needs: a page, which covers the
// logical block size of common disks (512 or 4096 bytes).
const directAlign = 4096

// newWriteBehind writes to f from offset off on.
func newWriteBehind(f *os.File, off int64) *writeBehind {
	w := &writeBehind{f: f, off: off, started: off, dropped: off}
	w.direct = off%directAlign == 0 && setDirect(f, true) == nil
	return w
}

// aligned says whether p can be written directly at w.off.
func (w *writeBehind) aligned(p []byte) bool {
	return len(p) > 0 && w.off%directAlign == 0 && len(p)%directAlign == 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign == 0
}

// buffered leaves direct I/O for good.
func (w *writeBehind) buffered() error {
	if err := setDirect(w.f, false); err != nil {
		return err
	}
	w.direct = false
	w.started, w.dropped = w.off, w.off
	return nil
}

func (w *writeBehind) Write(p []byte) (int, error) {
	if w.direct && !w.aligned(p) {
		if err := w.buffered(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	if w.direct && n == 0 && errors.Is(err, syscall.EINVAL) {
		// The file system refuses this direct write after all.
		if err := w.buffered(); err != nil {
			return 0, err
		}
		n, err = w.f.Write(p)
	}
	w.off += int64(n)
	if w.direct {
		return n, err
	}
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
