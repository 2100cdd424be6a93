package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// tmpPrefix starts the names of DirTarget's temporary files. ValidateKey
// rejects elements starting with '.', so no key can collide with one and
// List can skip them by name.
const tmpPrefix = ".dozo-tmp-"

// DirTarget is a Target backed by a POSIX directory, e.g. on Lustre. A key's
// '/'-separated elements become nested directories.
//
// All file access goes through an os.Root opened on the directory, so even a
// symlink planted inside it cannot make an operation escape it; keys are
// additionally validated with ValidateKey. Put writes a temporary file in the
// destination directory, fsyncs it and renames it into place, so a reader
// sees either the old object, the new one or none, never a partial one.
type DirTarget struct {
	id, domain, dir string
	root            *os.Root
}

var _ Target = (*DirTarget)(nil)

// NewDirTarget returns a DirTarget on dir, which must already exist (a
// missing mount point should be an error, not silently created).
func NewDirTarget(id, domain, dir string) (*DirTarget, error) {
	if err := ValidateID(id); err != nil {
		return nil, fmt.Errorf("storage: dir target id: %w", err)
	}
	if err := ValidateID(domain); err != nil {
		return nil, fmt.Errorf("storage: dir target %s domain: %w", id, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: dir target %s: %w", id, err)
	}
	return &DirTarget{id: id, domain: domain, dir: dir, root: root}, nil
}

// ID implements Target.
func (d *DirTarget) ID() string { return d.id }

// Domain implements Target.
func (d *DirTarget) Domain() string { return d.domain }

// Dir returns the directory the target was opened on.
func (d *DirTarget) Dir() string { return d.dir }

// Close releases the directory handle.
func (d *DirTarget) Close() error { return d.root.Close() }

// objectPath maps a key to a path relative to the root. The mapping is the
// identity on valid keys (they contain only '/'-separated safe elements), so
// it is injective and never leaves the directory.
func objectPath(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

func (d *DirTarget) errorf(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s on %s: %w (%v)", op, key, d.id, ErrNotFound, err)
	}
	return fmt.Errorf("%s %s on %s: %w", op, key, d.id, err)
}

// Put implements Target. The object is visible under key only after its data
// and the rename have been fsynced.
func (d *DirTarget) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	name, err := objectPath(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := path.Dir(name)
	var f *os.File
	var tmp string
	// Create the temporary file directly (the directory usually exists);
	// on ENOENT create the directories and retry. A concurrent Delete may
	// prune a momentarily empty parent in between; a few retries close
	// that window.
	for attempt := 0; ; attempt++ {
		tmp = path.Join(dir, tmpPrefix+randomHex(8))
		f, err = d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt >= 3 {
			return d.errorf("put", key, err)
		}
		if err := d.mkdirAll(dir); err != nil {
			return d.errorf("put", key, err)
		}
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			d.root.Remove(tmp)
		}
	}()
	n, err := copyChunked(ctx, f, r, size)
	if err != nil {
		return d.errorf("put", key, err)
	}
	if size >= 0 && n != size {
		return d.errorf("put", key, fmt.Errorf("short input: got %d of %d bytes", n, size))
	}
	if err = f.Sync(); err != nil {
		return d.errorf("put", key, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return d.errorf("put", key, err)
	}
	if err = d.root.Rename(tmp, name); err != nil {
		return d.errorf("put", key, err)
	}
	// The rename is durable only once the directory itself is synced.
	if err = d.syncDir(dir); err != nil {
		return d.errorf("put", key, err)
	}
	return nil
}

// mkdirAll creates dir and its missing parents, fsyncing the parent of each
// directory it creates: otherwise a crash could lose a new directory, and
// with it objects whose Put already returned.
func (d *DirTarget) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		p := dir[:i]
		err := d.root.Mkdir(p, 0o750)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := d.syncDir(path.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

func (d *DirTarget) syncDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// EINVAL: the file system does not support syncing directories.
		return err
	}
	return nil
}

// Get implements Target.
func (d *DirTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	name, err := objectPath(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s on %s: negative offset %d", key, d.id, off)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, d.errorf("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, d.errorf("get", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, d.errorf("get", key, fs.ErrNotExist)
	}
	if off > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("get %s on %s: offset %d beyond size %d", key, d.id, off, fi.Size())
	}
	n := fi.Size() - off
	if length >= 0 && length < n {
		n = length
	}
	return &sectionReadCloser{SectionReader: io.NewSectionReader(f, off, n), f: f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionReadCloser) Close() error { return s.f.Close() }

// Stat implements Target.
func (d *DirTarget) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	name, err := objectPath(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	fi, err := d.root.Stat(name)
	if err != nil {
		return ObjectInfo{}, d.errorf("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, d.errorf("stat", key, fs.ErrNotExist)
	}
	return dirInfo(key, fi), nil
}

func dirInfo(key string, fi fs.FileInfo) ObjectInfo {
	mt := fi.ModTime()
	return ObjectInfo{
		Key:     key,
		Size:    fi.Size(),
		ETag:    strconv.FormatInt(mt.UnixNano(), 16) + "-" + strconv.FormatInt(fi.Size(), 16),
		ModTime: mt,
	}
}

// Delete implements Target. It also removes directories left empty, up to
// (not including) the target's directory, so deleted files leave no trees
// of empty segment directories behind.
func (d *DirTarget) Delete(ctx context.Context, key string) error {
	name, err := objectPath(key)
	if err != nil {
		return err
	}
	fi, err := d.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return d.errorf("delete", key, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("delete %s on %s: is a directory", key, d.id)
	}
	if err := d.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return d.errorf("delete", key, err)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if d.root.Remove(dir) != nil { // not empty (or raced with a Put): stop
			break
		}
	}
	return nil
}

// List implements Target. It walks only the deepest directory the prefix
// fully names, and skips temporary files.
func (d *DirTarget) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	base := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i]
	}
	err := fs.WalkDir(d.root.FS(), base, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if p == base && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(de.Name(), ".") {
			if de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			// Descend only where keys can still match the prefix.
			if !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) { // deleted meanwhile
			return nil
		}
		if err != nil {
			return err
		}
		return fn(dirInfo(p, fi))
	})
	if err != nil {
		return fmt.Errorf("list %q on %s: %w", prefix, d.id, err)
	}
	return nil
}

// copyBufSize is the write size DirTarget.Put uses. Parallel file systems
// such as Lustre want large, stripe-sized writes; io.Copy's 32 KiB would
// multiply the RPC count.
const copyBufSize = 1 << 20

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyChunked copies up to size bytes (all of r if size < 0) from r to w in
// copyBufSize writes, checking ctx between writes so a cancelled upload of a
// large object stops promptly.
func copyChunked(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	// An in-memory source of exactly the right length (the Writer passes a
	// *bytes.Reader over each piece) is written in one call, which is both
	// the largest possible write and free of an intermediate buffer.
	if br, ok := r.(interface {
		io.WriterTo
		Len() int
	}); ok && size >= 0 && int64(br.Len()) == size {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return br.WriteTo(w)
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	if size >= 0 {
		r = io.LimitReader(r, size)
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := io.ReadFull(r, buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
