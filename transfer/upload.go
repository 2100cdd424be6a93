package transfer

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/units"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// UploadOptions describe one file to upload.
type UploadOptions struct {
	Dataset string
	Path    string // local file
	Name    string // name in dozo; default: the base name of Path
	// client.Dir holds the journal. client.Identity seals the file key in it; without an
	// identity the upload still works but cannot be resumed.
	Dir      *client.Dir
	Identity *client.Identity
	// Concurrency bounds parallel piece PUTs; 0 means K+M.
	Concurrency int
	// Progress, if set, is told how many plaintext bytes of the file have
	// been processed: phase "verify" while re-reading the part a resumed
	// upload had already sent, then "upload".
	Progress func(phase string, done, total int64)
	// Notice, if set, receives one-line remarks worth showing the user
	// (resuming, starting over and why).
	Notice func(format string, args ...any)
}

// UploadResult describes a finished upload.
type UploadResult struct {
	File         *api.File
	UploadID     string
	Resumed      bool // continued an interrupted upload
	StartSegment int  // first segment this run sent
	Segments     int
	Sent         int64 // plaintext bytes encrypted and sent by this run
	Elapsed      time.Duration
}

// UploadFile encrypts and uploads one file, resuming an interrupted upload
// of the same file when its journal allows.
//
// Security properties: the plaintext is encrypted here and only ciphertext
// pieces leave the host; a file key and nonce are reused only for
// plaintext proven unchanged (same size, mtime and inode, and the SHA-256
// of the plaintext up to the end of every segment whose pieces may be on
// storage re-computed equal to the one the journal recorded before they
// were sent) and only once dozod confirmed
// that its session holds that key — anything else aborts the old session
// and starts over with a fresh key, since new plaintext under an old key
// and nonce would reuse keystream. The journal and its lock are never
// written through a link (localfile.go).
func UploadFile(ctx context.Context, c *client.Client, o UploadOptions) (*UploadResult, error) {
	began := time.Now()
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, err
	}
	name := o.Name
	if name == "" {
		name = client.DefaultName(abs)
	}
	op := "uploading " + o.Path
	if err := client.ValidateName(name); err != nil {
		return nil, hintError(op, "pick another name with --name", err)
	}
	if err := api.ValidateDatasetID(o.Dataset); err != nil {
		return nil, opError(op, err)
	}
	if o.Notice == nil {
		o.Notice = func(string, ...any) {}
	}
	src, err := os.Open(abs)
	if err != nil {
		return nil, opError(op, err)
	}
	defer src.Close()
	fi, err := checkSource(op, src)
	if err != nil {
		return nil, err
	}
	now := sourceInfo(fi)

	u := &uploader{c: c, o: o, op: op, src: src, abs: abs, name: name, now: now}
	if o.Dir != nil && o.Identity != nil {
		jpath := JournalPath(o.Dir, c.Broker(), o.Dataset, name, abs)
		if err := os.MkdirAll(filepath.Dir(jpath), 0o700); err != nil {
			return nil, opError(op, err)
		}
		unlock, err := lockFile(jpath + ".lock")
		if errors.Is(err, errLocked) {
			return nil, hintError(op, "wait for the other 'dozo upload' of this file to finish", err)
		}
		if err != nil {
			return nil, err
		}
		defer unlock()
		u.jpath = jpath
	} else {
		o.Notice("%s: no age identity, so this upload cannot be resumed if interrupted (run 'dozo keygen' to enable resume)", o.Path)
	}
	defer u.forget()

	if err := u.prepare(ctx); err != nil {
		return nil, err
	}
	res, err := u.run(ctx)
	if err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

// CheckUploadSource says whether the file at path can be uploaded, without
// uploading it: it must be a regular file whose size is that of its
// content, so not on /proc or /sys (whose files report 0 or 4096).
func CheckUploadSource(path string) error {
	op := "uploading " + path
	src, err := os.Open(path)
	if err != nil {
		return hintError(op, "check the path", err)
	}
	defer src.Close()
	_, err = checkSource(op, src)
	return err
}

// checkSource returns the open source's FileInfo if it can be uploaded
// (see CheckUploadSource).
func checkSource(op string, src *os.File) (fs.FileInfo, error) {
	fi, err := src.Stat()
	if err != nil {
		return nil, opError(op, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, hintError(op, "upload regular files; for a stream, save it to a file first (resume needs to re-read it)",
			errors.New("not a regular file"))
	}
	if name := pseudoFileSystem(src); name != "" {
		return nil, hintError(op, "copy it to a regular file and upload the copy",
			fmt.Errorf("it is on the %s file system, whose files do not report the size of their content", name))
	}
	return fi, nil
}

type uploader struct {
	c    *client.Client
	o    UploadOptions
	op   string
	src  *os.File
	abs  string
	name string
	now  SourceInfo

	jpath string   // "" when not journaling
	j     *Journal // nil when not journaling

	up         *api.Upload
	fileKey    []byte
	nonce      []byte
	start      int
	resumed    bool
	prefix     *filestore.Checksums
	plainSeg   int64
	nsegs      int
	layout     storage.Layout
	place      placement // dozod's, checked by setLayout
	sentPrefix int64
	done       *api.File // set when an earlier run had completed the upload
	// last is the file's last segment once all its pieces are stored: it
	// is committed by the complete call, not a commit of its own.
	last *storage.SegmentMeta
}

// forget clears the file key from memory.
func (u *uploader) forget() {
	clear(u.fileKey)
	clear(u.nonce)
}

// prepare resumes the journal's session if it is safe to, or begins a
// new one.
func (u *uploader) prepare(ctx context.Context) error {
	if u.jpath != "" {
		j, err := LoadJournal(u.jpath)
		if ue := (*UnsafePathError)(nil); errors.As(err, &ue) {
			return err
		}
		if err != nil {
			// An unreadable journal cannot prove anything: start over.
			u.o.Notice("%s: ignoring unreadable upload journal (%v); starting over", u.o.Path, err)
			// A journal of an older format names a session that holds the
			// name at dozod; abort it (best effort) so a new one can begin.
			if ve := (*JournalVersionError)(nil); errors.As(err, &ve) && ve.UploadID != "" {
				u.c.AbortUpload(ctx, ve.UploadID)
			}
			os.Remove(u.jpath)
		}
		if j != nil {
			ok, err := u.tryResume(ctx, j)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
	}
	return u.begin(ctx)
}

// tryResume continues j's session if dozod still has it open and the
// source is provably unchanged. false means "start over" (and the old
// session has been aborted and its journal removed).
func (u *uploader) tryResume(ctx context.Context, j *Journal) (bool, error) {
	startOver := func(why error) (bool, error) {
		u.o.Notice("%s: starting over with a new key: %v", u.o.Path, why)
		u.forget()
		u.fileKey, u.nonce = nil, nil
		if j.UploadID != "" {
			// Best effort: dozod also expires abandoned sessions.
			if err := u.c.AbortUpload(ctx, j.UploadID); err != nil && !client.IsStatus(err, 404) {
				u.o.Notice("%s: could not abort the old upload session %s: %v", u.o.Path, j.UploadID, err)
			}
		}
		return false, j.Remove()
	}
	if j.Dataset != u.o.Dataset || j.Name != u.name || j.Path != u.abs {
		return startOver(fmt.Errorf("%w: the journal belongs to another upload", ErrSourceChanged))
	}
	up, err := u.c.Upload(ctx, j.UploadID)
	if client.IsStatus(err, 404) {
		return startOver(errors.New("the interrupted upload session no longer exists"))
	}
	if err != nil {
		return false, opError(u.op, err)
	}
	switch up.State {
	case "open":
	case "complete":
		// An earlier run completed but died before removing the journal.
		if f := u.completed(ctx, j, up); f != nil {
			u.done, u.up = f, up
			return true, nil
		}
		j.Remove()
		return false, hintError(u.op, "see it with 'dozo ls "+u.o.Dataset+"'",
			errors.New("an earlier run completed this upload, but the file is not listed as available"))
	default:
		return startOver(fmt.Errorf("the interrupted upload session is %s", up.State))
	}
	start, err := ResumePoint(j, u.now, up.PlainSegmentSize, up.Committed)
	if err != nil {
		return startOver(err)
	}
	if up.Dataset != u.o.Dataset || up.Name != u.name || up.Size != u.now.Size {
		return startOver(fmt.Errorf("%w: dozod's session describes another file", ErrSourceChanged))
	}
	fileKey, nonce, err := j.OpenKey(u.o.Identity)
	if err != nil {
		return startOver(fmt.Errorf("%w: %v (was the identity replaced?)", ErrSourceChanged, err))
	}
	u.fileKey, u.nonce = fileKey, nonce
	if err := u.confirmKey(ctx, j, up); err != nil {
		if errors.Is(err, ErrSourceChanged) {
			return startOver(err)
		}
		return false, opError(u.op, err)
	}
	u.up, u.j = up, j
	if err := u.setLayout(); err != nil {
		return false, err
	}
	// The expensive half of the check: re-hash the source up to the end of
	// every segment that was sent, committed or not. This also rebuilds the whole-file SHA-256 and MD5
	// of the committed prefix.
	if _, err := u.src.Seek(0, io.SeekStart); err != nil {
		return false, opError(u.op, err)
	}
	var done int64
	ph, err := VerifyPrefix(u.src, j, start, func(n int64) {
		done += n
		if u.o.Progress != nil {
			u.o.Progress("verify", done, u.now.Size)
		}
	})
	if errors.Is(err, ErrSourceChanged) {
		return startOver(err)
	}
	if err != nil {
		return false, opError(u.op, err)
	}
	// Segments recorded but never committed stay recorded: they are sent
	// again with the same plaintext, hence the same ciphertext, and the
	// hasher checks them once more as it reads them.
	u.start, u.prefix, u.resumed = start, ph, true
	u.sentPrefix = min(int64(start)*u.plainSeg, u.now.Size)
	if start > 0 {
		u.o.Notice("%s: resuming upload at segment %d of %d (%s already sent and re-verified)", u.o.Path, start, u.nsegs, units.FormatSize(u.sentPrefix))
	} else {
		u.o.Notice("%s: continuing the interrupted upload session (no segment was committed yet)", u.o.Path)
	}
	return true, nil
}

// confirmKey asks dozod whether session up holds the journal's file key
// and nonce (u.fileKey, u.nonce). The journal is sealed to the user's
// public key, so anyone able to write it could have sealed a key of their
// own choosing; dozod holds the key in the session's wrapped header. The
// question is a begin of the same upload, which dozod answers with the
// open session only for the very same key and nonce (and 409 otherwise).
// A mismatch wraps ErrSourceChanged.
func (u *uploader) confirmKey(ctx context.Context, j *Journal, up *api.Upload) error {
	alg := up.HashAlg
	if alg == "" {
		alg = storage.DefaultHashAlg
	}
	got, err := u.c.BeginUpload(ctx, u.o.Dataset, api.BeginUploadRequest{
		Name:    u.name,
		Size:    u.now.Size,
		FileKey: base64.StdEncoding.EncodeToString(u.fileKey),
		Nonce:   base64.StdEncoding.EncodeToString(u.nonce),
		HashAlg: alg,
	})
	if client.IsStatus(err, 409) {
		return fmt.Errorf("%w: dozod's upload session does not hold the journal's file key (the journal may have been tampered with)", ErrSourceChanged)
	}
	if err != nil {
		return err
	}
	if got.ID != j.UploadID {
		// Not ours to keep open: a session begun by this very call.
		u.c.AbortUpload(ctx, got.ID)
		return fmt.Errorf("%w: dozod's open session for this name is not the journal's", ErrSourceChanged)
	}
	return nil
}

// completed returns the file an earlier run completed, if the source is
// still the one it uploaded.
func (u *uploader) completed(ctx context.Context, j *Journal, up *api.Upload) *api.File {
	if j.Source != u.now {
		return nil
	}
	files, err := u.c.ListFiles(ctx, u.o.Dataset)
	if err != nil {
		return nil
	}
	for i := range files {
		if files[i].ID == up.FileID && files[i].State == api.FileAvailable {
			j.Remove()
			u.o.Notice("%s: already uploaded by an earlier run", u.o.Path)
			return &files[i]
		}
	}
	return nil
}

// begin starts a new session with a fresh file key and nonce.
func (u *uploader) begin(ctx context.Context) error {
	var err error
	if u.fileKey, err = crypto.NewFileKey(); err != nil {
		return err
	}
	if u.nonce, err = crypto.NewNonce(); err != nil {
		return err
	}
	up, err := u.c.BeginUpload(ctx, u.o.Dataset, api.BeginUploadRequest{
		Name:    u.name,
		Size:    u.now.Size,
		FileKey: base64.StdEncoding.EncodeToString(u.fileKey),
		Nonce:   base64.StdEncoding.EncodeToString(u.nonce),
		HashAlg: storage.DefaultHashAlg,
		// The first window's PUT URLs come with the session (uploadTargets).
		PresignSegments: batchSegments,
	})
	if err != nil {
		return opError(u.op, err)
	}
	u.up, u.start, u.prefix = up, 0, newPrefixHashes()
	if err := u.setLayout(); err != nil {
		u.c.AbortUpload(ctx, up.ID)
		return err
	}
	if u.jpath != "" {
		sealed, err := SealKey(u.o.Identity.Recipient, u.fileKey, u.nonce)
		if err != nil {
			u.c.AbortUpload(ctx, up.ID)
			return opError(u.op, err)
		}
		now := time.Now().UTC()
		u.j = &Journal{
			Version: JournalVersion, Broker: u.c.Broker(), Dataset: u.o.Dataset, Name: u.name, Path: u.abs,
			UploadID: up.ID, FileID: up.FileID, SealedKey: sealed, Recipient: u.o.Identity.Public,
			Source: u.now, PlainSegmentSize: up.PlainSegmentSize, CreatedAt: now,
			path: u.jpath,
		}
		if err := u.j.Save(); err != nil {
			u.c.AbortUpload(ctx, up.ID)
			return hintError(u.op, "check the config directory", fmt.Errorf("writing the upload journal: %w", err))
		}
	}
	return nil
}

// setLayout derives the storage layout from the session and checks it
// against what dozod announced, so both sides place and size pieces alike.
func (u *uploader) setLayout() error {
	up := u.up
	l, err := filestore.Layout(up.K, up.M, up.PlainSegmentSize)
	if err != nil {
		return opError(u.op, fmt.Errorf("dozod's upload session has an unusable layout: %w", err))
	}
	if up.SegmentSize != 0 && l.SegmentSize != up.SegmentSize {
		return opError(u.op, fmt.Errorf("dozod says %d stored bytes per segment, the client computes %d", up.SegmentSize, l.SegmentSize))
	}
	stored := crypto.CiphertextSize(u.now.Size)
	n := int((stored + l.SegmentSize - 1) / l.SegmentSize)
	if up.Segments != 0 && up.Segments != n {
		return opError(u.op, fmt.Errorf("dozod expects %d segments, the client computes %d", up.Segments, n))
	}
	p, err := checkPlacement(up, l)
	if err != nil {
		return opError(u.op, err)
	}
	u.layout, u.place, u.plainSeg, u.nsegs = l, p, up.PlainSegmentSize, n
	return nil
}

// run sends the segments from u.start on and completes the upload.
func (u *uploader) run(ctx context.Context) (*UploadResult, error) {
	if u.done != nil {
		return &UploadResult{File: u.done, UploadID: u.up.ID, Resumed: true, StartSegment: u.up.Segments, Segments: u.up.Segments}, nil
	}
	hr := &segmentHasher{
		r: u.src, plainSeg: u.plainSeg, ph: u.prefix,
		off: min(int64(u.start)*u.plainSeg, u.now.Size), sums: map[int]string{},
		seg:      u.start,
		progress: u.o.Progress, total: u.now.Size,
		stat: func() (SourceInfo, error) {
			fi, err := u.src.Stat()
			if err != nil {
				return SourceInfo{}, err
			}
			return sourceInfo(fi), nil
		},
		want: u.now,
	}
	if u.j != nil {
		hr.record = u.record
	}
	// Two coded segments (storage.Writer) and the source's pipe blocks.
	defer boundHeap(2*u.layout.SegmentSize/int64(u.layout.K)*int64(u.layout.Shards()) + pipeBlocks*pipeBlockSize)()
	var sent int64
	if u.start < u.nsegs {
		if _, err := u.src.Seek(hr.off, io.SeekStart); err != nil {
			return nil, opError(u.op, err)
		}
		ts, place := uploadTargets(u.c, u.up, u.place)
		_, err := filestore.Write(ctx, hr, filestore.WriteOptions{
			DatasetID:    u.up.Dataset,
			FileID:       u.up.FileID,
			Layout:       u.layout,
			Targets:      ts,
			Placement:    place,
			FileKey:      u.fileKey,
			Nonce:        u.nonce,
			HashAlg:      u.up.HashAlg, // dozod's manifest names it; "" is storage's default
			StartSegment: u.start,
			Concurrency:  u.o.Concurrency,
			OnSegment:    func(m storage.SegmentMeta) error { return u.commit(ctx, m) },
			// hr computes the checksums, continuing a resumed prefix.
			NoChecksums: true,
		})
		hr.finish()
		if sc := (*sourceChangedError)(nil); errors.As(err, &sc) {
			return nil, u.changedDuring(ctx, sc)
		}
		if errors.Is(err, ErrSourceChanged) {
			return nil, u.changedDuring(ctx, err)
		}
		if err != nil {
			return nil, u.fail(ctx, err)
		}
		sent = hr.off - int64(u.start)*u.plainSeg
	}
	// The source must not have changed while it was read: a concurrent
	// writer could have given us a mix of two versions.
	if hr.off != u.now.Size {
		return nil, u.changedDuring(ctx, fmt.Errorf("read %d bytes, the file has %d", hr.off, u.now.Size))
	}
	if fi, err := u.src.Stat(); err != nil || sourceInfo(fi) != u.now {
		return nil, u.changedDuring(ctx, errors.New("it was modified during the upload"))
	}
	f, err := u.c.CompleteUpload(ctx, u.up.ID, api.CompleteUploadRequest{
		SHA256: hex.EncodeToString(u.prefix.SHA256.Sum(nil)),
		MD5:    hex.EncodeToString(u.prefix.MD5.Sum(nil)),
		Commit: u.last,
	})
	if err != nil {
		if u.last != nil {
			err = fmt.Errorf("committing segment %d and completing: %w", u.last.Index, err)
		}
		return nil, u.fail(ctx, err)
	}
	if u.j != nil {
		if err := u.j.Remove(); err != nil {
			u.o.Notice("%s: could not remove the upload journal: %v", u.o.Path, err)
		}
	}
	return &UploadResult{File: f, UploadID: u.up.ID, Resumed: u.resumed, StartSegment: u.start, Segments: u.nsegs, Sent: sent}, nil
}

// record writes the SHA-256 of the plaintext up to the end of segment i
// to the journal, durably. The
// hasher calls it once the segment is read and before the encryption sees
// the segment's last bytes, so before any of its pieces can be stored:
// the journal then covers every segment whose ciphertext may be on
// storage, which a resume re-verifies (and ResumePoint relies on for the
// committed ones).
func (u *uploader) record(i int, sum string) error {
	changed, err := u.j.Record(i, sum)
	if err != nil || !changed {
		return err
	}
	if err := u.j.Save(); err != nil {
		return fmt.Errorf("writing the upload journal: %w", err)
	}
	return nil
}

// commit tells dozod that every piece of segment m is stored (its hash is
// in the journal already, see record); the last segment's commit is kept
// for the complete call.
func (u *uploader) commit(ctx context.Context, m storage.SegmentMeta) error {
	if m.Index == u.nsegs-1 {
		// The last one rides with the complete (run), one call fewer.
		u.last = &m
		return nil
	}
	// Once every piece is stored, the commit is worth finishing even if
	// the user pressed Ctrl-C meanwhile: the next run then resumes after
	// this segment instead of sending it again.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if _, err := u.c.CommitSegment(cctx, u.up.ID, m); err != nil {
		return fmt.Errorf("committing segment %d: %w", m.Index, err)
	}
	return nil
}

// fail explains an upload error. The journal stays, so the same command
// resumes, unless there is none.
func (u *uploader) fail(ctx context.Context, err error) error {
	if u.j == nil && ctx.Err() == nil {
		u.c.AbortUpload(context.WithoutCancel(ctx), u.up.ID)
	}
	if ctx.Err() != nil {
		// Say it plainly; the cause chain (a canceled PUT) is noise.
		err = fmt.Errorf("interrupted (%w)", context.Canceled)
	}
	if u.j != nil {
		return &client.Error{Op: u.op, Err: err, Hint: resumeHint(err)}
	}
	if ctx.Err() != nil {
		// Without a journal there is nothing to resume from.
		return hintError(u.op, "run the same command again; without an age identity ('dozo keygen') the upload starts over", err)
	}
	return opError(u.op, err)
}

func resumeHint(err error) string {
	if h := client.Hint(err); h != "" && !errors.Is(err, context.Canceled) {
		return h + "; then run the same command again to resume"
	}
	return "run the same command again to resume"
}

// changedDuring aborts a session whose source changed while being read:
// the ciphertext sent may mix two versions, and resuming it would reuse
// the key on new plaintext. dozod deletes the session's pieces as it
// aborts it; the journal goes too, so nothing is left to resume.
func (u *uploader) changedDuring(ctx context.Context, why error) error {
	if err := u.c.AbortUpload(context.WithoutCancel(ctx), u.up.ID); err != nil && !client.IsStatus(err, 404) {
		u.o.Notice("%s: could not abort upload session %s (%v); dozod deletes its pieces when it expires", u.o.Path, u.up.ID, err)
	}
	if u.j != nil {
		u.j.Remove()
	}
	hint := "upload it again once nothing writes to it"
	if sc := (*sourceChangedError)(nil); errors.As(why, &sc) && sc.unsized {
		hint = "if nothing writes to it, it is not a file whose size can be trusted: copy it to a regular file and upload the copy"
	}
	return hintError(u.op, hint,
		fmt.Errorf("the file changed while it was being uploaded: %w", why))
}

// segmentHasher reads the source for filestore.Write, hashing as it goes:
// the whole-file SHA-256 and MD5 (continuing a verified prefix), and at
// each segment's end the SHA-256 so far, for the journal: no hash pass
// beyond the two the catalog keeps.
//
// A producer goroutine reads the source in blocks that never cross a
// segment boundary, so each segment's hash closes exactly at its end; a
// fanout gives every block to an MD5 goroutine, a SHA-256 goroutine and
// the encryption (WriteTo), which then run side by side instead of one
// after another on the hot path.
//
// record, if set, is given each segment's prefix hash before its last
// block goes to the encryption: no ciphertext of a segment is complete,
// so none of its pieces can be stored, before record returned. An error
// from it ends the stream with that error.
type segmentHasher struct {
	r        io.Reader
	plainSeg int64
	ph       *filestore.Checksums
	off      int64 // absolute plaintext offset read so far; final after finish
	seg      int   // first segment to read
	progress func(string, int64, int64)
	total    int64
	record   func(seg int, prefixSHA256 string) error
	// stat, if set, is the source now; it must still match want.
	stat func() (SourceInfo, error)
	want SourceInfo

	started  bool
	fan      *fanout
	out      chan *block
	stop     chan struct{}
	produced chan struct{}
	readErr  error // set before out is closed
	consumed int64
	cur      *block // partly consumed by Read
	curPos   int

	mu       sync.Mutex
	cond     *sync.Cond
	hashed   bool           // the hash goroutines have ended
	sums     map[int]string // segment -> SHA-256 (hex) up to its end
	stopOnce sync.Once
}

func (s *segmentHasher) begin() {
	if s.started {
		return
	}
	s.started = true
	s.cond = sync.NewCond(&s.mu)
	s.fan = newFanout(
		func(b *block) { s.ph.MD5.Write(b.bytes()) },
		func(b *block) {
			s.ph.SHA256.Write(b.bytes())
			if b.last {
				// Sum leaves the running state as it is.
				sum := hex.EncodeToString(s.ph.SHA256.Sum(nil))
				s.mu.Lock()
				s.sums[b.seg] = sum
				s.cond.Broadcast()
				s.mu.Unlock()
			}
		})
	s.out = make(chan *block, pipeBlocks)
	s.stop = make(chan struct{})
	s.produced = make(chan struct{})
	s.consumed = s.off
	go s.produce()
}

func (s *segmentHasher) produce() {
	defer close(s.produced)
	defer close(s.out)
	off, seg := s.off, s.seg
	defer func() { s.off = off }()
	for {
		var b *block
		select {
		case b = <-s.fan.pool:
		case <-s.stop:
			return
		}
		if b.buf == nil {
			b.buf = newBlockBuf()
		}
		// Never past the size the file had when the upload began: dozod
		// sized the session, and the layout of every segment, by it. (Only
		// an empty file reads an empty block: its one empty segment.)
		end := min(int64(seg+1)*s.plainSeg, s.total)
		n, err := io.ReadFull(s.r, b.buf[:min(int64(len(b.buf)), end-off)])
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = &sourceChangedError{why: fmt.Sprintf("it ended at byte %d, %d bytes short of the size it had when the upload began", off, s.total-off)}
		}
		if err == nil && off == end {
			err = s.segmentRead(seg, off)
		}
		if err != nil {
			// Before the segment's last bytes reach the encryption, so
			// none of its pieces is stored.
			s.readErr = err
			s.fan.pool <- b
			return
		}
		b.n, b.seg, b.last = n, seg, off == end
		s.fan.send(b, 1)
		if b.last && s.record != nil {
			// The hash goroutine has the block; wait for the sum.
			sum, _ := s.sum(b.seg)
			if err := s.record(b.seg, sum); err != nil {
				s.readErr = err
				s.fan.release(b)
				return
			}
		}
		select {
		case s.out <- b:
		case <-s.stop:
			s.fan.release(b)
			return
		}
		if off == s.total {
			return
		}
		if off == end {
			seg++
		}
	}
}

// segmentRead checks, once segment seg is read up to off and before it
// goes on, that the source is still the file the session was sized for:
// at the last segment, that the file ends there (a byte more means it
// grew), and at every segment, that its size and mtime are unchanged. A
// file that reported a size of 0 but has content is not a file whose
// size can be trusted at all (/proc and /sys report 0 or 4096).
func (s *segmentHasher) segmentRead(seg int, off int64) error {
	if segmentReadHook != nil {
		segmentReadHook(seg)
	}
	if off == s.total {
		var one [1]byte
		n, err := s.r.Read(one[:])
		switch {
		case n > 0 && s.total == 0:
			return &sourceChangedError{why: "it reports a size of 0 but has content", unsized: true}
		case n > 0:
			return &sourceChangedError{why: fmt.Sprintf("it grew past the %d bytes it had when the upload began", s.total)}
		case err != nil && err != io.EOF:
			return err
		}
	}
	if s.stat != nil {
		now, err := s.stat()
		if err != nil {
			return err
		}
		if now.Size != s.want.Size || now.MTimeNS != s.want.MTimeNS {
			return &sourceChangedError{why: fmt.Sprintf("it was modified during the upload (now %d bytes, %d when the upload began)", now.Size, s.want.Size)}
		}
	}
	return nil
}

// sourceChangedError is a source that is no longer the file the upload
// session was begun for: what was sent may mix two versions, so the
// session is aborted, never resumed.
type sourceChangedError struct {
	why     string
	unsized bool // the file's size says nothing about its content
}

func (e *sourceChangedError) Error() string { return e.why }

// WriteTo hands the source to w block by block (io.Copy uses it, so the
// encryptor reads straight from the blocks without another copy).
func (s *segmentHasher) WriteTo(w io.Writer) (int64, error) {
	s.begin()
	var total int64
	if s.cur != nil {
		n, err := w.Write(s.cur.bytes()[s.curPos:])
		total += int64(n)
		s.advance(n)
		s.fan.release(s.cur)
		s.cur = nil
		if err != nil {
			return total, err
		}
	}
	for b := range s.out {
		n, err := w.Write(b.bytes())
		total += int64(n)
		s.advance(n)
		s.fan.release(b)
		if err != nil {
			return total, err
		}
	}
	return total, s.readErr
}

// Read implements io.Reader for callers that do not use WriteTo.
func (s *segmentHasher) Read(p []byte) (int, error) {
	s.begin()
	for s.cur == nil || s.curPos == s.cur.n {
		if s.cur != nil {
			s.fan.release(s.cur)
			s.cur = nil
		}
		b, ok := <-s.out
		if !ok {
			if s.readErr != nil {
				return 0, s.readErr
			}
			return 0, io.EOF
		}
		s.cur, s.curPos = b, 0
	}
	n := copy(p, s.cur.bytes()[s.curPos:])
	s.curPos += n
	s.advance(n)
	return n, nil
}

func (s *segmentHasher) advance(n int) {
	s.consumed += int64(n)
	if s.progress != nil && n > 0 {
		s.progress("upload", s.consumed, s.total)
	}
}

// finish stops reading and waits for the hash goroutines, after which off
// and the prefix hashes are final.
func (s *segmentHasher) finish() {
	if !s.started {
		return
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.produced
	if s.cur != nil {
		s.fan.release(s.cur)
		s.cur = nil
	}
	for b := range s.out { // blocks sent before the stop
		s.fan.release(b)
	}
	s.fan.close()
	s.mu.Lock()
	s.hashed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// sum returns the SHA-256 up to segment i's end once it has been read,
// waiting for the hash goroutine to get there.
func (s *segmentHasher) sum(i int) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if v, ok := s.sums[i]; ok {
			return v, true
		}
		if s.hashed || s.cond == nil {
			return "", false
		}
		s.cond.Wait()
	}
}

// segmentReadHook, if set (by tests), runs when a segment has been read
// from the source, before its hash is recorded.
var segmentReadHook func(seg int)
