package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
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

// outputKind is how a fetch writes to its output path.
type outputKind int

const (
	// outputFile: nothing is there yet, or (with Force) a regular file to
	// replace. The data goes to a partial file, renamed into place once
	// verified.
	outputFile outputKind = iota
	// outputDevice: a character device (/dev/null, a terminal) or a FIFO,
	// written through like cp does: opened for writing without creating or
	// truncating anything, no partial file, no rename, no resume.
	outputDevice
)

// resolveOutput decides, before anything is fetched, where and how a fetch
// of the file called name writes out:
//
//   - a missing path, or a regular file with force: a file (outputFile);
//   - an existing directory: the file name in that directory, like cp,
//     with the same rules applied there (a directory there is refused);
//   - a character device or FIFO, of ours or root's: written through
//     (outputDevice), with or without force, since nothing is replaced;
//   - anything else is refused with an error naming the path: a regular
//     file without force, a symbolic link (never followed, never replaced;
//     end the path with "/" to write into a linked directory), a socket, a
//     block device, another user's FIFO or device.
//
// It changes nothing on disk.
func resolveOutput(op, out, name string, force bool) (string, outputKind, error) {
	for range 2 {
		fi, err := os.Lstat(out)
		switch {
		case errors.Is(err, syscall.ENAMETOOLONG):
			return "", 0, hintError(op, "choose a shorter name with -o",
				fmt.Errorf("%s: %w (the name has %d bytes; most file systems allow 255)", out, syscall.ENAMETOOLONG, len(filepath.Base(out))))
		case errors.Is(err, fs.ErrNotExist):
			return out, outputFile, nil
		case err != nil:
			return "", 0, hintError(op, "choose another output path", err)
		}
		switch t := fi.Mode().Type(); {
		case t == fs.ModeSymlink:
			return "", 0, unsafePath(op, out, "is a symbolic link")
		case t == fs.ModeDir:
			if name == "" {
				return "", 0, hintError(op, "remove it or choose another output path", fmt.Errorf("%s is a directory", out))
			}
			if err := client.ValidateName(name); err != nil {
				return "", 0, opError(op, err)
			}
			// Into the directory, like cp; once only, so a directory
			// there is refused rather than entered.
			out, name = filepath.Join(out, name), ""
			continue
		case t == fs.ModeNamedPipe || t == fs.ModeDevice|fs.ModeCharDevice:
			if why := checkDeviceOwner(fi); why != "" {
				return "", 0, unsafePath(op, out, why)
			}
			return out, outputDevice, nil
		case t == 0: // a regular file
			if !force {
				return "", 0, hintError(op, "remove it or pass --force", fmt.Errorf("%s already exists", out))
			}
			return out, outputFile, nil
		default:
			return "", 0, hintError(op, "choose another output path",
				fmt.Errorf("%s is %s; dozo writes to files, directories, character devices (such as /dev/null) and FIFOs", out, fileKind(t)))
		}
	}
	return "", 0, hintError(op, "choose another output path", fmt.Errorf("%s is a directory", out))
}

// fileKind names a non-regular file type for an error message.
func fileKind(t fs.FileMode) string {
	switch {
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0 && t&fs.ModeCharDevice == 0:
		return "a block device"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	}
	return "not a regular file"
}

// checkOutput checks, just before a fetch to a file writes and again
// before it publishes, that out is missing or (with force) a regular file
// to replace: anything that appeared there since resolveOutput, a
// symbolic link included, is refused.
func checkOutput(op, out string, force bool) error {
	fi, err := os.Lstat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return opError(op, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return unsafePath(op, out, "is a symbolic link")
	case !fi.Mode().IsRegular():
		return hintError(op, "choose another output path", fmt.Errorf("%s appeared during the fetch and is %s", out, fileKind(fi.Mode().Type())))
	case !force:
		return hintError(op, "remove it or pass --force", fmt.Errorf("%s already exists", out))
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
// temporary file (client.WriteSecret) is "." + base + sidecarSuffix + "." +
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
