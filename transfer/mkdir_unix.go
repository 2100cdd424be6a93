//go:build unix

package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkDirOwner says why the directory fi may not be written into by a
// fetch ("" if it may): it must be ours or root's, so that no other user
// can swap what is in it.
func checkDirOwner(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Sprintf("is another user's directory (uid %d)", st.Uid)
	}
	return ""
}

// MakeParents makes the directories of name ("a/b" of "a/b/c.bam") below
// dir, as cp does (0777 less the umask), and checks each, existing or new,
// through a descriptor opened with O_NOFOLLOW|O_DIRECTORY from the one
// before it: no symbolic link is followed, a file in the way is an error,
// and every directory on the way is ours or root's. dir itself is opened
// as given.
func MakeParents(dir, name string) error {
	parts := strings.Split(name, "/")
	parts = parts[:len(parts)-1]
	if len(parts) == 0 {
		return nil
	}
	op := "fetching " + name
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return opError(op, fmt.Errorf("%s: %w", dir, err))
	}
	defer func() { unix.Close(fd) }()
	p := dir
	for _, part := range parts {
		p = filepath.Join(p, part)
		if err := unix.Mkdirat(fd, part, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
			return opError(op, fmt.Errorf("making %s: %w", p, err))
		}
		next, err := unix.Openat(fd, part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			// O_DIRECTORY answers ENOTDIR for a link too: tell them apart.
			var st unix.Stat_t
			if unix.Fstatat(fd, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		switch {
		case errors.Is(err, unix.ELOOP):
			return unsafePath(op, p, "is a symbolic link")
		case errors.Is(err, unix.ENOTDIR):
			return hintError(op, "remove it or fetch into another directory", fmt.Errorf("%s is not a directory", p))
		case err != nil:
			return opError(op, fmt.Errorf("%s: %w", p, err))
		}
		unix.Close(fd)
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return opError(op, err)
		}
		if int(st.Uid) != os.Geteuid() && st.Uid != 0 {
			return unsafePath(op, p, fmt.Sprintf("is another user's directory (uid %d)", st.Uid))
		}
	}
	return nil
}
