package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/internal/i18n"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
)

// jobsPoll is how often dozo jobs show --watch asks dozod for progress.
var jobsPoll = time.Second

func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "jobs",
		Usage: "list dozod's long-running jobs: key rotations, deletions, upload expiry (admins all, custodians their datasets')",
		Description: "Key rotations, dataset deletions and upload expiry run inside dozod as jobs,\n" +
			"recorded in its catalog: state (queued, running, done, failed, cancelled),\n" +
			"progress, the dozod replica running it and until when its lease holds. A job\n" +
			"outlives the command that asked for it, and a job whose dozod stopped is\n" +
			"resumed by the next one. Admins see every job; a custodian sees the jobs of\n" +
			"their datasets.\n\n" +
			"EXAMPLES:\n" +
			"   dozo jobs                                  # recent jobs, newest first\n" +
			"   dozo jobs --dataset JGAD000001 --state running\n" +
			"   dozo jobs show job-1f2e3d4c5b6a7988 --watch\n" +
			"   dozo jobs cancel job-1f2e3d4c5b6a7988",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dataset", Usage: "only the jobs of `DATASET`"},
			&cli.StringFlag{Name: "kind", Usage: "only jobs of `KIND` (rotate-key, delete-dataset, expire-uploads, scrub, scrub-shard)"},
			&cli.StringFlag{Name: "state", Usage: "only jobs in `STATE` (queued, running, done, failed, cancelled)"},
			&cli.IntFlag{Name: "limit", Usage: "at most `N` jobs (default 100)"},
			jsonFlag,
		},
		Action: runJobsList,
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "show one job: state, progress, owner and lease, result or error",
				ArgsUsage: "ID",
				Description: "--watch follows a running job until it ends.\n\n" +
					"EXAMPLES:\n" +
					"   dozo jobs show job-1f2e3d4c5b6a7988\n" +
					"   dozo jobs show job-1f2e3d4c5b6a7988 --json | jq .result",
				Flags:  []cli.Flag{jsonFlag, &cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "follow the job until it ends"}},
				Action: runJobsShow,
			},
			{
				Name:      "cancel",
				Usage:     "stop a job (a queued one at once, a running one at its next step; what it did stays done)",
				ArgsUsage: "ID",
				Description: "Every job is resumable: a cancelled rotation or deletion is finished by\n" +
					"asking for it again (dozo dataset rotate-key, dozo dataset delete).\n" +
					"Cancelling a scrub's job ends the run as cancelled (as dozo scrub cancel).\n\n" +
					"EXAMPLES:\n" +
					"   dozo jobs cancel job-1f2e3d4c5b6a7988",
				Flags:  []cli.Flag{jsonFlag},
				Action: runJobsCancel,
			},
		},
	}
}

func runJobsList(c *cli.Context) error {
	if c.NArg() > 0 {
		return needArgs(c, 0, "no arguments (dozo jobs show ID shows one job)")
	}
	f := client.JobsFilter{Dataset: c.String("dataset"), Kind: c.String("kind"), State: c.String("state"), Limit: c.Int("limit")}
	if f.Dataset != "" {
		if err := api.ValidateDatasetID(f.Dataset); err != nil {
			return badArg(c, err)
		}
	}
	if f.Limit < 0 {
		return badArg(c, i18n.Errorf("--limit must be positive"))
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	js, err := cl.Jobs(c.Context, f)
	if err != nil {
		return &client.Error{Op: i18n.T("listing jobs"), Err: err}
	}
	if c.Bool("json") {
		if js == nil {
			js = []api.Job{}
		}
		return printJSON(stdout(c), js)
	}
	w := table(stdout(c))
	columns(w, "JOB", "KIND", "DATASET", "STATE", "PROGRESS", "BY", "CREATED")
	for i := range js {
		j := &js[i]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, orDashJob(j.Dataset), stateWord(j.State), jobProgress(j), j.RequestedBy,
			j.CreatedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

func runJobsShow(c *cli.Context) error {
	if err := needArgs(c, 1, "the job ID"); err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	id := c.Args().First()
	var j *api.Job
	if c.Bool("watch") {
		last := ""
		j, err = cl.WaitJob(c.Context, id, jobsPoll, func(j *api.Job) {
			if line := j.State + " " + jobProgress(j); line != last && !c.Bool("json") {
				notice(c)("%s: %s", j.ID, line)
				last = line
			}
		})
		if errors.Is(err, context.Canceled) {
			notice(c)("stopped following; job %s continues in dozod", id)
		}
	} else {
		j, err = cl.Job(c.Context, id)
	}
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("reading job %s", id), Err: err}
	}
	return printJob(c, j)
}

func runJobsCancel(c *cli.Context) error {
	if err := needArgs(c, 1, "the job ID to cancel"); err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	id := c.Args().First()
	j, err := cl.CancelJob(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("cancelling job %s", id), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), j)
	}
	if j.State == api.JobCancelled {
		i18n.Fprintf(stdout(c), "Job %s cancelled.\n", j.ID)
	} else {
		i18n.Fprintf(stdout(c), "Job %s: cancel requested; it stops at its next step.\n", j.ID)
	}
	return nil
}

// printJob prints one job for people (or as JSON).
func printJob(c *cli.Context, j *api.Job) error {
	if c.Bool("json") {
		return printJSON(stdout(c), j)
	}
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	w := table(stdout(c))
	i18n.Fprintf(w, "Job\t%s\n", j.ID)
	i18n.Fprintf(w, "Kind\t%s\n", j.Kind)
	i18n.Fprintf(w, "Dataset\t%s\n", orDashJob(j.Dataset))
	i18n.Fprintf(w, "State\t%s\n", stateWord(j.State))
	i18n.Fprintf(w, "Progress\t%s\n", jobProgress(j))
	i18n.Fprintf(w, "Requested by\t%s at %s\n", j.RequestedBy, ts(&j.CreatedAt))
	i18n.Fprintf(w, "Started\t%s (attempt %d)\n", ts(j.StartedAt), j.Attempts)
	if j.Owner != "" {
		i18n.Fprintf(w, "Running on\t%s (lease until %s)\n", j.Owner, ts(j.LeaseUntil))
	}
	i18n.Fprintf(w, "Ended\t%s\n", ts(j.EndedAt))
	if j.CancelRequested {
		i18n.Fprintf(w, "Cancel\trequested\n")
	}
	if j.Error != "" {
		i18n.Fprintf(w, "Error\t%s\n", j.Error)
	}
	if len(j.Result) > 0 {
		i18n.Fprintf(w, "Result\t%s\n", j.Result)
	}
	return w.Flush()
}

// jobProgress is "done/total note", or "-" before any.
func jobProgress(j *api.Job) string {
	p := j.Progress
	var s string
	switch {
	case p.Total > 0:
		s = fmt.Sprintf("%d/%d", p.Done, p.Total)
	case p.Done > 0:
		s = fmt.Sprint(p.Done)
	}
	if p.Note != "" {
		if s != "" {
			s += " "
		}
		s += p.Note
	}
	if s == "" {
		return "-"
	}
	return s
}

func orDashJob(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
