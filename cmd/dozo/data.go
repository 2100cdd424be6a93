package main

import (
	"errors"
	"fmt"
	"golang.org/x/text/language"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/transfer"
)

func uploadCommand() *cli.Command {
	return &cli.Command{
		Name:      "upload",
		Usage:     "encrypt and upload files to a dataset (resumable)",
		ArgsUsage: "FILE|DIR|GLOB...",
		Description: "Each file is encrypted here (age, with a fresh random key), cut into segments,\n" +
			"erasure-coded and sent piece by piece straight to storage through URLs dozod\n" +
			"signs; memory stays bounded whatever the file size. SHA-256 and MD5 of the\n" +
			"plaintext are computed on the way and recorded in the catalog.\n\n" +
			"If an upload is interrupted (Ctrl-C, network, reboot), run the same command\n" +
			"again: it continues at the next unsent segment, after checking that the file\n" +
			"is unchanged (size, mtime, inode, and a re-hash of every segment that was\n" +
			"sent, committed or not) and that dozod's session holds the journal's key.\n" +
			"A changed file starts over with a new key. Resuming needs your age identity\n" +
			"('dozo keygen'), to which the journal's copy of the file key is sealed.\n\n" +
			"A file keeps the relative path it was given by as its name in dozo\n" +
			"(lane2/S1_R1.fastq.gz); an absolute path or one with .. gives its base\n" +
			"name, and --name (one file) any name. --recursive uploads a directory's\n" +
			"files under the directory's name; links below it are not followed.\n\n" +
			"Several files go up --parallel at a time, with one progress display and\n" +
			"a summary; a failed file is named and the others go on (exit status 1).\n" +
			"Run the same command again after a failure or interruption: files the\n" +
			"dataset already has with the same size and SHA-256 are skipped (\"already\n" +
			"stored\"), an interrupted one resumes, the rest are sent.\n\n" +
			"EXAMPLES:\n" +
			"   dozo upload --dataset JGAD000001 sample1.cram sample1.cram.crai\n" +
			"   dozo upload -d JGAD000001 --name NA12878.bam /scratch/tmp/out.bam\n" +
			"   dozo upload -d JGAD000001 -r run1/ --parallel 8\n" +
			"   dozo upload -d JGAD000001 *.fastq.gz --json > uploaded.json\n" +
			"   dozo upload -d JGAD000001 --dry-run sample1.cram sample1.cram.crai",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dataset", Aliases: []string{"d"}, Usage: "dataset `ID` to upload into", Required: true},
			&cli.StringFlag{Name: "name", Usage: "`NAME` in dozo (single file only; default: the file's base name)"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "upload the files below each DIR given, named DIR/PATH"},
			parallelFlag(),
			&cli.IntFlag{Name: "concurrency", Usage: "`N` parallel piece uploads, 1..256", DefaultText: "K+M of the dataset"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list what would be uploaded, resumed or skipped, and send nothing"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar and no result lines (errors and --json still print)"},
			&cli.BoolFlag{Name: "wide", Usage: "whole checksums (SHA-256 and MD5) in the result lines"},
			jsonFlag,
		},
		Action: runUpload,
	}
}

type uploadOut struct {
	Path     string  `json:"path"`
	Dataset  string  `json:"dataset"`
	Name     string  `json:"name"`
	FileID   string  `json:"file_id"`
	Size     int64   `json:"size"`
	SHA256   string  `json:"sha256"`
	MD5      string  `json:"md5"`
	State    string  `json:"state"`
	Resumed  bool    `json:"resumed"`
	Sent     int64   `json:"sent_bytes"`
	Segments int     `json:"segments"`
	Seconds  float64 `json:"seconds"`
	// AlreadyStored: the dataset had the file (same size and SHA-256);
	// nothing was sent.
	AlreadyStored bool `json:"already_stored,omitempty"`
	// Error says why this file of a batch failed.
	Error string `json:"error,omitempty"`
}

func runUpload(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return needArgs(c, 1, "at least one FILE")
	}
	if c.String("name") != "" && (len(args) > 1 || c.Bool("recursive")) {
		return badArg(c, i18n.New("--name needs exactly one FILE"))
	}
	ds := c.String("dataset")
	if err := api.ValidateDatasetID(ds); err != nil {
		return badArg(c, err)
	}
	if err := checkConcurrency(c); err != nil {
		return err
	}
	if _, err := parallelism(c); err != nil {
		return err
	}
	// Check every file and name first, so a typo in the last argument does
	// not surface after hours of uploading the first.
	items, err := uploadItems(c, args)
	if err != nil {
		return err
	}
	cl, d, err := newClient(c)
	if err != nil {
		return err
	}
	stored := storedFiles(c.Context, cl, ds)
	if c.Bool("dry-run") {
		return uploadDryRun(c, cl, d, ds, items, stored)
	}
	id, err := d.Identity()
	if err != nil && !errors.Is(err, client.ErrNoIdentity) {
		return &client.Error{Op: i18n.T("loading your age identity"), Err: err}
	}
	if len(items) > 1 {
		return uploadMany(c, cl, d, id, ds, items, stored)
	}
	it := items[0]
	p, say := fileDisplay(c, it.Size)
	keeper := keepLogin(c, d, say)
	defer keeper.Stop()
	p.file(it.Name, it.Size)
	o, line, err := uploadItem(c.Context, c, cl, d, id, ds, it, stored, p.update, say)
	p.finish()
	if err != nil {
		return keeper.Explain(err)
	}
	if c.Bool("json") {
		return printJSON(stdout(c), []uploadOut{*o})
	}
	if !c.Bool("quiet") {
		// One line per file; the whole hashes with --wide (and
		// `dozo checksums` lists them for sha256sum -c).
		fmt.Fprint(stdout(c), line)
	}
	return nil
}

// uploadItems are the files the arguments name, each with its name in
// dozo, all checked before anything is sent.
func uploadItems(c *cli.Context, args []string) ([]transfer.UploadItem, error) {
	var items []transfer.UploadItem
	if name := api.NormalizeFileName(c.String("name")); name != "" {
		f := args[0]
		fi, err := os.Stat(f)
		if err != nil {
			return nil, &client.Error{Op: i18n.Sprintf("uploading %s", f), Err: err, Hint: i18n.T("check the path")}
		}
		if fi.IsDir() {
			return nil, &client.Error{Op: i18n.Sprintf("uploading %s", f), Err: i18n.New("not a regular file")}
		}
		if err := client.ValidateName(name); err != nil {
			return nil, &client.Error{Op: i18n.Sprintf("uploading %s", f), Err: err, Hint: i18n.T("rename the file or use --name")}
		}
		items = []transfer.UploadItem{{Path: f, Name: name, Size: fi.Size()}}
	} else {
		var err error
		items, err = transfer.ExpandUploads(args, c.Bool("recursive"), func(path, why string) {
			notice(c)("skipping %s: %s", path, i18n.T(why))
		})
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, badArg(c, i18n.New("no files to upload"))
		}
	}
	for _, it := range items {
		if err := transfer.CheckUploadSource(it.Path); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// uploadPlan is what upload --dry-run says of one file.
type uploadPlan struct {
	Path   string `json:"path"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	Action string `json:"action"` // "upload", "resume", "skip" or "refuse"
	Why    string `json:"why,omitempty"`
	// why is Why in the chosen language, for the table; --json keeps
	// the English.
	why string
}

// uploadDryRun says, for each file, whether upload would send it, resume
// it (an interrupted upload's journal is here), skip it (the dataset has
// it: same size and SHA-256, hashed here) or refuse it (the dataset has
// another file of that name), and sends nothing.
func uploadDryRun(c *cli.Context, cl *client.Client, d *client.Dir, ds string, items []transfer.UploadItem, stored map[string]api.File) error {
	if stored == nil {
		if _, err := cl.ListFiles(c.Context, ds); err != nil {
			return &client.Error{Op: i18n.Sprintf("listing files of %s", ds), Err: err}
		}
	}
	var plans []uploadPlan
	var send int64
	counts := map[string]int{}
	for _, it := range items {
		pl := uploadPlan{Path: it.Path, Name: it.Name, Size: it.Size, Action: "upload"}
		action, err := transfer.DecideUpload(d, cl.Broker(), ds, it, stored)
		switch {
		case err != nil:
			pl.Action, pl.Why = "refuse", err.Error()
			pl.why = formatError(err, false)
		case action == transfer.UploadSkip:
			pl.Action = "skip"
			pl.Why = fmt.Sprintf(i18n.In(language.English, "%s already has %s (%s, same SHA-256)"), ds, it.Name, units.FormatSize(it.Size))
			pl.why = i18n.Sprintf("%s already has %s (%s, same SHA-256)", ds, it.Name, units.FormatSize(it.Size))
		case action == transfer.UploadResume:
			pl.Action, pl.Why, pl.why = "resume", "an interrupted upload of it is recorded here", i18n.T("an interrupted upload of it is recorded here")
			abs, _ := filepath.Abs(it.Path)
			if _, jerr := transfer.LoadJournal(transfer.JournalPath(d, cl.Broker(), ds, it.Name, abs)); jerr != nil {
				pl.Action = "upload"
				pl.Why = fmt.Sprintf(i18n.In(language.English, "its journal cannot be read; upload starts over: %v"), jerr)
				pl.why = i18n.Sprintf("its journal cannot be read; upload starts over: %v", jerr)
			}
		}
		if pl.Action == "upload" || pl.Action == "resume" {
			send += pl.Size
		}
		counts[pl.Action]++
		plans = append(plans, pl)
	}
	if c.Bool("json") {
		return printJSON(stdout(c), plans)
	}
	w := stdout(c)
	for _, pl := range plans {
		line := i18n.Sprintf("would %-6s %s -> %s/%s (%s)", i18n.T(pl.Action), pl.Path, ds, pl.Name, units.FormatSize(pl.Size))
		if pl.why != "" {
			line += ": " + pl.why
		}
		fmt.Fprintln(w, line)
	}
	i18n.Fprintf(w, "dry run: %s to upload, %d to resume, %d to skip, %d refused; up to %s to send; nothing was sent\n",
		plural(counts["upload"], "file", "files"), counts["resume"], counts["skip"], counts["refuse"], units.FormatSize(send))
	return nil
}

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return units.FormatSize(int64(float64(n)/d.Seconds())) + "/s"
}

func fetchCommand() *cli.Command {
	return &cli.Command{
		Name:      "fetch",
		Usage:     "download, verify and decrypt files (resumable)",
		ArgsUsage: "DATASET/NAME|DATASET/PATTERN|DATASET...",
		Description: "dozod checks your grant and wraps the file's key for your registered key;\n" +
			"pieces come straight from storage and are checked against the manifest's\n" +
			"hashes (parity repairs missing or corrupt ones; you are told once if storage\n" +
			"is degraded), every chunk is authenticated, and the whole file's SHA-256 and\n" +
			"MD5 are compared with the catalog. Data goes to PATH.partial (0600) and is\n" +
			"renamed to PATH only when all checks pass, so PATH never holds a bad file.\n" +
			"An interrupted fetch continues from the last verified segment when re-run.\n" +
			"dozo never writes through a link: a symbolic or hard link, or another user's\n" +
			"file, at PATH.partial, its .lock or .dozo, or a symbolic link at PATH, is\n" +
			"refused, and nothing is changed.\n\n" +
			"Several files — more than one argument, a PATTERN (DATASET/*.cram; '*'\n" +
			"does not cross '/'), a whole DATASET or --from-file LIST (one reference a\n" +
			"line, # comments) — go to -o DIR as DIR/NAME, the name's directories made\n" +
			"below DIR as cp does, --parallel at a time. Before anything is fetched,\n" +
			"every target is checked: a missing DIR, a link or file in the way, or a\n" +
			"target that exists with other contents (without --force) refuses the\n" +
			"whole batch. A target that already holds the file (same size and SHA-256)\n" +
			"is skipped, so a rerun fetches only what failed or is missing; a failed\n" +
			"file is named and the others go on (exit status 1).\n\n" +
			"-o DIR writes DIR/NAME. -o - (or /dev/stdout), a FIFO or a character device\n" +
			"such as /dev/null is written through, with no partial file and no resume; a\n" +
			"checksum failure then makes dozo exit non-zero after the data was written,\n" +
			"so check the exit status. Other targets (sockets, ...) are refused up front.\n" +
			"--range START-END fetches a byte range (inclusive), touching only the\n" +
			"segments that cover it: START must be inside the file, an END past the end\n" +
			"stops at the end, and a range that is the whole file (0-) is checked against\n" +
			"the whole file's SHA-256 and MD5 like a plain fetch.\n" +
			"--raw writes the standard age file instead; 'age -d -i identity.age' opens it.\n\n" +
			regionHelp + "\n" +
			"EXAMPLES:\n" +
			"   dozo fetch JGAD000001/sample1.cram -o sample1.cram\n" +
			"   dozo fetch JGAD000001/'*.cram' JGAD000001/'*.crai' -o cram/ --parallel 8\n" +
			"   dozo fetch JGAD000001 -o JGAD000001/\n" +
			"   dozo fetch --from-file samples.txt -o data/\n" +
			"   dozo fetch JGAD000001/sample1.bam -o - | samtools view - | head\n" +
			"   dozo fetch JGAD000001/sample1.bam --range 0-65535 -o head.bin\n" +
			"   dozo fetch JGAD000001/NA12878.cram --region chr20:1000000-2000000 -o chr20.cram\n" +
			"   dozo fetch JGAD000001/sample1.bam --raw -o sample1.bam.age\n" +
			"   age -d -i ~/.config/dozo/identity.age sample1.bam.age > sample1.bam",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "`PATH` to write, or - for standard output; DIR for several files", Required: true},
			&cli.StringFlag{Name: "from-file", Usage: "fetch the references listed in `LIST`, one a line (- for standard input)"},
			parallelFlag(),
			&cli.StringFlag{Name: "range", Usage: "only bytes `START-END` (inclusive offsets; START- for the rest; START+LENGTH; units like 1M allowed)"},
			&cli.BoolFlag{Name: "raw", Usage: "write the age-encrypted file instead of the plaintext"},
			&cli.BoolFlag{Name: "md5", Usage: "also check the whole file's MD5 (SHA-256 is always checked)"},
			&cli.BoolFlag{Name: "force", Usage: "replace PATH if it exists (with -o -: write even to a terminal)"},
			&cli.IntFlag{Name: "concurrency", Usage: "`N` parallel piece downloads, 1..256", DefaultText: "K per segment, with readahead"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar and no result line (errors, warnings and --json still print)"},
			jsonFlag,
		}, regionFlags()...),
		Action: runFetch,
	}
}

type fetchOut struct {
	Dataset   string  `json:"dataset"`
	Name      string  `json:"name"`
	FileID    string  `json:"file_id"`
	Output    string  `json:"output"`
	Size      int64   `json:"size"`
	Written   int64   `json:"written_bytes"`
	From      int64   `json:"from"`
	Resumed   bool    `json:"resumed"`
	Verified  bool    `json:"checksums_verified"`
	SHA256    string  `json:"sha256"`
	MD5       string  `json:"md5"`
	Degraded  int64   `json:"segments_degraded"`
	PiecesBad int64   `json:"pieces_bad"`
	Seconds   float64 `json:"seconds"`

	// DegradedTargets are the targets whose pieces could not be used (the
	// data came from parity); empty when storage was healthy.
	DegradedTargets []string `json:"degraded_targets"`
	// Checksums names the whole-file checksums that matched.
	Checksums []string `json:"checksums_checked"`
	// AlreadyFetched: the output already held the file (same size and
	// SHA-256); nothing was fetched.
	AlreadyFetched bool `json:"already_fetched,omitempty"`
	// Error says why this file of a batch failed.
	Error string `json:"error,omitempty"`
}

// isStdoutPath reports whether path names this process's standard output.
func isStdoutPath(path string) bool {
	switch path {
	case "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1":
		return true
	}
	return false
}

// fileDisplay is the progress of one file of size bytes on stderr (none
// with --quiet), and its say: a notice on a line of its own, the bar
// cleared first.
func fileDisplay(c *cli.Context, size int64) (*progress, func(string, ...any)) {
	p := newProgress(stderr(c), size, 1)
	if c.Bool("quiet") {
		p.enabled = false
	}
	return p, func(format string, args ...any) {
		p.clear()
		notice(c)(format, args...)
	}
}

func runFetch(c *cli.Context) error {
	if _, err := parallelism(c); err != nil {
		return err
	}
	if isBatchFetch(c) {
		return fetchMany(c)
	}
	ds, name, err := client.ParseFileRef(c.Args().First())
	if err != nil {
		return badArg(c, err)
	}
	if c.IsSet("region") || c.IsSet("index") {
		return runRegionFetch(c, ds, name)
	}
	var rng *transfer.Range
	if s := c.String("range"); s != "" {
		r, err := transfer.ParseRange(s)
		if err != nil {
			return badArg(c, err)
		}
		rng = &r
	}
	if rng != nil && c.Bool("raw") {
		return badArg(c, i18n.New("--range and --raw do not combine (a range of an age file is not an age file)"))
	}
	if err := checkConcurrency(c); err != nil {
		return err
	}
	cl, d, err := newClient(c)
	if err != nil {
		return err
	}
	id, err := d.Identity()
	if err != nil {
		return &client.Error{Op: "fetching " + ds + "/" + name, Err: err}
	}
	out := c.String("output")
	if isStdoutPath(out) {
		// The process's own standard output, not the link /dev/stdout
		// (which dozo never follows).
		out = "-"
	}
	if out == "-" && !c.Bool("force") && isTerminal(stdout(c)) {
		return badArg(c, i18n.New("standard output is a terminal; pipe it (e.g. | samtools view -) or write a file with -o PATH (--force sends it anyway)"))
	}
	if fi, err := os.Lstat(out); err == nil && fi.IsDir() && strings.Contains(name, "/") {
		// -o DIR for a name with directories: DIR/lane2/S1.fq, as cp.
		if err := transfer.MakeParents(out, name); err != nil {
			return err
		}
	}
	p, say := fileDisplay(c, 0)
	p.file(name, 0)
	keeper := keepLogin(c, d, say)
	defer keeper.Stop()
	degraded := &degradedStorage{say: say, debug: c.Bool("debug")}
	res, err := transfer.FetchFile(c.Context, cl, transfer.FetchOptions{
		Dataset: ds, Name: name, Output: out, Stdout: stdout(c), Force: c.Bool("force"),
		Identity: id, Range: rng, Raw: c.Bool("raw"), Concurrency: c.Int("concurrency"), MD5: c.Bool("md5"),
		Progress:   func(done, total int64) { p.update("fetch", done, total) },
		OnDegraded: degraded.segment,
		Notice:     say,
	})
	p.finish()
	if err != nil {
		return keeper.Explain(err)
	}
	reportFetchDone(c, cl, res) // audit.go
	o := fetchOut{
		Dataset: ds, Name: name, FileID: res.File.ID, Output: res.Output, Size: res.File.Size, Written: res.Bytes,
		From: res.From, Resumed: res.Resumed, Verified: res.Verified, Checksums: res.Checksums, SHA256: res.File.SHA256, MD5: res.File.MD5,
		Degraded: res.Stats.SegmentsDegraded, PiecesBad: res.Stats.PiecesBad, Seconds: res.Elapsed.Seconds(),
		DegradedTargets: degraded.targets(),
	}
	// With -o - standard output carries the data: the summary goes to stderr.
	w := stdout(c)
	if out == "-" {
		w = stderr(c)
	}
	if c.Bool("json") {
		return printJSON(w, o)
	}
	if c.Bool("quiet") {
		return nil
	}
	sums := checksumNames(res.Checksums)
	what := i18n.Sprintf("verified: pieces, chunks, %s", sums)
	switch {
	case rng != nil && res.Verified: // the range was the whole file
		what = i18n.Sprintf("bytes %d-%d, the whole file; verified: pieces, chunks, %s", res.From, res.From+res.Bytes-1, sums)
	case rng != nil:
		what = i18n.Sprintf("bytes %d-%d; verified: pieces and chunks", res.From, res.From+res.Bytes-1)
	case !res.Verified:
		what = i18n.T("verified: pieces and chunks (the catalog has no checksums)")
	case c.Bool("raw"):
		what = i18n.Sprintf("age file; verified: pieces, and it decrypts to the catalog's %s", sums)
	}
	dest := res.Output // -o DIR: DIR/NAME
	if out == "-" {
		dest = i18n.T("standard output")
	}
	if res.Resumed {
		what = i18n.Sprintf("resumed at %s; %s", units.FormatSize(res.From), what)
	}
	i18n.Fprintf(w, "fetched %s/%s -> %s (%s in %s, %s; %s)\n", ds, name, dest, units.FormatSize(res.Bytes), res.Elapsed.Round(10*time.Millisecond), rate(res.Bytes, res.Elapsed), what)
	if res.Stats.SegmentsDegraded > 0 {
		i18n.Fprintf(w, "  note: %s needed parity (%s); the data is intact\n",
			plural(int(res.Stats.SegmentsDegraded), "segment", "segments"), plural(int(res.Stats.PiecesBad), "bad piece", "bad pieces"))
	}
	return nil
}

// checkConcurrency refuses a --concurrency given but out of 1..MaxConcurrency;
// not given, the library picks (0).
func checkConcurrency(c *cli.Context) error {
	if !c.IsSet("concurrency") {
		return nil
	}
	if err := validateConcurrency(c.Int("concurrency")); err != nil {
		return badArg(c, err)
	}
	return nil
}
