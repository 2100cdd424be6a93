package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
)

// exitUnrecoverable is dozo scrub's exit status when a segment has lost
// more pieces than parity covers (the file is marked damaged): distinct
// from 1 (the command failed) so schedulers can page on it.
const exitUnrecoverable = 3

// scrubPoll is how often dozo scrub asks dozod for progress.
var scrubPoll = time.Second

func scrubCommand() *cli.Command {
	return &cli.Command{
		Name:      "scrub",
		Usage:     "check that every piece of every file is present and intact; repair from parity (admin)",
		ArgsUsage: "[DATASET]",
		Description: "dozod checks each file's pieces against its signed manifest: a light scrub\n" +
			"checks that every piece exists with the right size (no piece is read), --deep\n" +
			"reads every piece and checks its hash. --repair rebuilds missing, short and\n" +
			"corrupt pieces from the surviving ones (Reed-Solomon), verifies each rebuilt\n" +
			"piece's hash and stores it (on its own target, or on another one that keeps\n" +
			"the failure-domain rule), then re-signs the manifest. A segment with more\n" +
			"than M lost pieces cannot be rebuilt: it is reported unrecoverable, nothing\n" +
			"is written, the file is marked damaged, and dozo exits with status 3.\n" +
			"The scrub runs inside dozod, one at a time; this command follows it with a\n" +
			"progress bar and prints a summary (--detach: start it and return).\n\n" +
			"EXAMPLES:\n" +
			"   dozo scrub                                   # light scrub of everything\n" +
			"   dozo scrub JGAD000001 --deep --rate 200MiB/s # read and hash every piece, paced\n" +
			"   dozo scrub JGAD000001 --file NA12878.cram --deep --repair\n" +
			"   dozo scrub --deep --repair --detach --json | jq -r .id\n" +
			"   dozo scrub JGAD000001 --repair --dry-run         # what a repair would rebuild; writes nothing\n" +
			"   dozo scrub status                            # recent runs\n" +
			"   dozo scrub status scrub-1f2e... --json       # one run's full report",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Usage: "scrub only the file `NAME` of DATASET"},
			&cli.BoolFlag{Name: "deep", Usage: "read every piece and check its hash (default: existence and size only)"},
			&cli.BoolFlag{Name: "repair", Usage: "rebuild bad pieces from parity and update the manifest"},
			&cli.StringFlag{Name: "rate", Usage: "bound the deep read `RATE`, e.g. 200MiB/s (default: no limit)"},
			&cli.BoolFlag{Name: "detach", Usage: "start the scrub and return; follow it with dozo scrub status"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "with --repair: a deep scrub that reports what it would repair and writes nothing"},
			jsonFlag,
		},
		Action: runScrub,
		Subcommands: []*cli.Command{
			{
				Name:      "status",
				Usage:     "show a scrub run, or list recent runs",
				ArgsUsage: "[RUN]",
				Description: "Without RUN, lists recent runs. With RUN, prints its summary and findings\n" +
					"(--json: the full report); exit status 3 if it found unrecoverable segments.\n\n" +
					"EXAMPLES:\n" +
					"   dozo scrub status\n" +
					"   dozo scrub status scrub-1f2e... --json | jq '.findings[] | select(.action != \"repaired\")'",
				Flags:  []cli.Flag{jsonFlag},
				Action: runScrubStatus,
			},
			{
				Name:      "cancel",
				Usage:     "stop a running scrub (files already checked keep their results)",
				ArgsUsage: "RUN",
				Description: "EXAMPLES:\n" +
					"   dozo scrub cancel scrub-1f2e...",
				Flags:  []cli.Flag{jsonFlag},
				Action: runScrubCancel,
			},
		},
	}
}

func runScrub(c *cli.Context) error {
	if c.NArg() > 1 {
		return needArgs(c, 1, "at most one DATASET")
	}
	req := api.ScrubRequest{Dataset: c.Args().First(), File: c.String("file"), Deep: c.Bool("deep"), Repair: c.Bool("repair")}
	if c.Bool("dry-run") {
		if !req.Repair {
			return badArg(c, i18n.New("--dry-run goes with --repair (a scrub without it writes nothing anyway)"))
		}
		// What a repair would find is what a deep scrub finds; it
		// writes nothing.
		req.Deep, req.Repair = true, false
		notice(c)("dry run: a deep scrub without repair; every bad piece it finds is one --repair would rebuild")
	}
	if req.Dataset != "" {
		if err := api.ValidateDatasetID(req.Dataset); err != nil {
			return badArg(c, err)
		}
	}
	if req.File != "" && req.Dataset == "" {
		return badArg(c, i18n.New("--file needs a DATASET"))
	}
	if v := c.String("rate"); v != "" {
		r, err := api.ParseRate(v)
		if err != nil {
			return badArg(c, i18n.Errorf("bad --rate: %w", err))
		}
		if r > 0 && !req.Deep && !req.Repair {
			return badArg(c, i18n.New("--rate paces piece reads; a light scrub reads none (add --deep)"))
		}
		req.RateBytesPerSec = r
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	run, err := cl.StartScrub(c.Context, req)
	if err != nil {
		return &client.Error{Op: i18n.T("starting a scrub"), Err: err}
	}
	if c.Bool("detach") {
		if c.Bool("json") {
			return printJSON(stdout(c), run)
		}
		i18n.Fprintf(stdout(c), "Started %s %s.\nFollow it with: dozo scrub status %s\n", scrubMode(run), run.ID, run.ID)
		return nil
	}
	notice(c)("started %s %s (%s); follow it elsewhere with `dozo scrub status %s`", scrubMode(run), run.ID, plural(run.Summary.Files, "file", "files"), run.ID)
	p := newProgress(stderr(c), run.Summary.BytesTotal, 1)
	p.file(scrubMode(run), run.Summary.BytesTotal)
	final, err := cl.WaitScrub(c.Context, run.ID, scrubPoll, func(r *api.ScrubRun) {
		label := scrubMode(r)
		if r.Current != "" {
			label = r.Current
		}
		p.mu.Lock()
		p.label = label
		p.mu.Unlock()
		p.update("", r.Summary.Bytes, r.Summary.BytesTotal)
	})
	p.clear()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			notice(c)("stopped following; scrub %s continues in dozod (dozo scrub status %s, dozo scrub cancel %s)", run.ID, run.ID, run.ID)
		}
		return &client.Error{Op: i18n.Sprintf("following scrub %s", run.ID), Err: err}
	}
	return reportScrub(c, final)
}

func runScrubStatus(c *cli.Context) error {
	if c.NArg() > 1 {
		return needArgs(c, 1, "at most one RUN")
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	if id := c.Args().First(); id != "" {
		r, err := cl.Scrub(c.Context, id, true)
		if err != nil {
			return &client.Error{Op: i18n.Sprintf("reading scrub %s", id), Err: err}
		}
		return reportScrub(c, r)
	}
	runs, err := cl.Scrubs(c.Context)
	if err != nil {
		return &client.Error{Op: i18n.T("listing scrubs"), Err: err}
	}
	if c.Bool("json") {
		if runs == nil {
			runs = []api.ScrubRun{}
		}
		return printJSON(stdout(c), runs)
	}
	w := table(stdout(c))
	columns(w, "RUN", "STATE", "MODE", "SCOPE", "STARTED", "FILES", "FOUND", "REPAIRED", "UNRECOVERABLE")
	for _, r := range runs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\n", r.ID, r.State, scrubMode(&r), scrubScope(&r),
			r.StartedAt.UTC().Format(time.RFC3339), r.Summary.FilesDone, r.Summary.Files, r.Summary.Found, r.Summary.Repaired, r.Summary.Unrecoverable)
	}
	return w.Flush()
}

func runScrubCancel(c *cli.Context) error {
	if err := needArgs(c, 1, "the RUN to cancel"); err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	id := c.Args().First()
	r, err := cl.CancelScrub(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("cancelling scrub %s", id), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), r)
	}
	i18n.Fprintf(stdout(c), "Scrub %s is %s (%d of %s checked).\n", r.ID, r.State, r.Summary.FilesDone, plural(r.Summary.Files, "file", "files"))
	return nil
}

func scrubMode(r *api.ScrubRun) string {
	m := i18n.T("light scrub")
	if r.Deep {
		m = i18n.T("deep scrub")
	}
	if r.Repair {
		m += i18n.T(" with repair")
	}
	return m
}

func scrubScope(r *api.ScrubRun) string {
	switch {
	case r.File != "":
		return r.Dataset + "/" + r.File
	case r.Dataset != "":
		return r.Dataset
	}
	return i18n.T("all")
}

// maxFindingLines bounds the findings printed for people; --json has all.
const maxFindingLines = 40

// reportScrub prints a run (summary, findings) and turns an unrecoverable
// or failed run into the exit status.
func reportScrub(c *cli.Context, r *api.ScrubRun) error {
	if c.Bool("json") {
		if err := printJSON(stdout(c), r); err != nil {
			return err
		}
	} else {
		printScrub(stdout(c), r)
	}
	sm := r.Summary
	switch {
	case sm.Unrecoverable > 0:
		return &exitError{code: exitUnrecoverable, err: &client.Error{Op: i18n.Sprintf("scrub %s", r.ID),
			Err: i18n.Errorf("%s lost more pieces than parity covers; %s marked damaged",
				plural(sm.Unrecoverable, "segment", "segments"), plural(sm.DamagedFiles, "file", "files")),
			Hint: i18n.T("restore those files from another copy and upload them again")}}
	case r.State == api.ScrubFailed:
		return &client.Error{Op: i18n.Sprintf("scrub %s", r.ID), Err: i18n.Errorf("failed: %s", r.Error), Hint: i18n.T("see dozod's log; start a new scrub when fixed")}
	}
	return nil
}

func printScrub(w io.Writer, r *api.ScrubRun) {
	sm := r.Summary
	i18n.Fprintf(w, "Scrub %s: %s, %s of %s\n", r.ID, r.State, scrubMode(r), scrubScope(r))
	t := table(w)
	i18n.Fprintf(t, "  files\t%d of %d checked\n", sm.FilesDone, sm.Files)
	what := i18n.T("size-checked")
	if r.Deep {
		what = i18n.T("read and hashed")
	}
	i18n.Fprintf(t, "  segments\t%d\n", sm.Segments)
	i18n.Fprintf(t, "  pieces\t%d, %s %s\n", sm.Pieces, units.FormatSize(sm.Bytes), what)
	i18n.Fprintf(t, "  found\t%s (missing %d, wrong size %d, bad hash %d, unreachable %d)\n", plural(sm.Found, "bad piece", "bad pieces"), sm.Missing, sm.Size, sm.Hash, sm.Unreachable)
	if r.Repair {
		i18n.Fprintf(t, "  repaired\t%d\n", sm.Repaired)
		if sm.Deferred > 0 {
			i18n.Fprintf(t, "  not repaired now\t%d (see findings)\n", sm.Deferred)
		}
	}
	i18n.Fprintf(t, "  unrecoverable\t%s, %s marked damaged\n", plural(sm.Unrecoverable, "segment", "segments"), plural(sm.DamagedFiles, "file", "files"))
	if sm.Seconds > 0 {
		i18n.Fprintf(t, "  throughput\t%s/s over %s\n", units.FormatSize(int64(sm.BytesPerSec)), (time.Duration(sm.Seconds * float64(time.Second))).Round(time.Millisecond))
	}
	if sm.FileErrors > 0 {
		i18n.Fprintf(t, "  not checked\t%s (see below)\n", plural(sm.FileErrors, "file", "files"))
	}
	t.Flush()
	printScrubShards(w, r.Shards)
	for _, u := range r.Unrecoverable {
		i18n.Fprintf(w, "UNRECOVERABLE %s/%s (%s) segment %d: %s %s lost\n", u.Dataset, u.File, u.FileID, u.Segment,
			pluralWord(len(u.Pieces), "piece", "pieces"), joinInts(u.Pieces))
	}
	for _, e := range r.Errors {
		i18n.Fprintf(w, "NOT CHECKED %s\n", e)
	}
	if len(r.Findings) > 0 {
		t := table(w)
		columns(t, "FILE", "SEGMENT", "PIECE", "TARGET", "KIND", "ACTION")
		for i, f := range r.Findings {
			if i == maxFindingLines {
				break
			}
			action := f.Action
			if f.MovedTo != "" {
				action += " -> " + f.MovedTo
			}
			fmt.Fprintf(t, "%s/%s\t%d\t%d\t%s\t%s\t%s\n", f.Dataset, f.File, f.Segment, f.Piece, f.Target, f.Kind, action)
		}
		t.Flush()
		if n := len(r.Findings); n > maxFindingLines || r.FindingsTruncated {
			i18n.Fprintf(w, "(%d more findings; see --json)\n", sm.Found-maxFindingLines)
		}
	}
	if r.State == api.ScrubRunning {
		i18n.Fprintf(w, "Still running%s.\n", strings.TrimSuffix(" at "+r.Current, " at "))
	}
}

// printScrubShards lists the shards of a run cut into shards: each a job
// any dozod takes, with the dozod that runs or ran it.
func printScrubShards(w io.Writer, shards []api.ScrubShard) {
	if len(shards) == 0 {
		return
	}
	i18n.Fprintf(w, "Checked in %d shards, each a job any dozod takes:\n", len(shards))
	t := table(w)
	columns(t, "SHARD", "JOB", "STATE", "FILES", "DOZOD", "ATTEMPTS")
	for _, sh := range shards {
		state := "-"
		if sh.State != "" {
			state = stateWord(sh.State)
		}
		fmt.Fprintf(t, "%d/%d\t%s\t%s\t%d/%d\t%s\t%d\n", sh.Shard, sh.Of, orDashJob(sh.Job), state, sh.FilesDone, sh.Files, orDashJob(sh.Owner), sh.Attempts)
	}
	t.Flush()
	for _, sh := range shards {
		if sh.Error != "" {
			i18n.Fprintf(w, "shard %d: %s\n", sh.Shard, sh.Error)
		}
	}
}

// exitError carries a distinct exit status through main's error path.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }
