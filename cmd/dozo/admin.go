package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
)

func adminCommand() *cli.Command {
	target := []cli.Flag{
		&cli.StringFlag{Name: "user", Usage: "the user `NAME`"},
		&cli.StringFlag{Name: "dataset", Usage: "the dataset `ID`"},
		&cli.StringFlag{Name: "reason", Usage: "why, for the audit and the freeze record (`TEXT`; required)"},
		jsonFlag,
	}
	return &cli.Command{
		Name:  "admin",
		Usage: "operator commands: incident freezes, storage target health",
		Description: "For dozod's admins (the `admins` list of its config).\n\n" +
			"EXAMPLES:\n" +
			"   dozo admin freeze --user bob --reason 'laptop stolen, incident #12'\n" +
			"   dozo admin frozen\n" +
			"   dozo admin unfreeze --user bob --reason 'incident #12 closed'\n" +
			"   dozo admin targets",
		Subcommands: []*cli.Command{
			{
				Name:  "freeze",
				Usage: "block a user or a dataset at once (NBDC: disconnect on an incident)",
				Description: "A frozen user is refused everything but `dozo whoami`: no fetch, no\n" +
					"listing, no upload, no grant to or by them. A frozen dataset refuses every\n" +
					"file list, fetch, upload and new grant, for everyone (revoking stays\n" +
					"allowed). It takes effect at the next request; refusals say that an\n" +
					"administrator froze access. Every freeze is in the audit log.\n\n" +
					"EXAMPLES:\n" +
					"   dozo admin freeze --user bob --reason 'credentials leaked, incident #12'\n" +
					"   dozo admin freeze --dataset JGAD000001 --reason 'suspected leak, incident #13'\n" +
					"   dozo admin freeze --user newhire --allow-unknown --reason 'before first login'",
				Flags:  append([]cli.Flag{allowUnknownFlag}, target...),
				Action: runFreeze,
			},
			{
				Name:  "unfreeze",
				Usage: "lift a freeze",
				Description: "The freeze stays on record (`dozo admin frozen --all`).\n\n" +
					"EXAMPLES:\n" +
					"   dozo admin unfreeze --user bob --reason 'incident #12 closed, new credentials'\n" +
					"   dozo admin unfreeze --dataset JGAD000001 --reason 'incident #13: no leak'",
				Flags:  target,
				Action: runFreeze,
			},
			{
				Name:  "frozen",
				Usage: "list freezes in force (--all: with lifted ones)",
				Description: "EXAMPLES:\n" +
					"   dozo admin frozen\n" +
					"   dozo admin frozen --all --json",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Usage: "also list lifted freezes"},
					jsonFlag,
				},
				Action: runFrozen,
			},
			{
				Name:  "targets",
				Usage: "show every storage target's health as dozod last probed it",
				Description: "One line per target: up or down, since when, failed probes and the last\n" +
					"error (cut to fit; --wide shows it whole). Exits 1 if any target is down.\n\n" +
					"EXAMPLES:\n" +
					"   dozo admin targets\n" +
					"   dozo admin targets --json | jq -r '.[] | select(.up | not) | .id'",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "wide", Usage: "do not cut the last error to the terminal's width"},
					jsonFlag,
				},
				Action: runTargets,
			},
		},
	}
}

func runTargets(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	ts, err := cl.Targets(c.Context)
	if err != nil {
		return &client.Error{Op: i18n.T("listing storage targets"), Err: err}
	}
	if ts == nil {
		ts = []client.TargetHealth{}
	}
	var down []string
	for _, t := range ts {
		if !t.Up {
			down = append(down, t.ID)
		}
	}
	if c.Bool("json") {
		if err := printJSON(stdout(c), ts); err != nil {
			return err
		}
	} else {
		var b strings.Builder
		w := table(&b)
		columns(w, "TARGET", "DOMAIN", "STATE", "SINCE", "FAILURES", "LAST ERROR")
		for _, t := range ts {
			state := stateWord("up")
			if !t.Up {
				state = stateWord("DOWN")
			}
			since := "-"
			if !t.Since.IsZero() {
				since = t.Since.UTC().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", t.ID, t.Domain, state, since, t.Failures, orNone(oneLine(t.LastError)))
		}
		w.Flush()
		writeFitted(stdout(c), b.String(), c.Bool("wide"))
	}
	if len(down) > 0 {
		return &client.Error{Op: i18n.T("storage targets"), Err: i18n.Errorf("%s down: %s", plural(len(down), "target", "targets"), strings.Join(down, ", ")),
			Hint: i18n.T("data stays readable from parity while few are down; check those servers")}
	}
	return nil
}

// freezeTarget reads exactly one of --user and --dataset.
func freezeTarget(c *cli.Context) (kind, name string, err error) {
	u, d := c.String("user"), c.String("dataset")
	switch {
	case u != "" && d != "":
		return "", "", i18n.New("give --user or --dataset, not both")
	case u != "":
		return api.FreezeUser, u, nil
	case d != "":
		if err := api.ValidateDatasetID(d); err != nil {
			return "", "", err
		}
		return api.FreezeDataset, d, nil
	}
	return "", "", i18n.New("give --user NAME or --dataset ID")
}

func runFreeze(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments (use --user or --dataset)"); err != nil {
		return err
	}
	kind, name, err := freezeTarget(c)
	if err != nil {
		return badArg(c, err)
	}
	reason := c.String("reason")
	if strings.TrimSpace(reason) == "" {
		return badArg(c, i18n.New("--reason is required (it goes in the freeze record)"))
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	lift := c.Command.Name == "unfreeze"
	var f *api.Freeze
	if lift {
		f, err = cl.Unfreeze(c.Context, kind, name, reason)
	} else {
		f, err = cl.Freeze(c.Context, kind, name, reason, c.Bool("allow-unknown"))
	}
	if err != nil {
		return &client.Error{Op: c.Command.Name + " " + kind + " " + name, Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), f)
	}
	if lift {
		i18n.Fprintf(stdout(c), "Unfroze %s %s.\n", f.Kind, f.Name)
	} else {
		i18n.Fprintf(stdout(c), "Froze %s %s: refused from the next request on.%s\n", f.Kind, f.Name, pendingNote(f.Pending))
	}
	return nil
}

func runFrozen(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	fs, err := cl.Freezes(c.Context, c.Bool("all"))
	if err != nil {
		return &client.Error{Op: i18n.T("listing freezes"), Err: err}
	}
	if fs == nil {
		fs = []api.Freeze{}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), fs)
	}
	w := table(stdout(c))
	columns(w, "KIND", "NAME", "SINCE", "BY", "REASON", "LIFTED")
	for _, f := range fs {
		lifted := "-"
		if f.LiftedAt != nil {
			lifted = i18n.Sprintf("%s by %s: %s", f.LiftedAt.UTC().Format("2006-01-02 15:04"), f.LiftedBy, f.LiftReason)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Kind, f.Name, f.FrozenAt.UTC().Format(time.RFC3339), f.FrozenBy, f.Reason, lifted)
	}
	return w.Flush()
}
