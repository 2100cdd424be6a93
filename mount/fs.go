// Package mount presents the stored files a user may read as a read-only
// FUSE file system, DIR/DATASET/FILE, decrypted on demand. A file whose
// name has directories (lane2/S1_R1.fastq.gz) is DIR/DATASET/lane2/S1_R1.fastq.gz.
//
// It keeps these properties:
//
//   - No plaintext is written to disk. Decrypted segments live in a
//     byte-bounded in-memory cache (Cache); files are opened with FUSE
//     direct I/O, so the kernel's page cache does not hold them either and
//     every read reaches this package.
//   - Every open is an access check and an audited fetch at dozod
//     (transfer.Open re-fetches the file's header).
//   - Reads of an open file fail with EACCES once dozod refuses the user
//     (a revoked or expired grant, a freeze, a deleted file): each read
//     checks that access was confirmed within MaxAge (a background check
//     lists every mounted dataset every CheckEvery), and a refusal seen by
//     any check or transfer ends reads of that dataset at once.
//   - Memory is bounded: the cache's limit covers decrypted segments and
//     the stored segments each open file's reader keeps.
package mount

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
)

// Defaults of Options.
const (
	DefaultCacheSize  = 256 << 20
	DefaultCheckEvery = 20 * time.Second
	DefaultMaxAge     = time.Minute
)

// Options configure a mount.
type Options struct {
	// Dataset, if set, is the only dataset mounted; else every dataset the
	// user may read.
	Dataset string
	// CacheSize bounds the decrypted segments held and the stored
	// segments open files' readers keep (default DefaultCacheSize).
	CacheSize int64
	// UID and GID own every file and directory.
	UID, GID uint32
	// CheckEvery is how often access to the mounted datasets is checked
	// with dozod; MaxAge is how long reads go on without a successful
	// check (defaults DefaultCheckEvery, DefaultMaxAge).
	CheckEvery, MaxAge time.Duration
	// Logf, if set, is told of access changes and read failures. It never
	// gets keys, tokens or file contents.
	Logf func(format string, args ...any)
	// Debug logs every FUSE request.
	Debug bool
}

// errStale is the refusal when access could not be confirmed lately.
var errStale = errors.New("access could not be confirmed with dozod within the last minute")

// FS is the state of one mount: the datasets and files seen, when access
// to each dataset was last confirmed, the open files and the cache.
type FS struct {
	remote  Remote
	opts    Options
	cache   *Cache
	ctx     context.Context // the mount's lifetime: open files read under it
	now     func() time.Time
	started time.Time // the root directory's times

	mu       sync.Mutex
	datasets map[string]*dataset
	open     map[string]*openFile // by file ID
}

type dataset struct {
	info   api.Dataset
	files  map[string]api.File // available files by name
	okAt   time.Time           // when the last successful check was sent
	denied error               // dozod's last refusal; nil if none since
	skip   error               // why the dataset is not mounted at all
}

// New returns the state of a mount reading through r. ctx bounds every
// read of the mount's files. Call Check before mounting.
func New(ctx context.Context, r Remote, o Options) *FS {
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = DefaultCheckEvery
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return &FS{remote: r, opts: o, cache: NewCache(o.CacheSize), ctx: ctx, now: time.Now, started: time.Now(),
		datasets: map[string]*dataset{}, open: map[string]*openFile{}}
}

// Cache returns the mount's segment cache.
func (f *FS) Cache() *Cache { return f.cache }

// readable reports whether the caller may read d's data: grantee,
// submitter or custodian (an admin alone may not).
func readable(d api.Dataset) bool {
	for _, a := range d.Access {
		switch a {
		case "grantee", "submitter", "custodian":
			return true
		}
	}
	return false
}

// storedSegment is the stored (encrypted) size of a segment holding plain
// bytes of plaintext: whole chunks, each with its tag.
func storedSegment(plain int64) int64 {
	return plain / crypto.ChunkSize * (crypto.ChunkSize + crypto.ChunkOverhead)
}

// segmentBudget is what an open file of a dataset with plain-byte
// segments needs from the cache: the two stored segments its reader keeps
// (reserved while it is open), and room for the segment being read and
// the one being read ahead.
func segmentBudget(plain int64) (reserve, headroom int64) {
	return 2 * storedSegment(plain), 2 * plain
}

// Check asks dozod which datasets the user may read and lists their files.
// It confirms access to each dataset listed; a dataset that is no longer
// listed, or whose listing dozod refuses, is denied until a later check
// succeeds. It returns an error if the datasets cannot be listed, or if
// the dataset asked for is not readable.
func (f *FS) Check(ctx context.Context) error {
	all, err := f.remote.Datasets(ctx)
	if err != nil {
		if refused(err) {
			f.mu.Lock()
			for id, d := range f.datasets {
				f.denyLocked(id, d, err)
			}
			f.mu.Unlock()
		}
		return err
	}
	want := map[string]api.Dataset{}
	for _, d := range all {
		if (f.opts.Dataset == "" || d.ID == f.opts.Dataset) && readable(d) {
			want[d.ID] = d
		}
	}
	f.mu.Lock()
	for id, d := range f.datasets {
		if _, ok := want[id]; !ok {
			f.denyLocked(id, d, fmt.Errorf("dataset %s is no longer readable by you", id))
		}
	}
	f.mu.Unlock()
	if f.opts.Dataset != "" && len(want) == 0 {
		return fmt.Errorf("dataset %q is not among the datasets you may read", f.opts.Dataset)
	}
	for id, info := range want {
		f.mu.Lock()
		d := f.datasets[id]
		if d == nil {
			d = &dataset{}
			if reserve, headroom := segmentBudget(info.PlainSegmentSize); reserve+headroom > f.opts.CacheSize {
				d.skip = fmt.Errorf("its %d MiB segments need a cache of at least %d MiB (--cache-size)",
					info.PlainSegmentSize>>20, (reserve+headroom+1<<20-1)>>20)
				f.opts.Logf("leaving dataset %s out: %v", id, d.skip)
			}
			f.datasets[id] = d
		}
		d.info = info
		skip := d.skip
		f.mu.Unlock()
		if skip != nil {
			if f.opts.Dataset != "" {
				return fmt.Errorf("dataset %s: %w", id, skip)
			}
			continue
		}
		if info.Frozen {
			f.deny(id, fmt.Errorf("dataset %q is frozen", id))
			continue
		}
		sent := f.now()
		files, err := f.remote.Files(ctx, id)
		switch {
		case err == nil:
			byName := make(map[string]api.File, len(files))
			for _, fl := range files {
				if fl.State == api.FileAvailable {
					byName[fl.Name] = fl
				}
			}
			f.mu.Lock()
			d.files = byName
			f.confirmLocked(id, d, sent)
			f.mu.Unlock()
		case refused(err):
			f.deny(id, err)
		default:
			// Not an answer: access goes stale unless a later check succeeds.
			f.opts.Logf("cannot confirm access to dataset %s: %v", id, err)
		}
	}
	return nil
}

// deny ends reads of dataset id until a check succeeds again.
func (f *FS) deny(id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.datasets[id]; d != nil {
		f.denyLocked(id, d, err)
	}
}

func (f *FS) denyLocked(id string, d *dataset, err error) {
	if d.denied == nil {
		f.opts.Logf("reads of dataset %s now fail: %v", id, err)
	}
	d.denied = err
}

// confirmLocked records a successful access check sent at sent.
func (f *FS) confirmLocked(id string, d *dataset, sent time.Time) {
	if d.denied != nil {
		f.opts.Logf("access to dataset %s confirmed again", id)
		d.denied = nil
	}
	if sent.After(d.okAt) {
		d.okAt = sent
	}
}

// allowed returns nil if reads of dataset id may go on: no refusal since
// the last successful check, sent within MaxAge.
func (f *FS) allowed(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.datasets[id]
	switch {
	case d == nil || d.skip != nil:
		return errors.New("dataset not mounted")
	case d.denied != nil:
		return d.denied
	case f.now().Sub(d.okAt) > f.opts.MaxAge:
		return errStale
	}
	return nil
}

// Run checks access every CheckEvery until ctx ends.
func (f *FS) Run(ctx context.Context) {
	t := time.NewTicker(f.opts.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, f.opts.CheckEvery)
			if err := f.Check(cctx); err != nil && ctx.Err() == nil {
				f.opts.Logf("access check: %v", err)
			}
			cancel()
		}
	}
}

// errno is the FUSE answer for err: EACCES for a refusal.
func (f *FS) errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case refused(err):
		return syscall.EACCES
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	return syscall.EIO
}

// openFile is a stored file with open handles. All handles share the
// newest transfer.Open of it: each open replaces it, after its own access
// check.
type openFile struct {
	id       string
	ds, name string
	size     int64
	plainSeg int64
	refs     int // guarded by FS.mu
	release  func()

	mu sync.Mutex
	rf File
}

func (o *openFile) reader() File {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rf
}

// load returns the loader of segment s.
func (o *openFile) load(s int64) func([]byte) error {
	return func(buf []byte) error {
		n, err := o.reader().ReadAt(buf, s*o.plainSeg)
		if n == len(buf) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
}

// acquire registers a handle of the file rf opened.
func (f *FS) acquire(ds, name string, plainSeg int64, rf File) (*openFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.open[rf.ID()]
	if o == nil {
		reserve, headroom := segmentBudget(plainSeg)
		// A small file's reader keeps no more than the file (an index).
		reserve = min(reserve, crypto.CiphertextSize(rf.Size()))
		rel, err := f.cache.Reserve(reserve, headroom)
		if err != nil {
			return nil, err
		}
		o = &openFile{id: rf.ID(), ds: ds, name: name, size: rf.Size(), plainSeg: plainSeg, release: rel, rf: rf}
		f.open[o.id] = o
	} else {
		o.mu.Lock()
		old := o.rf
		o.rf = rf
		o.mu.Unlock()
		old.Close()
	}
	o.refs++
	return o, nil
}

func (f *FS) releaseFile(o *openFile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o.refs--
	if o.refs == 0 {
		delete(f.open, o.id)
		o.release()
		o.reader().Close()
	}
}

// Node IDs: directories and files are numbered by a hash of what they
// are, so a file uploaded again under the same name is a new inode.
func ino(kind, s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(s))
	return h.Sum64() | 1<<63 // never the root's 1
}

func (f *FS) dirAttr(out *fuse.Attr, mtime time.Time) {
	out.Mode = fuse.S_IFDIR | 0o500
	out.Nlink = 2
	out.Owner = fuse.Owner{Uid: f.opts.UID, Gid: f.opts.GID}
	out.SetTimes(&mtime, &mtime, &mtime)
}

// root is DIR: one directory per dataset.
type root struct {
	fs.Inode
	fsys *FS
}

var (
	_ fs.NodeGetattrer = (*root)(nil)
	_ fs.NodeReaddirer = (*root)(nil)
	_ fs.NodeLookuper  = (*root)(nil)
)

func (r *root) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fsys.dirAttr(&out.Attr, r.fsys.started)
	return 0
}

func (r *root) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	r.fsys.mu.Lock()
	defer r.fsys.mu.Unlock()
	var es []fuse.DirEntry
	for id, d := range r.fsys.datasets {
		if d.skip == nil {
			es = append(es, fuse.DirEntry{Name: id, Mode: fuse.S_IFDIR, Ino: ino("dataset", id)})
		}
	}
	return fs.NewListDirStream(es), 0
}

func (r *root) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	r.fsys.mu.Lock()
	d := r.fsys.datasets[name]
	ok := d != nil && d.skip == nil
	var created time.Time
	if ok {
		created = d.info.CreatedAt
	}
	r.fsys.mu.Unlock()
	if !ok {
		return nil, syscall.ENOENT
	}
	r.fsys.dirAttr(&out.Attr, created)
	n := &dir{fsys: r.fsys, id: name}
	return r.NewInode(ctx, n, fs.StableAttr{Mode: fuse.S_IFDIR, Ino: ino("dataset", name)}), 0
}

// dir is DIR/DATASET, or a directory below it (DIR/DATASET/PATH): the
// dataset's available files whose names start with PATH/, as files and
// the directories of their names.
type dir struct {
	fs.Inode
	fsys *FS
	id   string
	path string // "" for the dataset's own directory
}

// entries splits the dataset's files into what this directory shows:
// files by base name, and subdirectories. A name that is both a file and
// another file's directory ("a" and "a/b", which dozo refuses in one
// upload but two uploads could make) shows as the directory.
func (d *dir) entries(files map[string]api.File) (subdirs map[string]bool, here map[string]api.File) {
	subdirs, here = map[string]bool{}, map[string]api.File{}
	prefix := ""
	if d.path != "" {
		prefix = d.path + "/"
	}
	for name, fl := range files {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		if sub, _, isDir := strings.Cut(rest, "/"); isDir {
			subdirs[sub] = true
		} else {
			here[rest] = fl
		}
	}
	for s := range subdirs {
		delete(here, s)
	}
	return subdirs, here
}

// child is the dataset path of an entry of d.
func (d *dir) child(name string) string {
	if d.path == "" {
		return name
	}
	return d.path + "/" + name
}

var (
	_ fs.NodeGetattrer = (*dir)(nil)
	_ fs.NodeReaddirer = (*dir)(nil)
	_ fs.NodeLookuper  = (*dir)(nil)
)

func (d *dir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.mu.Lock()
	var mtime time.Time
	if ds := d.fsys.datasets[d.id]; ds != nil {
		mtime = ds.info.CreatedAt
	}
	d.fsys.mu.Unlock()
	d.fsys.dirAttr(&out.Attr, mtime)
	return 0
}

// files returns the dataset's files, or EACCES if reads are refused.
func (d *dir) files() (map[string]api.File, syscall.Errno) {
	if err := d.fsys.allowed(d.id); err != nil {
		return nil, syscall.EACCES
	}
	d.fsys.mu.Lock()
	defer d.fsys.mu.Unlock()
	return d.fsys.datasets[d.id].files, 0
}

func (d *dir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	files, errno := d.files()
	if errno != 0 {
		return nil, errno
	}
	subdirs, here := d.entries(files)
	es := make([]fuse.DirEntry, 0, len(subdirs)+len(here))
	for name := range subdirs {
		es = append(es, fuse.DirEntry{Name: name, Mode: fuse.S_IFDIR, Ino: ino("dir", d.id+"/"+d.child(name))})
	}
	for name, fl := range here {
		es = append(es, fuse.DirEntry{Name: name, Mode: fuse.S_IFREG, Ino: ino("file", fl.ID)})
	}
	return fs.NewListDirStream(es), 0
}

func (d *dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	files, errno := d.files()
	if errno != 0 {
		return nil, errno
	}
	subdirs, here := d.entries(files)
	if subdirs[name] {
		var mtime time.Time
		d.fsys.mu.Lock()
		if ds := d.fsys.datasets[d.id]; ds != nil {
			mtime = ds.info.CreatedAt
		}
		d.fsys.mu.Unlock()
		d.fsys.dirAttr(&out.Attr, mtime)
		n := &dir{fsys: d.fsys, id: d.id, path: d.child(name)}
		return d.NewInode(ctx, n, fs.StableAttr{Mode: fuse.S_IFDIR, Ino: ino("dir", d.id+"/"+n.path)}), 0
	}
	fl, ok := here[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	n := &file{fsys: d.fsys, info: fl}
	n.attr(&out.Attr)
	return d.NewInode(ctx, n, fs.StableAttr{Mode: fuse.S_IFREG, Ino: ino("file", fl.ID)}), 0
}

// file is DIR/DATASET/FILE.
type file struct {
	fs.Inode
	fsys *FS
	info api.File // as listed; the same ID always has the same contents
}

var (
	_ fs.NodeGetattrer = (*file)(nil)
	_ fs.NodeOpener    = (*file)(nil)
)

func (n *file) attr(out *fuse.Attr) {
	out.Mode = fuse.S_IFREG | 0o400
	out.Nlink = 1
	out.Size = uint64(n.info.Size)
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 1 << 20
	out.Owner = fuse.Owner{Uid: n.fsys.opts.UID, Gid: n.fsys.opts.GID}
	t := n.info.CreatedAt
	out.SetTimes(&t, &t, &t)
}

func (n *file) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	return 0
}

// Open opens the file through transfer.Open: an access check and an audited
// fetch at dozod, every time.
func (n *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	f := n.fsys
	ds := n.info.Dataset
	f.mu.Lock()
	d := f.datasets[ds]
	ok := d != nil && d.skip == nil
	var plainSeg int64
	if ok {
		plainSeg = d.info.PlainSegmentSize
	}
	f.mu.Unlock()
	if !ok {
		return nil, 0, syscall.ENOENT
	}
	sent := f.now()
	// The file's reads run under the mount's context, not this request's.
	rf, err := f.remote.Open(f.ctx, ds, n.info.Name)
	if err != nil {
		if refused(err) {
			f.deny(ds, err)
		}
		f.opts.Logf("opening %s/%s: %v", ds, n.info.Name, err)
		return nil, 0, f.errno(err)
	}
	f.mu.Lock()
	f.confirmLocked(ds, d, sent)
	f.mu.Unlock()
	if rf.ID() != n.info.ID || rf.Size() != n.info.Size {
		// Uploaded again since it was looked up: this inode is stale.
		rf.Close()
		return nil, 0, syscall.ESTALE
	}
	o, err := f.acquire(ds, n.info.Name, plainSeg, rf)
	if err != nil {
		rf.Close()
		f.opts.Logf("opening %s/%s: %v; close other files of the mount or raise --cache-size", ds, n.info.Name, err)
		return nil, 0, syscall.ENFILE
	}
	return &handle{fsys: f, of: o}, fuse.FOPEN_DIRECT_IO, 0
}

// handle is one open of a file.
type handle struct {
	fsys *FS
	of   *openFile

	mu   sync.Mutex
	next int64 // where a sequential read would continue
	done bool
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

// Read serves [off, off+len(dest)) from the cache, loading missing
// segments; a sequential reader gets the next segment warmed.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f, o := h.fsys, h.of
	if err := f.allowed(o.ds); err != nil {
		return nil, syscall.EACCES
	}
	if off >= o.size {
		return fuse.ReadResultData(nil), 0
	}
	want := min(int64(len(dest)), o.size-off)
	var n int64
	for n < want {
		pos := off + n
		s := pos / o.plainSeg
		start := s * o.plainSeg
		c, err := f.cache.Read(segKey{o.id, s}, min(o.plainSeg, o.size-start), pos-start, dest[n:want], o.load(s))
		if err != nil {
			if refused(err) {
				f.deny(o.ds, err)
			}
			if ctx.Err() == nil {
				f.opts.Logf("reading %s/%s: %v", o.ds, o.name, err)
			}
			return nil, f.errno(err)
		}
		n += int64(c)
	}
	h.mu.Lock()
	sequential := off == h.next
	h.next = off + n
	h.mu.Unlock()
	if next := (off+n-1)/o.plainSeg + 1; sequential && next*o.plainSeg < o.size {
		start := next * o.plainSeg
		f.cache.Warm(segKey{o.id, next}, min(o.plainSeg, o.size-start), o.load(next))
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	done := h.done
	h.done = true
	h.mu.Unlock()
	if !done {
		h.fsys.releaseFile(h.of)
	}
	return 0
}

// Datasets returns the IDs of the mounted datasets and how many files
// each lists.
func (f *FS) Datasets() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for id, d := range f.datasets {
		if d.skip == nil {
			out[id] = len(d.files)
		}
	}
	return out
}
