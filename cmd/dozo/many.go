package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/transfer"
)

// Many files at once: upload and fetch of several files run their
// transfers in parallel (--parallel), show one progress display, print a
// line per file as it ends and a summary, and exit non-zero naming every
// file that failed once the others are done.

func parallelFlag() cli.Flag {
	return &cli.IntFlag{Name: "parallel", Aliases: []string{"P"}, Usage: "`N` files transferred at once, 1..64", DefaultText: "the number of cores, 4 to 16"}
}

// parallelism is --parallel, checked, or its default.
func parallelism(c *cli.Context) (int, error) {
	if !c.IsSet("parallel") {
		return transfer.DefaultParallel(), nil
	}
	n := c.Int("parallel")
	if n < 1 || n > transfer.MaxParallel {
		return 0, badArg(c, i18n.Errorf("--parallel must be 1..%d, got %d", transfer.MaxParallel, n))
	}
	return n, nil
}

// batchResult counts a batch's outcomes and names its failures.
type batchResult struct {
	mu      sync.Mutex
	done    int
	skipped int
	bytes   int64 // sent or written by this run
	failed  []string
}

func (r *batchResult) fail(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, name)
}

// finish prints the summary (unless quiet or JSON) and returns the error
// that names the failed files, or nil.
func (r *batchResult) finish(c *cli.Context, w io.Writer, verb string, n int, began time.Time) error {
	el := time.Since(began)
	if !c.Bool("quiet") && !c.Bool("json") {
		i18n.Fprintf(w, "%s: %d of %s done, %d already there, %d failed; %s in %s (%s, %.1f files/s)\n",
			i18n.T(verb), r.done, plural(n, "file", "files"), r.skipped, len(r.failed),
			units.FormatSize(r.bytes), el.Round(10*time.Millisecond), rate(r.bytes, el), float64(r.done)/max(el.Seconds(), 1e-3))
	}
	if len(r.failed) == 0 {
		return nil
	}
	slices.Sort(r.failed)
	if c.Context.Err() != nil {
		return &client.Error{Op: i18n.T(verb), Err: i18n.Errorf("interrupted (%w)", context.Canceled),
			Hint: i18n.T("run the same command again: files already there are skipped, an interrupted one resumes")}
	}
	return &client.Error{Op: i18n.T(verb), Err: i18n.Errorf("%d of %s failed: %s", len(r.failed), plural(n, "file", "files"), strings.Join(r.failed, ", ")),
		Hint: i18n.T("each failure is shown above; run the same command again: files already there are skipped, an interrupted one resumes")}
}

// batchDisplay is the progress of a batch of files on stderr (none with
// --quiet), and its say: a notice printed above the bars.
func batchDisplay(c *cli.Context, verb string, total int64, files int) (*batchProgress, func(string, ...any)) {
	p := newBatchProgress(stderr(c), verb, total, files)
	if c.Bool("quiet") {
		p.enabled = false
	}
	return p, func(format string, args ...any) {
		p.print(stderr(c), fmt.Sprintf("dozo: "+i18n.T(format)+"\n", args...))
	}
}

// uploadMany uploads items to dataset ds, parallel at a time.
func uploadMany(c *cli.Context, cl *client.Client, d *client.Dir, id *client.Identity, ds string, items []transfer.UploadItem, stored map[string]api.File) error {
	parallel, err := parallelism(c)
	if err != nil {
		return err
	}
	if info, err := cl.Dataset(c.Context, ds); err == nil {
		defer transfer.BoundBatchHeap(min(parallel, len(items)), info)()
	}
	var total int64
	for _, it := range items {
		total += it.Size
	}
	p, say := batchDisplay(c, "upload", total, len(items))
	keeper := keepLogin(c, d, say)
	defer keeper.Stop()
	var res batchResult
	outs := make([]uploadOut, len(items))
	began := time.Now()
	errs := transfer.RunBatch(c.Context, len(items), parallel, func(ctx context.Context, i int) error {
		it := items[i]
		bar := p.begin(it.Name, it.Size)
		defer p.end(bar, it.Size)
		o, line, err := uploadItem(ctx, c, cl, d, id, ds, it, stored, func(phase string, done, size int64) { p.update(bar, phase, done, size) }, say)
		if err != nil {
			err = keeper.Explain(err)
			outs[i] = uploadOut{Path: it.Path, Dataset: ds, Name: it.Name, Size: it.Size, Error: err.Error()}
			res.fail(it.Name)
			p.print(stderr(c), "dozo: "+formatError(err, c.Bool("debug"))+"\n")
			return err
		}
		outs[i] = *o
		res.mu.Lock()
		if o.AlreadyStored {
			res.skipped++
		} else {
			res.done++
			res.bytes += o.Sent
		}
		res.mu.Unlock()
		if !c.Bool("json") && !c.Bool("quiet") {
			p.print(stdout(c), line)
		}
		return nil
	})
	for i, err := range errs {
		if err != nil && outs[i].Error == "" { // not started: interrupted
			outs[i] = uploadOut{Path: items[i].Path, Dataset: ds, Name: items[i].Name, Size: items[i].Size, Error: err.Error()}
			res.fail(items[i].Name)
		}
	}
	p.clear()
	if c.Bool("json") {
		if err := printJSON(stdout(c), outs); err != nil {
			return err
		}
	}
	return res.finish(c, stdout(c), "upload", len(items), began)
}

// uploadItem uploads one file of a batch, or skips it when the dataset
// already has it (same size and SHA-256). It returns the file's result
// and the line that says it.
func uploadItem(ctx context.Context, c *cli.Context, cl *client.Client, d *client.Dir, id *client.Identity, ds string, it transfer.UploadItem,
	stored map[string]api.File, progress func(phase string, done, size int64), say func(string, ...any)) (*uploadOut, string, error) {
	action, err := transfer.DecideUpload(d, cl.Broker(), ds, it, stored)
	if err != nil {
		return nil, "", err
	}
	wide := c.Bool("wide")
	if action == transfer.UploadSkip {
		f := stored[it.Name]
		o := &uploadOut{Path: it.Path, Dataset: ds, Name: f.Name, FileID: f.ID, Size: f.Size, SHA256: f.SHA256, MD5: f.MD5, State: f.State, AlreadyStored: true}
		line := i18n.Sprintf("already stored: %s -> %s/%s (%s; same size and SHA-256 %s)\n", it.Path, ds, f.Name, units.FormatSize(f.Size), shortHash(f.SHA256, wide))
		return o, line, nil
	}
	res, err := transfer.UploadFile(ctx, cl, transfer.UploadOptions{
		Dataset: ds, Path: it.Path, Name: it.Name,
		Dir: d, Identity: id, Concurrency: c.Int("concurrency"),
		Progress: progress, Notice: say,
	})
	if err != nil {
		return nil, "", err
	}
	o := &uploadOut{
		Path: it.Path, Dataset: res.File.Dataset, Name: res.File.Name, FileID: res.File.ID, Size: res.File.Size,
		SHA256: res.File.SHA256, MD5: res.File.MD5, State: res.File.State, Resumed: res.Resumed,
		Sent: res.Sent, Segments: res.Segments, Seconds: res.Elapsed.Seconds(),
	}
	line := i18n.Sprintf("uploaded %s -> %s/%s (%s; sha256 %s)\n", it.Path, o.Dataset, o.Name, uploadSummary(res), shortHash(o.SHA256, wide))
	if wide {
		line += i18n.Sprintf("  md5 %s\n", o.MD5)
	}
	return o, line, nil
}

// storedFiles lists the dataset's files by name; nil when they cannot be
// listed (each upload then meets dozod's own answer).
func storedFiles(ctx context.Context, cl *client.Client, ds string) map[string]api.File {
	files, err := cl.ListFiles(ctx, ds)
	if err != nil {
		return nil
	}
	m := make(map[string]api.File, len(files))
	for _, f := range files {
		m[f.Name] = f
	}
	return m
}

// fetchPatterns are the references of a fetch: its arguments and the
// lines of --from-file (- for standard input).
func fetchPatterns(c *cli.Context) ([]transfer.FetchPattern, error) {
	var ps []transfer.FetchPattern
	for _, a := range c.Args().Slice() {
		p, err := transfer.ParseFetchPattern(a)
		if err != nil {
			return nil, badArg(c, err)
		}
		ps = append(ps, p)
	}
	if list := c.String("from-file"); list != "" {
		var r io.Reader = os.Stdin
		if list != "-" {
			f, err := os.Open(list)
			if err != nil {
				return nil, badArg(c, err)
			}
			defer f.Close()
			r = f
		}
		lps, err := transfer.ReadFetchList(r)
		if err != nil {
			return nil, badArg(c, i18n.Errorf("%s: %w", list, err))
		}
		ps = append(ps, lps...)
	}
	if len(ps) == 0 {
		return nil, badArg(c, i18n.New("no file to fetch: the list is empty"))
	}
	return ps, nil
}

// isBatchFetch reports whether the fetch names (or may name) more than
// one file: several references, a list, a pattern or a whole dataset.
func isBatchFetch(c *cli.Context) bool {
	if c.NArg() != 1 || c.String("from-file") != "" {
		return true
	}
	p, err := transfer.ParseFetchPattern(c.Args().First())
	return err == nil && p.IsGlob()
}

// fetchMany fetches every file the references name into the directory
// -o, as DIR/NAME, parallel at a time. Where the files go is checked for
// all of them before any is fetched.
func fetchMany(c *cli.Context) error {
	for _, f := range []string{"range", "raw", "region", "index"} {
		if c.IsSet(f) {
			return badArg(c, i18n.Errorf("--%s fetches one file; name one DATASET/NAME", f))
		}
	}
	if c.NArg() == 0 && c.String("from-file") == "" {
		return needArgs(c, 1, "DATASET/NAME")
	}
	out := c.String("output")
	if fi, err := os.Stat(out); out == "-" || isStdoutPath(out) || err != nil || !fi.IsDir() {
		return badArg(c, notDirError{out, err})
	}
	if err := checkConcurrency(c); err != nil {
		return err
	}
	parallel, err := parallelism(c)
	if err != nil {
		return err
	}
	patterns, err := fetchPatterns(c)
	if err != nil {
		return err
	}
	cl, d, err := newClient(c)
	if err != nil {
		return err
	}
	id, err := d.Identity()
	if err != nil {
		return &client.Error{Op: i18n.T("fetching"), Err: err}
	}
	files, misses := transfer.MatchFetch(patterns, func(ds string) ([]api.File, error) { return cl.ListFiles(c.Context, ds) })
	for _, m := range misses {
		printError(stderr(c), &client.Error{Op: i18n.Sprintf("looking up %s", m.Ref), Err: m.Err}, c.Bool("debug"))
	}
	if len(files) == 0 {
		return &client.Error{Op: i18n.T("fetching"), Err: i18n.New("no file to fetch"), Hint: i18n.T("check the names with 'dozo ls DATASET'")}
	}
	plans, err := transfer.PlanOutputs(c.Context, out, files, c.Bool("force"), parallel)
	if err != nil {
		return err
	}
	largest := &api.Dataset{}
	for _, ds := range datasetsOf(files) {
		if info, err := cl.Dataset(c.Context, ds); err == nil && info.PlainSegmentSize > largest.PlainSegmentSize {
			largest = info
		}
	}
	if largest.PlainSegmentSize > 0 {
		defer transfer.BoundBatchHeap(min(parallel, len(files)), largest)()
	}
	var total int64
	for _, pl := range plans {
		total += pl.File.Size
	}
	p, say := batchDisplay(c, "fetch", total, len(plans))
	keeper := keepLogin(c, d, say)
	defer keeper.Stop()
	res := batchResult{}
	for _, m := range misses {
		res.failed = append(res.failed, m.Ref)
	}
	outs := make([]fetchOut, len(plans))
	began := time.Now()
	errs := transfer.RunBatch(c.Context, len(plans), parallel, func(ctx context.Context, i int) error {
		pl := plans[i]
		f := pl.File
		bar := p.begin(f.Name, f.Size)
		defer p.end(bar, f.Size)
		if pl.Stored {
			outs[i] = fetchOut{Dataset: f.Dataset, Name: f.Name, FileID: f.ID, Output: pl.Path, Size: f.Size, SHA256: f.SHA256, MD5: f.MD5,
				Verified: true, Checksums: []string{"sha256"}, DegradedTargets: []string{}, AlreadyFetched: true}
			res.mu.Lock()
			res.skipped++
			res.mu.Unlock()
			if !c.Bool("json") && !c.Bool("quiet") {
				p.print(stdout(c), i18n.Sprintf("already fetched: %s/%s -> %s (%s; same size and SHA-256)\n", f.Dataset, f.Name, pl.Path, units.FormatSize(f.Size)))
			}
			return nil
		}
		o, err := fetchItem(ctx, c, cl, id, pl, func(done, size int64) { p.update(bar, "fetch", done, size) }, say)
		if err != nil {
			err = keeper.Explain(err)
			outs[i] = fetchOut{Dataset: f.Dataset, Name: f.Name, FileID: f.ID, Output: pl.Path, Size: f.Size, DegradedTargets: []string{}, Error: err.Error()}
			res.fail(f.Dataset + "/" + f.Name)
			p.print(stderr(c), "dozo: "+formatError(err, c.Bool("debug"))+"\n")
			return err
		}
		outs[i] = *o
		res.mu.Lock()
		res.done++
		res.bytes += o.Written
		res.mu.Unlock()
		if !c.Bool("json") && !c.Bool("quiet") {
			what := i18n.Sprintf("verified: pieces, chunks, %s", checksumNames(o.Checksums))
			if o.Resumed {
				what = i18n.Sprintf("resumed at %s; %s", units.FormatSize(o.From), what)
			}
			p.print(stdout(c), i18n.Sprintf("fetched %s/%s -> %s (%s in %s, %s; %s)\n", f.Dataset, f.Name, o.Output, units.FormatSize(o.Written),
				time.Duration(o.Seconds*float64(time.Second)).Round(10*time.Millisecond), rate(o.Written, time.Duration(o.Seconds*float64(time.Second))), what))
		}
		return nil
	})
	for i, err := range errs {
		if err != nil && outs[i].Error == "" { // not started: interrupted
			f := plans[i].File
			outs[i] = fetchOut{Dataset: f.Dataset, Name: f.Name, FileID: f.ID, Output: plans[i].Path, Size: f.Size, DegradedTargets: []string{}, Error: err.Error()}
			res.fail(f.Dataset + "/" + f.Name)
		}
	}
	p.clear()
	if c.Bool("json") {
		if err := printJSON(stdout(c), outs); err != nil {
			return err
		}
	}
	return res.finish(c, stdout(c), "fetch", len(plans)+len(misses), began)
}

// notDirError refuses -o for several files when it is not a directory.
type notDirError struct {
	path string
	err  error // why, if it could not be looked at
}

func (e notDirError) Error() string {
	return i18n.Sprintf("several files go to a directory: -o DIR (%s is not a directory; mkdir -p it first)", e.path)
}

func (e notDirError) Unwrap() error { return e.err }

// fetchItem fetches one planned file of a batch, making its directories
// below DIR first.
func fetchItem(ctx context.Context, c *cli.Context, cl *client.Client, id *client.Identity, pl transfer.OutputPlan,
	progress func(done, size int64), say func(string, ...any)) (*fetchOut, error) {
	f := pl.File
	if err := transfer.MakeParents(c.String("output"), f.Name); err != nil {
		return nil, err
	}
	degraded := &degradedStorage{say: say, dataset: f.Dataset, name: f.Name, debug: c.Bool("debug")}
	res, err := transfer.FetchFile(ctx, cl, transfer.FetchOptions{
		Dataset: f.Dataset, Name: f.Name, Output: pl.Path, Force: pl.Replace,
		Identity: id, Concurrency: c.Int("concurrency"), MD5: c.Bool("md5"),
		Progress:   progress,
		OnDegraded: degraded.segment,
		Notice:     say,
	})
	if err != nil {
		return nil, err
	}
	if res.File.ID != f.ID {
		// Replaced between the listing and the fetch: what was fetched is
		// the file now under that name, checked against its own record.
		say("%s/%s was uploaded again since it was listed; fetched the new file", f.Dataset, f.Name)
	}
	reportFetchDone(c, cl, res)
	return &fetchOut{
		Dataset: f.Dataset, Name: f.Name, FileID: res.File.ID, Output: res.Output, Size: res.File.Size, Written: res.Bytes,
		From: res.From, Resumed: res.Resumed, Verified: res.Verified, Checksums: res.Checksums, SHA256: res.File.SHA256, MD5: res.File.MD5,
		Degraded: res.Stats.SegmentsDegraded, PiecesBad: res.Stats.PiecesBad, Seconds: res.Elapsed.Seconds(),
		DegradedTargets: degraded.targets(),
	}, nil
}

// datasetsOf lists the datasets of files, each once.
func datasetsOf(files []api.File) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		if !seen[f.Dataset] {
			seen[f.Dataset] = true
			out = append(out, f.Dataset)
		}
	}
	return out
}
