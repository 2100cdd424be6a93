package transfer

import (
	"context"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/units"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/region"
	"github.com/dozo-vault/dozo/storage"
)

// RegionOptions describe a region fetch: the records of a BAM, CRAM,
// bgzipped VCF or BCF that overlap some regions, as a file of the same
// format.
type RegionOptions struct {
	Dataset, Name string
	// Index names the index file in the dataset; empty means the usual
	// names (region.IndexNames), the first that exists.
	Index   string
	Regions []region.Region
	// Output is a path, or "-" for Stdout.
	Output string
	Stdout io.Writer
	// Force replaces an existing Output file.
	Force    bool
	Identity *client.Identity
	// Concurrency bounds parallel piece GETs; 0 for the storage default.
	Concurrency int
	// OnDegraded, if set, is told of every segment that needed parity.
	OnDegraded func(segment int, failures []storage.PieceFailure)
}

// RegionResult describes a finished region fetch.
type RegionResult struct {
	File   api.File
	Index  api.File
	Format region.Format
	Output string
	// Bytes is the size of the region file written.
	Bytes int64
	// Planned is how many bytes of the file were read: its header, the
	// chunks or containers overlapping the regions.
	Planned int64
	// Parts is how many separate ranges of the file were read.
	Parts int
	// Stats are the data file's storage reads (segments, pieces, bytes);
	// IndexStats the index's.
	Stats, IndexStats storage.ReadStats
	Elapsed           time.Duration
}

// maxRegionIndex bounds the index read into memory: a whole-genome BAI is
// about 10 MB, a CRAI a few.
const maxRegionIndex = 512 << 20

// FetchRegions writes the records of dataset/name overlapping o.Regions
// to o.Output as a file of the same format, reading the file's index and
// then only the segments that hold its header and those records.
//
// Every byte comes through RemoteFile.ReadAt, so it was verified piece by
// piece and chunk by chunk as any fetch; there is no whole-file checksum
// to compare. A file on disk appears at Output only once it is complete
// (it is written to Output.partial, 0600, and renamed); an interrupted
// region fetch leaves nothing behind. Output is resolved as a fetch's is:
// a directory receives the file under its name, a device or FIFO is
// written through.
func FetchRegions(ctx context.Context, c *client.Client, o RegionOptions) (*RegionResult, error) {
	began := time.Now()
	op := "fetching regions of " + o.Dataset + "/" + o.Name
	if o.Identity == nil {
		return nil, opError(op, client.ErrNoIdentity)
	}
	format, err := region.FormatOf(o.Name)
	if err != nil {
		return nil, hintError(op, "regions are for BAM, CRAM, VCF.gz and BCF files; fetch other files whole or with --range", err)
	}
	if len(o.Regions) == 0 {
		return nil, opError(op, errors.New("no region"))
	}
	if o.Output == "" {
		return nil, hintError(op, "pass -o PATH, or -o - for standard output", errors.New("no output"))
	}
	kind := outputFile
	if o.Output != "-" {
		// Before anything is fetched, as fetch does: a directory receives
		// the region file under the file's name, a device or FIFO is
		// written through, and an output that cannot be written is refused.
		out, k, err := resolveOutput(op, o.Output, o.Name, o.Force)
		if err != nil {
			return nil, err
		}
		o.Output, kind = out, k
	}
	indexName, err := findIndex(ctx, c, op, o)
	if err != nil {
		return nil, err
	}
	res := &RegionResult{Format: format, Output: o.Output}
	index, err := readIndex(ctx, c, o, indexName, res)
	if err != nil {
		return nil, err
	}
	f, err := Open(ctx, c, OpenOptions{Dataset: o.Dataset, Name: o.Name, Identity: o.Identity,
		Concurrency: o.Concurrency, OnDegraded: o.OnDegraded})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res.File = f.Info
	plan, err := region.Make(f, f.Size(), format, index, o.Regions)
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(op, ctx)
		}
		return nil, hintError(op, "check the regions against the file's references, and that "+indexName+" is this file's index", err)
	}
	res.Parts = len(plan.Parts) - 1
	write := func(w io.Writer) error {
		raw := func(w io.Writer, off, n int64) error {
			return copyRange(ctx, w, f.File, off, n, regionWarmStep)
		}
		n, err := region.Write(w, plan, raw)
		res.Bytes, res.Planned = n, plan.SourceBytes()
		return err
	}
	switch {
	case o.Output == "-":
		out := o.Stdout
		if out == nil {
			out = os.Stdout
		}
		err = write(out)
	case kind == outputDevice:
		err = writeDevice(ctx, op, o.Output, write)
	default:
		err = writeAtomically(op, o.Output, o.Force, write)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(op, ctx)
		}
		if errors.Is(err, syscall.ENOSPC) {
			return nil, hintError(op, "free some disk space, then run the same command again", err)
		}
		return nil, opError(op, err)
	}
	res.Stats = f.Stats()
	res.Elapsed = time.Since(began)
	return res, nil
}

// regionWarmStep is how far ahead a region copy warms the segment cache;
// any step is safe, since only bytes inside the copied range are warmed.
const regionWarmStep = 1 << 20

func interrupted(op string, ctx context.Context) error {
	return hintError(op, "run the same command again", fmt.Errorf("interrupted (%w)", ctx.Err()))
}

// findIndex returns o.Index, or the first of the usual index names that
// the dataset holds.
func findIndex(ctx context.Context, c *client.Client, op string, o RegionOptions) (string, error) {
	if o.Index != "" {
		return o.Index, nil
	}
	files, err := c.ListFiles(ctx, o.Dataset)
	if err != nil {
		return "", opError(op, err)
	}
	names := region.IndexNames(o.Name)
	for _, n := range names {
		if slices.ContainsFunc(files, func(f api.File) bool { return f.Name == n }) {
			return n, nil
		}
	}
	return "", hintError(op, "upload the index beside the file, or name it with --index",
		fmt.Errorf("%s has no index in %s (looked for %v)", o.Name, o.Dataset, names))
}

// readIndex reads the whole index file through Open (it is small).
func readIndex(ctx context.Context, c *client.Client, o RegionOptions, name string, res *RegionResult) ([]byte, error) {
	op := "reading the index " + o.Dataset + "/" + name
	f, err := Open(ctx, c, OpenOptions{Dataset: o.Dataset, Name: name, Identity: o.Identity,
		Concurrency: o.Concurrency, OnDegraded: o.OnDegraded})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res.Index = f.Info
	if f.Size() > maxRegionIndex {
		return nil, opError(op, fmt.Errorf("%s bytes is too large for an index (at most %s)", units.FormatSize(f.Size()), units.FormatSize(maxRegionIndex)))
	}
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if ctx.Err() != nil {
			return nil, interrupted(op, ctx)
		}
		return nil, opError(op, err)
	}
	res.IndexStats = f.Stats()
	return b, nil
}

// writeDevice writes through write to the character device or FIFO at
// out, as fetch does: opened for writing, nothing created or truncated.
func writeDevice(ctx context.Context, op, out string, write func(io.Writer) error) error {
	df, err := openDevice(ctx, op, out, func() {})
	if err != nil {
		return err
	}
	defer df.Close()
	// A FIFO whose reader stalls must not hold an interrupted fetch.
	stop := context.AfterFunc(ctx, func() { df.SetWriteDeadline(time.Now()) })
	defer stop()
	err = write(df)
	if cerr := df.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// writeAtomically writes through write to out.partial (0600, a file of
// ours, locked against a concurrent fetch to the same path) and renames it
// to out once write succeeded; on failure nothing is left behind.
func writeAtomically(op, out string, force bool, write func(io.Writer) error) error {
	partial, side, lockPath := fetchSidePaths(out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return opError(op, err)
	}
	unlock, err := lockFile(lockPath)
	if errors.Is(err, errLocked) {
		return hintError(op, "wait for the other 'dozo fetch' to "+out+" to finish", err)
	}
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkOutput(op, out, force); err != nil {
		return err
	}
	if err := checkNoUnsafeFile(op, side); err != nil {
		return err
	}
	fp, err := openOwnFile(op, partial, true)
	if err != nil {
		return err
	}
	defer fp.Close()
	fail := func(err error) error {
		fp.Close()
		os.Remove(partial)
		return err
	}
	if err := fp.Chmod(0o600); err != nil {
		return fail(opError(op, err))
	}
	if err := fp.Truncate(0); err != nil {
		return fail(opError(op, err))
	}
	os.Remove(side) // a stale sidecar of an earlier full fetch to out
	if err := write(fp); err != nil {
		return fail(err)
	}
	if err := fp.Sync(); err != nil {
		return fail(opError(op, err))
	}
	if !isAt(fp, partial) {
		return opError(op, fmt.Errorf("%s was replaced during the fetch; not renaming it to %s", partial, out))
	}
	if err := fp.Close(); err != nil {
		return opError(op, err)
	}
	f := &fetcher{op: op, o: FetchOptions{Force: force}}
	if err := f.publish(partial, out); err != nil {
		return err
	}
	syncDir(filepath.Dir(out))
	return nil
}
