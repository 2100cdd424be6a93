package transfer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/units"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// FetchOptions describe one fetch.
type FetchOptions struct {
	Dataset, Name string
	// Output is a path, or "-" for Stdout.
	Output string
	Stdout io.Writer
	// Force replaces an existing Output file.
	Force    bool
	Identity *client.Identity
	// Range, if set, fetches only these plaintext bytes (and only the
	// segments covering them).
	Range *Range
	// Raw writes the age-encrypted file (header for the caller's
	// recipient, then the payload) instead of the plaintext.
	Raw bool
	// Concurrency bounds parallel piece GETs; 0 for the storage default.
	Concurrency int
	// Progress, if set, is told how many bytes of the output are written.
	Progress func(done, total int64)
	// OnDegraded, if set, is told of every segment that needed parity.
	OnDegraded func(segment int, failures []storage.PieceFailure)
	// Notice receives one-line remarks (e.g. resuming).
	Notice func(format string, args ...any)
	// MD5 also checks the whole file's MD5 against the catalog's. The
	// SHA-256 is always checked; MD5 adds nothing to the pieces' hashes,
	// the chunks' AEAD tags and the SHA-256, and costs CPU (see
	// docs/verification.md).
	MD5 bool
}

// FetchResult describes a finished fetch.
type FetchResult struct {
	File    api.File
	Output  string
	Bytes   int64 // written by this run
	Resumed bool
	From    int64 // plaintext offset this run started at (resume or range)
	// Verified is true when the whole file's checksums (Checksums) were
	// checked against the catalog. Ranges are verified piece by piece and
	// chunk by chunk, but there is no whole-file checksum to compare.
	Verified bool
	// Checksums names the whole-file checksums that matched the
	// catalog's: "sha256", and "md5" with FetchOptions.MD5.
	Checksums []string
	Stats     storage.ReadStats
	Elapsed   time.Duration
}

// Report is what r tells dozod for its audit log (client.FetchDone).
func (r *FetchResult) Report() *client.FetchReport {
	return &client.FetchReport{Bytes: r.Bytes, Verified: r.Verified, Elapsed: r.Elapsed}
}

// ErrChecksum means the fetched plaintext does not match the catalog.
var ErrChecksum = errors.New("checksum mismatch")

// FetchFile fetches a file from dozo.
//
// Security properties: every piece is checked against the manifest dozod
// sent over pinned TLS, every chunk against its AEAD tag, and a whole file
// against the catalog's SHA-256 (and MD5 with MD5); a file on disk appears at Output
// only after all of that passed (it is written to Output.partial, 0600, and
// renamed), so a failed fetch never leaves something that looks complete.
// Output is resolved before a byte is fetched (resolveOutput): a directory
// receives the file under its name, a character device or FIFO is written
// through, and a target that cannot be written is refused up front.
func FetchFile(ctx context.Context, c *client.Client, o FetchOptions) (*FetchResult, error) {
	began := time.Now()
	op := "fetching " + o.Dataset + "/" + o.Name
	if o.Notice == nil {
		o.Notice = func(string, ...any) {}
	}
	if o.Identity == nil {
		return nil, opError(op, client.ErrNoIdentity)
	}
	if o.Output == "" {
		return nil, hintError(op, "pass -o PATH, or -o - for standard output", errors.New("no output"))
	}
	f := &fetcher{c: c, o: o, op: op}
	if o.Output != "-" {
		// Before anything is fetched: where the data goes, and whether it
		// can go there at all.
		out, kind, err := resolveOutput(op, o.Output, o.Name, o.Force)
		if err != nil {
			return nil, err
		}
		f.o.Output, f.kind = out, kind
	}
	res, err := f.fetch(ctx)
	if err != nil {
		return nil, f.explain(ctx, err)
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

// fetch gets the manifest and header and writes the file.
func (f *fetcher) fetch(ctx context.Context) (*FetchResult, error) {
	c, o, op := f.c, f.o, f.op
	// The first presign batch comes with the answer, unless only a
	// range is wanted (which may start anywhere).
	fetch := func() (*api.FetchResponse, error) { return c.FetchWithBatch(ctx, o.Dataset, o.Name, firstBatch) }
	if o.Range != nil {
		fetch = func() (*api.FetchResponse, error) { return c.Fetch(ctx, o.Dataset, o.Name) }
	}
	fr, err := fetch()
	if err != nil {
		return nil, opError(op, err)
	}
	if o.Range != nil && o.Range.Covers(fr.File.Size) {
		f.o.Range = nil // the whole file: fetched, resumed and checksummed as one
	}
	m := fr.Manifest
	hdr, err := checkFetch(op, fr, o.Identity)
	if err != nil {
		return nil, err
	}

	// The reader's segment buffers, a degraded read's parity pieces and the
	// sink's blocks.
	seg := m.SegmentSize
	defer boundHeap(int64(readahead(seg)+1)*seg + seg/int64(max(m.K, 1))*int64(m.M) + pipeBlocks*pipeBlockSize)()
	f.fr, f.hdr = fr, hdr
	f.res = &FetchResult{File: fr.File, Output: o.Output}
	if f.targets, f.entries, err = fetchTargets(c, fr); err != nil {
		return nil, opError(op, err)
	}
	if err := f.run(ctx); err != nil {
		return nil, err
	}
	return f.res, nil
}

// explain gives a failed fetch its hint. Only a fetch that will resume
// says so: one to a file (not raw, not a range) that recorded verified
// bytes in its sidecar; standard output, devices, raw files and ranges
// start over.
func (f *fetcher) explain(ctx context.Context, err error) error {
	again := "run the same command again"
	if f.kept > 0 {
		again += fmt.Sprintf(" to resume (%s of it verified and kept)", units.FormatSize(f.kept))
	} else if f.resumable() {
		again += "; nothing verified was kept yet, so it starts from the beginning"
	} else {
		again += "; " + f.why() + " starts from the beginning"
	}
	switch {
	case ctx.Err() != nil:
		return hintError(f.op, again, fmt.Errorf("interrupted (%w)", context.Canceled))
	case errors.Is(err, syscall.ENOSPC):
		return hintError(f.op, "free some disk space, then "+again, err)
	}
	return err
}

// resumable reports whether this fetch keeps what it verified for a
// later run: a full plaintext fetch to a file.
func (f *fetcher) resumable() bool {
	return f.o.Output != "-" && f.kind == outputFile && !f.o.Raw && f.o.Range == nil
}

// why names what keeps this fetch from resuming.
func (f *fetcher) why() string {
	switch {
	case f.o.Output == "-":
		return "a fetch to standard output"
	case f.kind == outputDevice:
		return "a fetch to a device or FIFO"
	case f.o.Raw:
		return "a --raw fetch"
	default:
		return "a --range fetch"
	}
}

type fetcher struct {
	c       *client.Client
	o       FetchOptions
	op      string
	kind    outputKind
	kept    int64 // verified bytes the sidecar records for a resume
	fr      *api.FetchResponse
	hdr     []byte
	targets []storage.Target
	entries storage.EntrySource // the manifest's entries, batch by batch
	res     *FetchResult
	done    int64
	total   int64
}

func (f *fetcher) readOptions() filestore.ReadOptions {
	return filestore.ReadOptions{Targets: f.targets, Concurrency: f.o.Concurrency, OnDegraded: f.o.OnDegraded,
		Readahead: readahead(f.fr.Manifest.SegmentSize), Entries: f.entries}
}

func (f *fetcher) run(ctx context.Context) error {
	if f.o.Output == "-" {
		out := f.o.Stdout
		if out == nil {
			out = os.Stdout
		}
		_, err := f.write(ctx, out, 0)
		return err
	}
	if f.kind == outputDevice {
		return f.toDevice(ctx)
	}
	return f.toFile(ctx)
}

// toDevice writes through to the character device or FIFO at Output, as
// cp does: it is opened for writing without being created or truncated,
// there is no partial file and no rename, and nothing is kept for a
// resume. The whole-file checksums are still verified (a mismatch is an
// error after the data was written, as with standard output).
func (f *fetcher) toDevice(ctx context.Context) error {
	out := f.o.Output
	df, err := openDevice(ctx, f.op, out, func() {
		f.o.Notice("%s: waiting for a reader of the FIFO", out)
	})
	if err != nil {
		return err
	}
	defer df.Close()
	// A FIFO whose reader stalls must not hold an interrupted fetch.
	stop := context.AfterFunc(ctx, func() { df.SetWriteDeadline(time.Now()) })
	defer stop()
	_, err = f.write(ctx, df, 0)
	if cerr := df.Close(); err == nil && cerr != nil {
		err = opError(f.op, cerr)
	}
	return err
}

// write sends the requested bytes to out; from is where a resumed full
// plaintext fetch continues (prefix hashes already in f.pre).
func (f *fetcher) write(ctx context.Context, out io.Writer, from int64) (*filestore.Checksums, error) {
	switch {
	case f.o.Raw:
		return nil, f.writeRaw(ctx, out)
	case f.o.Range != nil:
		return nil, f.writeRange(ctx, out)
	default:
		return f.writeFull(ctx, out, from, nil)
	}
}

// newHashPair returns the hashes this fetch checks: SHA-256, and MD5 with
// --md5 or when the catalog has no SHA-256 to check.
func (f *fetcher) newHashPair() *filestore.Checksums {
	return filestore.NewChecksums(f.o.MD5 || f.fr != nil && f.fr.File.SHA256 == "")
}

// check compares the plaintext hashes with the catalog's.
func (f *fetcher) check(h *filestore.Checksums) error {
	file := f.fr.File
	if file.SHA256 == "" && file.MD5 == "" {
		f.o.Notice("%s/%s: the catalog has no checksums; pieces and chunks were verified, the whole file could not be", file.Dataset, file.Name)
		return nil
	}
	var checked []string
	if file.SHA256 != "" {
		if got := hex.EncodeToString(h.SHA256.Sum(nil)); got != file.SHA256 {
			return hintError(f.op, "report it to the operators with the file id "+file.ID,
				fmt.Errorf("%w: SHA-256 is %s, the catalog says %s", ErrChecksum, got, file.SHA256))
		}
		checked = append(checked, "sha256")
	}
	if h.MD5 != nil && file.MD5 != "" {
		if got := hex.EncodeToString(h.MD5.Sum(nil)); got != file.MD5 {
			return hintError(f.op, "report it to the operators with the file id "+file.ID,
				fmt.Errorf("%w: MD5 is %s, the catalog says %s", ErrChecksum, got, file.MD5))
		}
		checked = append(checked, "md5")
	}
	f.res.Verified, f.res.Checksums = len(checked) > 0, checked
	return nil
}

// counter reports progress as bytes go to the output.
type counter struct {
	w io.Writer
	f *fetcher
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.f.done += int64(n)
	c.f.res.Bytes += int64(n)
	if c.f.o.Progress != nil {
		c.f.o.Progress(c.f.done, c.f.total)
	}
	return n, err
}

// writeFull writes the plaintext from offset from to out and checks the
// whole-file checksums (pre holds those of [0, from)).
func (f *fetcher) writeFull(ctx context.Context, out io.Writer, from int64, pre *filestore.Checksums) (*filestore.Checksums, error) {
	file, err := filestore.Open(ctx, f.fr.Manifest, f.hdr, f.readOptions(), f.o.Identity)
	if err != nil {
		return nil, opError(f.op, err)
	}
	defer file.Close()
	defer func() { f.res.Stats = file.Stats() }()
	f.total, f.done, f.res.From = file.Size(), from, from
	h := pre
	if h == nil {
		h = f.newHashPair()
	}
	// Writing and the two hashes run in their own goroutines, beside the
	// decryption; bytes reach them only after their chunk authenticated.
	w := newAsyncSink(counter{out, f}, h.Writers()...)
	if from == 0 {
		// Sequential with readahead, through age's own decryptor.
		_, err = file.WriteTo(w)
	} else {
		err = copyRange(ctx, w, file, from, file.Size()-from, planSegment(f.fr.Manifest))
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, opError(f.op, err)
	}
	return h, f.check(h)
}

// writeRange writes a plaintext byte range, fetching only its segments.
func (f *fetcher) writeRange(ctx context.Context, out io.Writer) error {
	file, err := filestore.Open(ctx, f.fr.Manifest, f.hdr, f.readOptions(), f.o.Identity)
	if err != nil {
		return opError(f.op, err)
	}
	defer file.Close()
	defer func() { f.res.Stats = file.Stats() }()
	off, n, err := f.o.Range.Clamp(file.Size())
	if err != nil {
		return hintError(f.op, "check --range against the file's size ('dozo ls')", err)
	}
	f.total, f.res.From = n, off
	return opError(f.op, copyRange(ctx, counter{out, f}, file, off, n, planSegment(f.fr.Manifest)))
}

// writeRaw writes the age file: the header object (header wrapped for the
// caller's recipient, then the payload nonce) followed by the verified
// chunk stream. `age -d -i identity` opens it. The stream is also
// decrypted on the side, with the caller's identity through age itself, to
// check the plaintext checksums: a raw file that would not decrypt to the
// catalog's content is an error, not a surprise later.
func (f *fetcher) writeRaw(ctx context.Context, out io.Writer) error {
	r, err := storage.NewReader(ctx, f.fr.Manifest, storage.ReaderOptions{
		Targets: f.targets, Concurrency: f.o.Concurrency, OnDegraded: f.o.OnDegraded, Entries: f.entries,
	})
	if err != nil {
		return opError(f.op, err)
	}
	defer func() { f.res.Stats = r.Stats() }()
	f.total = int64(len(f.hdr)) + r.Size()
	s, err := r.Stream(ctx, 0)
	if err != nil {
		return opError(f.op, err)
	}
	defer s.Close()

	pr, pw := io.Pipe()
	h := f.newHashPair()
	verr := make(chan error, 1)
	go func() {
		dec, err := age.Decrypt(io.MultiReader(bytes.NewReader(f.hdr), pr), f.o.Identity)
		if err == nil {
			_, err = io.Copy(h, dec)
		}
		pr.CloseWithError(err) // unblocks the writer if decryption failed
		verr <- err
	}()
	w := counter{out, f}
	_, err = w.Write(f.hdr)
	if err == nil {
		_, err = io.Copy(io.MultiWriter(w, pw), s)
	}
	pw.CloseWithError(err)
	derr := <-verr
	if err != nil {
		return opError(f.op, err)
	}
	if derr != nil {
		return opError(f.op, fmt.Errorf("the encrypted file does not decrypt: %w", derr))
	}
	return f.check(h)
}

// readaheadBudget bounds the segment buffers of a sequential fetch
// (readahead + the one being consumed), so peak RSS stays under 200 MiB
// for datasets with large segments too.
const readaheadBudget = 100 << 20

// readahead is how many segments a fetch prefetches: two (the storage
// default) where the budget allows, else one.
func readahead(segmentSize int64) int {
	if segmentSize > 0 && 3*segmentSize > readaheadBudget {
		return 1
	}
	return 2
}

// planSegment is the plaintext per segment of m's file.
func planSegment(m *storage.Manifest) int64 {
	return m.SegmentSize / (crypto.ChunkSize + crypto.ChunkOverhead) * crypto.ChunkSize
}

// copyRange copies n plaintext bytes from off through ReadAt, which fetches
// only the covering segments. While one segment is copied, the next is
// warmed into the storage reader's segment cache, so fetching overlaps
// decrypting and writing.
func copyRange(ctx context.Context, w io.Writer, file *filestore.File, off, n, plainSeg int64) error {
	buf := make([]byte, 4<<20)
	end := off + n
	warmed := int64(-1)
	for off < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		if next := (off/plainSeg + 1) * plainSeg; next < end && next != warmed {
			warmed = next
			go func() {
				var b [1]byte
				file.ReadAt(b[:], next) // errors surface on the real read
			}()
		}
		c := min(int64(len(buf)), end-off)
		got, err := file.ReadAt(buf[:c], off)
		if int64(got) == c {
			err = nil
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(buf[:got]); err != nil {
			return err
		}
		off += int64(got)
	}
	return nil
}

// sidecar records how much of Output.partial is verified, so an
// interrupted fetch can continue. It is trusted for the resume offset only:
// the kept prefix is re-read and enters the whole-file checksum, which must
// still match the catalog at the end.
type sidecar struct {
	Version  int    `json:"version"`
	FileID   string `json:"file_id"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Verified int64  `json:"verified_bytes"`
}

// toFile writes to Output.partial (0600), resuming a full fetch where a
// previous run stopped, and renames it to Output once verified.
//
// The partial file, sidecar and lock are used only if they are regular
// files of ours with one link (see localfile.go); every check is made
// before anything is written, so a refused fetch changes nothing.
func (f *fetcher) toFile(ctx context.Context) error {
	out := f.o.Output
	partial, side, lockPath := fetchSidePaths(out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return opError(f.op, err)
	}
	unlock, err := lockFile(lockPath)
	if errors.Is(err, errLocked) {
		return hintError(f.op, "wait for the other 'dozo fetch' to "+out+" to finish", err)
	}
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkOutput(f.op, out, f.o.Force); err != nil {
		return err
	}
	if err := checkNoUnsafeFile(f.op, side); err != nil {
		return err
	}
	full := !f.o.Raw && f.o.Range == nil
	var from int64
	var pre *filestore.Checksums
	fp, err := openOwnFile(f.op, partial, true)
	if err != nil {
		return err
	}
	defer fp.Close()
	if full {
		if from, pre, err = f.resumePoint(fp, side); err != nil {
			return err
		}
	}
	if err := fp.Chmod(0o600); err != nil {
		return opError(f.op, err)
	}
	if err := fp.Truncate(from); err != nil {
		return opError(f.op, err)
	}
	if _, err := fp.Seek(from, io.SeekStart); err != nil {
		return opError(f.op, err)
	}
	if from > 0 {
		f.res.Resumed = true
		f.o.Notice("%s: resuming at byte %d of %d (%s already verified)", out, from, f.fr.File.Size, units.FormatSize(from))
	}
	f.kept = from
	if full {
		// The whole file's size is known: a disk too small fails now.
		if err := reserveSpace(fp, from, f.fr.File.Size-from); err != nil {
			return hintError(f.op, "free some space or choose another output path", err)
		}
	}
	var w io.Writer = newWriteBehind(fp, from)
	if full {
		// Kept open: the first record and the per-segment ones are plain
		// writes to this file. None is synced: resumePoint trusts a record
		// only as far as the whole-file checksums confirm it, and starts
		// afresh from one it cannot read.
		sf, err := openOwnFile(f.op, side, true)
		if err != nil {
			return err
		}
		defer sf.Close()
		cw := &checkpointWriter{f: w, side: sf, seg: planSegment(f.fr.Manifest), kept: &f.kept,
			sc: sidecar{Version: 1, FileID: f.fr.File.ID, SHA256: f.fr.File.SHA256, Size: f.fr.File.Size, Verified: from}}
		if err := cw.start(); err != nil {
			return opError(f.op, err)
		}
		w = cw
	} else {
		os.Remove(side)
	}
	if full {
		_, err = f.writeFull(ctx, w, from, pre)
	} else {
		_, err = f.write(ctx, w, 0)
	}
	if errors.Is(err, ErrChecksum) {
		// The partial file is wrong somewhere; a resume must not build on it.
		fp.Close()
		os.Remove(partial)
		os.Remove(side)
		f.kept = 0
		if from > 0 {
			// The kept prefix is the likelier culprit: a crash or power
			// loss can lose writes the sidecar had already recorded.
			return hintError(f.op, "the part kept from an interrupted fetch may have been damaged (e.g. by a crash); it is removed, so run the same command again to fetch the whole file; if that fails too, report it to the operators with the file id "+f.fr.File.ID, err)
		}
		return err
	}
	if err != nil {
		if !full {
			// Ranges and raw files are not resumed; leave nothing behind.
			fp.Close()
			os.Remove(partial)
		}
		return err
	}
	if err := fp.Sync(); err != nil {
		return opError(f.op, err)
	}
	if !isAt(fp, partial) {
		return opError(f.op, fmt.Errorf("%s was replaced during the fetch; not renaming it to %s", partial, out))
	}
	if err := fp.Close(); err != nil {
		return opError(f.op, err)
	}
	if err := f.publish(partial, out); err != nil {
		return err
	}
	os.Remove(side)
	syncDir(filepath.Dir(out))
	return nil
}

// publish renames the verified partial file to out. Without Force it
// never replaces anything that appeared at out meanwhile (a hard link
// fails if out exists, without following a link there); with Force it
// replaces a regular file but not a symbolic link.
func (f *fetcher) publish(partial, out string) error {
	if !f.o.Force {
		err := os.Link(partial, out)
		if errors.Is(err, fs.ErrExist) {
			return hintError(f.op, "remove it or pass --force; the fetched file is kept as "+partial,
				fmt.Errorf("%s appeared during the fetch", out))
		}
		if err == nil {
			return opError(f.op, os.Remove(partial))
		}
		// No hard links on this file system: check, then rename.
	}
	if err := checkOutput(f.op, out, f.o.Force); err != nil {
		return err
	}
	return opError(f.op, os.Rename(partial, out))
}

// resumePoint returns where a full fetch into fp may continue, at a
// segment boundary within the verified prefix the sidecar records, and the
// whole-file hashes of that prefix (re-read from disk). 0 means from the
// start; an error only for a sidecar that is not a file of ours.
//
// The sidecar and the partial file are written without fsync (see
// checkpointWriter), so after a crash of the system (not of the process)
// the sidecar may record bytes the partial file lost. What guards the
// resumed file is the whole-file SHA-256 and MD5: the kept prefix is
// re-read into them, and a mismatch at the end drops the partial file. A
// file without catalog checksums is therefore never resumed: nothing would
// catch a damaged prefix.
func (f *fetcher) resumePoint(fp *os.File, side string) (int64, *filestore.Checksums, error) {
	sf, err := openOwnFileRead(f.op, side)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(sf, 1<<16))
	sf.Close()
	if err != nil {
		return 0, nil, nil
	}
	var sc sidecar
	if json.Unmarshal(bytes.TrimRight(b, "\x00 \n"), &sc) != nil || sc.Version != 1 {
		return 0, nil, nil
	}
	file := f.fr.File
	// Only the very same file version may be continued, and only one whose
	// whole-file checksums will check the kept prefix.
	if sc.FileID != file.ID || sc.SHA256 != file.SHA256 || sc.Size != file.Size || file.SHA256 == "" && file.MD5 == "" {
		return 0, nil, nil
	}
	fi, err := fp.Stat()
	if err != nil {
		return 0, nil, nil
	}
	seg := planSegment(f.fr.Manifest)
	v := min(sc.Verified, fi.Size(), file.Size)
	from := v / seg * seg
	if from <= 0 {
		return 0, nil, nil
	}
	h := f.newHashPair()
	if _, err := fp.Seek(0, io.SeekStart); err != nil {
		return 0, nil, nil
	}
	if n, err := io.CopyBuffer(h, io.LimitReader(fp, from), make([]byte, 1<<20)); err != nil || n != from {
		return 0, nil, nil
	}
	return from, h, nil
}

// checkpointWriter writes to the partial file and records the verified
// length in the sidecar each time it passes a segment boundary (a fetch
// resumes at one), so an interruption costs at most one segment of
// refetch. Bytes reach it only after their chunk authenticated, so
// "written" is "verified".
//
// Neither file is synced here, since an fsync per segment stalls the
// pipeline: a record is one plain write over the sidecar's start (its JSON
// only grows, as the length does). A killed process loses nothing, since
// the page cache keeps both files' writes; after a system crash the
// sidecar may claim bytes the disk lost, which the whole-file checksums
// catch on the resumed run (see resumePoint). The finished file is synced
// once, before it is renamed into place.
type checkpointWriter struct {
	f    io.Writer // the partial file
	side *os.File
	sc   sidecar
	seg  int64
	kept *int64 // the length last recorded
}

func (c *checkpointWriter) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	before := c.sc.Verified
	c.sc.Verified += int64(n)
	if err == nil && c.sc.Verified/c.seg > before/c.seg {
		err = c.record()
	}
	return n, err
}

// start replaces the sidecar's contents with its first record.
func (c *checkpointWriter) start() error {
	if err := c.side.Chmod(0o600); err != nil {
		return err
	}
	if err := c.side.Truncate(0); err != nil {
		return err
	}
	return c.record()
}

// record writes the sidecar in place.
func (c *checkpointWriter) record() error {
	b, err := json.Marshal(c.sc)
	if err != nil {
		return err
	}
	if _, err := c.side.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("recording progress in %s: %w", c.side.Name(), err)
	}
	*c.kept = c.sc.Verified / c.seg * c.seg
	return nil
}

func syncDir(dir string) { syncDirErr(dir) }
