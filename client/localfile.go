package client

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"unicode/utf8"
)

// Files the CLI writes beside a user's data — a fetch's partial file,
// sidecar and lock, an upload's journal and lock — may sit in a directory
// other users can write. Such a user could plant a symbolic link (or a
// hard link, or a file of their own) where the CLI is about to write, and
// have plaintext land in a file of their choosing. So the CLI never
// follows a link it did not make: it opens with O_NOFOLLOW (O_EXCL when
// creating) and uses only regular files it owns with a single link;
// anything else is refused, naming the path, with nothing changed.

// UnsafePathError means a path the CLI would write is not a file it may
// use: a symbolic link, a hard link, another user's file or not a regular
// file. Nothing was written through it.
type UnsafePathError struct {
	Path string
	Why  string // "is a symbolic link", ...
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("%s %s; refusing to use it", e.Path, e.Why)
}

// unsafePath wraps an UnsafePathError with op and the hint to remove it.
func unsafePath(op, path, why string) error {
	return hintError(op, "remove it and run the command again; if you did not make it, someone who can write that directory may have planted it",
		&UnsafePathError{Path: path, Why: why})
}

// checkOwnFile says why fi, the file at path, may not be written by this
// process, or "" if it may: it must be a regular file of ours with one link.
func checkOwnFile(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "is a symbolic link"
	case !fi.Mode().IsRegular():
		return "is not a regular file"
	}
	return checkOwner(fi)
}

// checkNoUnsafeFile refuses a path that exists and is not a file the CLI
// may replace or remove; a missing path is fine. It does not follow a
// link at path.
func checkNoUnsafeFile(op, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return opError(op, err)
	}
	if why := checkOwnFile(fi); why != "" {
		return unsafePath(op, path, why)
	}
	return nil
}

// checkOutput checks a fetch's output path before anything is fetched: it
// must not exist unless force is set, and even then not be a symbolic link
// (the rename would replace the link, not write where it points, but a
// link there is not what the user meant to replace).
func checkOutput(op, out string, force bool) error {
	fi, err := os.Lstat(out)
	switch {
	case errors.Is(err, syscall.ENAMETOOLONG):
		return hintError(op, "choose a shorter name with -o",
			fmt.Errorf("%s: %w (the name has %d bytes; most file systems allow 255)", out, syscall.ENAMETOOLONG, len(filepath.Base(out))))
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return opError(op, err)
	case !force:
		return hintError(op, "remove it or pass --force", fmt.Errorf("%s already exists", out))
	case fi.Mode()&fs.ModeSymlink != 0:
		return unsafePath(op, out, "is a symbolic link")
	case !fi.Mode().IsRegular():
		return hintError(op, "choose another output path", fmt.Errorf("%s exists and is not a regular file", out))
	}
	return nil
}

// Side files of a fetch: the partial file, its sidecar and the lock.
const (
	partialSuffix = ".partial"
	sidecarSuffix = ".partial.dozo"
	lockSuffix    = ".partial.lock"
)

// nameMax is the longest file name (in bytes) the common file systems
// allow.
const nameMax = 255

// sideRoomBytes is what side-file names add to the base: the sidecar's
// temporary file (writeSecret) is "." + base + sidecarSuffix + "." +
// up to ten digits + ".tmp".
const sideRoomBytes = 1 + len(sidecarSuffix) + 1 + 10 + len(".tmp")

// fetchSidePaths returns the partial file, sidecar and lock of a fetch to
// out, in out's directory. They are named after out (OUT.partial, ...)
// when that fits in a file name; for a base name too long for that, the
// base is cut short and a hash of the whole base name appended, so the
// side files stay distinct per output and within the file-system limit.
func fetchSidePaths(out string) (partial, side, lock string) {
	dir, base := filepath.Split(out)
	if len(base)+sideRoomBytes > nameMax {
		sum := sha256.Sum256([]byte(base))
		tag := "~" + hex.EncodeToString(sum[:8])
		cut := nameMax - sideRoomBytes - len(tag)
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		base = base[:cut] + tag
	}
	p := filepath.Join(dir, base)
	return p + partialSuffix, p + sidecarSuffix, p + lockSuffix
}
