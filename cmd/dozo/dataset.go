package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/storage"
)

func datasetCommand() *cli.Command {
	return &cli.Command{
		Name:  "dataset",
		Usage: "create, list and show datasets; members, key rotation, deletion",
		Description: "A dataset groups files under one Vault key, one erasure code and one set of\n" +
			"grants (e.g. one JGA dataset).\n\n" +
			"EXAMPLES:\n" +
			"   dozo dataset create JGAD000001 --title 'WGS of 100 samples'\n" +
			"   dozo dataset list\n" +
			"   dozo dataset show JGAD000001\n" +
			"   dozo dataset member add JGAD000001 carol --role custodian\n" +
			"   dozo dataset rotate-key JGAD000001\n" +
			"   dozo dataset delete JGAD000001 --confirm JGAD000001\n" +
			"   dozo dataset undelete JGAD000001",
		Subcommands: append([]*cli.Command{
			{
				Name:      "create",
				Usage:     "create a dataset (you become its custodian)",
				ArgsUsage: "ID",
				Description: "ID uses A-Z a-z 0-9 . _ - (e.g. a JGA accession). --rs K+M stores each\n" +
					"segment as K data and M parity pieces on distinct storage targets, at most\n" +
					"M of them in one failure domain (server), so any M targets or one whole\n" +
					"domain may be lost; dozod refuses a code its targets cannot hold (the local\n" +
					"stack's 6 targets on 3 servers take 4+2, 3+3 or 2+1).\n\n" +
					"--segment-size is the plaintext per segment: a multiple of 64KiB from 1MiB\n" +
					"to 1023.75MiB (1GiB once encrypted) whose encrypted size splits into K equal\n" +
					"pieces (any such size for K = 1, 2, 4, 8 or 16; a multiple of 192KiB for\n" +
					"K = 3 or 6). Larger segments mean fewer, larger objects.\n\n" +
					"NBDC metadata: --access-level (unrestricted, registered, controlled-type1\n" +
					"(default), controlled-type2); --jgad, the NBDC dataset id (default: ID when\n" +
					"it is a JGAD id); --jgap, the policy id; --max-use-days, the most days any\n" +
					"grant may last, counting its first and last day (default 365; a grant never\n" +
					"lasts more than one year). Every level needs a grant to read; controlled\n" +
					"levels also need an application id per grant.\n\n" +
					"EXAMPLES:\n" +
					"   dozo dataset create JGAD000001 --title 'WGS of 100 samples' --jgap JGAP000001\n" +
					"   dozo dataset create wgs-2026 --title 'WGS' --jgad JGAD000002 --access-level controlled-type2 --max-use-days 180\n" +
					"   dozo dataset create JGAD000003 --title 'RNA-seq' --rs 2+1 --segment-size 128MiB",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "title", Usage: "human-readable `TITLE`", Required: true},
					&cli.StringFlag{Name: "rs", Value: "4+2", Usage: "erasure code `K+M`"},
					&cli.StringFlag{Name: "segment-size", Value: "32MiB", Usage: "plaintext `SIZE` per segment, 1MiB to 1023.75MiB in steps of 64KiB, e.g. 32MiB, 512MiB, 1048576"},
					&cli.StringFlag{Name: "access-level", Value: api.AccessControlled1, Usage: "NBDC access `LEVEL`: unrestricted, registered, controlled-type1, controlled-type2"},
					&cli.StringFlag{Name: "jgad", Usage: "NBDC dataset `ID` (JGAD + 6 digits); default ID when it has that form"},
					&cli.StringFlag{Name: "jgap", Usage: "NBDC policy `ID` (JGAP + 6 digits)"},
					&cli.IntFlag{Name: "max-use-days", Value: api.DefaultMaxUseDays, Usage: "maximum use period of any grant, in `DAYS` counting its first and last day (1..366; a grant never lasts more than a year)"},
					jsonFlag,
				},
				Action: runDatasetCreate,
			},
			{
				Name:  "list",
				Usage: "list the datasets you may see",
				Description: "EXAMPLES:\n" +
					"   dozo dataset list\n" +
					"   dozo dataset list --json | jq -r '.[].id'",
				Flags:  []cli.Flag{jsonFlag},
				Action: runDatasetList,
			},
			{
				Name:      "show",
				Usage:     "show one dataset",
				ArgsUsage: "ID",
				Description: "EXAMPLES:\n" +
					"   dozo dataset show JGAD000001",
				Flags:  []cli.Flag{jsonFlag},
				Action: runDatasetShow,
			},
			membersCommand(),
			memberCommand(),
		}, datasetLifecycleCommands()...), // lifecycle.go
	}
}

// parseDatasetLayout checks --rs and --segment-size before dozod sees
// them, by dozod's own rule (api.ValidateSegmentSize).
func parseDatasetLayout(rs, seg string) (k, m int, plain int64, err error) {
	if k, m, err = storage.ParseRS(rs); err != nil {
		return 0, 0, 0, i18n.Errorf("bad --rs %q: want K+M, e.g. 4+2", rs)
	}
	if plain, err = units.ParseSize(seg); err != nil {
		return 0, 0, 0, i18n.Errorf("bad --segment-size: %w", err)
	}
	if err := api.ValidateSegmentSize(plain, k); err != nil {
		return 0, 0, 0, i18n.Errorf("bad --segment-size %s for --rs %s: %w", seg, rs, err)
	}
	return k, m, plain, nil
}

func runDatasetCreate(c *cli.Context) error {
	id, err := datasetIDArg(c)
	if err != nil {
		return err
	}
	k, m, plain, err := parseDatasetLayout(c.String("rs"), c.String("segment-size"))
	if err != nil {
		return badArg(c, err)
	}
	req := api.CreateDatasetRequest{ID: id, Title: c.String("title"), K: k, M: m, PlainSegmentSize: plain,
		AccessLevel: c.String("access-level"), NBDCID: c.String("jgad"), PolicyID: c.String("jgap"), MaxUseDays: c.Int("max-use-days")}
	if err := checkNBDC(&req); err != nil {
		return badArg(c, err)
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	ds, err := cl.CreateDataset(c.Context, req)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("creating dataset %s", id), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), ds)
	}
	i18n.Fprintf(stdout(c), "Created dataset %s (%d+%d, %s segments; %s, grants of at most %d days).\n",
		ds.ID, ds.K, ds.M, units.FormatSize(ds.PlainSegmentSize), ds.AccessLevel, ds.MaxUseDays)
	return nil
}

func runDatasetList(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	ds, err := cl.ListDatasets(c.Context)
	if err != nil {
		return &client.Error{Op: i18n.T("listing datasets"), Err: err}
	}
	if c.Bool("json") {
		if ds == nil {
			ds = []api.Dataset{}
		}
		return printJSON(stdout(c), ds)
	}
	w := table(stdout(c))
	columns(w, "ID", "FILES", "SIZE", "CODE", "LEVEL", "JGAD", "JGAP", "ACCESS", "TITLE")
	for _, d := range ds {
		access := joinOr(d.Access, "-")
		if d.Frozen {
			access += i18n.T(" (FROZEN)")
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d+%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Files, units.FormatSize(d.Bytes), d.K, d.M,
			d.AccessLevel, orNone(d.NBDCID), orNone(d.PolicyID), access, d.Title)
	}
	return w.Flush()
}

func runDatasetShow(c *cli.Context) error {
	id, cl, err := datasetClient(c)
	if err != nil {
		return err
	}
	d, err := cl.Dataset(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("showing dataset %s", id), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), d)
	}
	w := table(stdout(c))
	i18n.Fprintf(w, "id\t%s\n", d.ID)
	i18n.Fprintf(w, "title\t%s\n", d.Title)
	i18n.Fprintf(w, "access level\t%s\n", d.AccessLevel)
	i18n.Fprintf(w, "NBDC dataset id\t%s\n", orNone(d.NBDCID))
	i18n.Fprintf(w, "NBDC policy id\t%s\n", orNone(d.PolicyID))
	i18n.Fprintf(w, "max use period\t%d days per grant\n", d.MaxUseDays)
	if d.Frozen {
		i18n.Fprintf(w, "FROZEN\tby an administrator: no reads, uploads or new grants\n")
	}
	i18n.Fprintf(w, "erasure code\t%d+%d (any %d of %d pieces may be lost)\n", d.K, d.M, d.M, d.K+d.M)
	i18n.Fprintf(w, "segment size\t%s plaintext\n", units.FormatSize(d.PlainSegmentSize))
	i18n.Fprintf(w, "files\t%d (%s)\n", d.Files, units.FormatSize(d.Bytes))
	i18n.Fprintf(w, "created\t%s by %s\n", d.CreatedAt.UTC().Format(time.RFC3339), d.CreatedBy)
	i18n.Fprintf(w, "your access\t%s\n", joinOr(d.Access, "-"))
	// dozo keeps user names only, no e-mail or phone: say so, so nobody
	// looks for contact details that are not there.
	i18n.Fprintf(w, "custodians\t%s (Vault user names; dozo keeps no contact details: ask your centre)\n", joinOr(d.Custodians, "-"))
	return w.Flush()
}

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list a dataset's files with sizes, checksums and state",
		ArgsUsage: "DATASET",
		Description: "States: available (complete, fetchable), uploading (not yet complete, never\n" +
			"fetchable), damaged (a scrub found more lost pieces than parity covers).\n\n" +
			"EXAMPLES:\n" +
			"   dozo ls JGAD000001\n" +
			"   dozo ls JGAD000001 --json | jq -r '.[] | \"\\(.md5)  \\(.name)\"' > md5sums.txt",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "md5", Usage: "show MD5 instead of SHA-256 (JGA download lists use MD5)"},
			&cli.BoolFlag{Name: "wide", Usage: "whole checksums (cut to 12 digits otherwise; dozo checksums lists them whole)"},
			jsonFlag,
		},
		Action: runLs,
	}
}

func runLs(c *cli.Context) error {
	id, cl, err := datasetClient(c)
	if err != nil {
		return err
	}
	fs, err := cl.ListFiles(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("listing files of %s", id), Err: err}
	}
	if c.Bool("json") {
		if fs == nil {
			fs = []api.File{}
		}
		return printJSON(stdout(c), fs)
	}
	w := table(stdout(c))
	sum := "SHA256"
	if c.Bool("md5") {
		sum = "MD5"
	}
	columns(w, "NAME", "SIZE", "BYTES", "STATE", sum, "CREATED")
	for _, f := range fs {
		s := f.SHA256
		if c.Bool("md5") {
			s = f.MD5
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", f.Name, units.FormatSize(f.Size), f.Size, stateWord(f.State), orNone(shortHash(s, c.Bool("wide"))), f.CreatedAt.UTC().Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

// checkNBDC checks dataset create's NBDC flags before dozod sees them.
func checkNBDC(req *api.CreateDatasetRequest) error {
	if err := api.ValidateAccessLevel(req.AccessLevel); err != nil {
		return i18n.Errorf("bad --access-level: %w", err)
	}
	if req.NBDCID != "" {
		if err := api.ValidateJGAD(req.NBDCID); err != nil {
			return i18n.Errorf("bad --jgad: %w", err)
		}
	}
	if req.PolicyID != "" {
		if err := api.ValidateJGAP(req.PolicyID); err != nil {
			return i18n.Errorf("bad --jgap: %w", err)
		}
	}
	if err := api.ValidateMaxUseDays(req.MaxUseDays); err != nil {
		return i18n.Errorf("bad --max-use-days: %w", err)
	}
	return nil
}

// today is the current UTC day, against which dates on the command line
// are checked (a variable so tests can pin it).
var today = func() time.Time { return time.Now().UTC().Truncate(24 * time.Hour) }

func grantCommand() *cli.Command {
	return &cli.Command{
		Name:      "grant",
		Usage:     "record a user's use period for a dataset (the NBDC user register)",
		ArgsUsage: "DATASET USER",
		Description: "The grant runs from --from (default today) to the end of --until (UTC), both\n" +
			"days included: --from 2027-01-04 --until 2027-02-02 is 30 days. It may last\n" +
			"at most the dataset's maximum use period (--max-use-days of 'dozo dataset\n" +
			"create', default 365) and never more than one year: --until is at latest\n" +
			"the day before the first anniversary of --from (365 days, 366 when the\n" +
			"period holds a 29 February). dozod checks the grant at every request: an\n" +
			"expired or revoked grant stops access at once, and one starting later is\n" +
			"not active yet. --application (the NBDC data-use application id, J-DU + 6\n" +
			"digits) is required on controlled-access datasets; --institution is always\n" +
			"required (a new institution needs a new grant). Granting a user who already\n" +
			"holds a grant either replaces it at once (a new period from today: omit\n" +
			"--from) or books the next period ahead: --from on or after the day after the\n" +
			"running grant's last day. The running grant then stays until its end and the\n" +
			"booked one, shown as scheduled in `dozo grants`, starts on its first day with\n" +
			"no action (a grant may not overlap a running one). Old rows stay in `dozo\n" +
			"grants --history`. Grantees are warned during the last 30 days of a grant\n" +
			"nothing follows (`dozo grants --expiring 30d` lists them). Granting never\n" +
			"re-encrypts data: each fetch wraps the file key for the grantee's own key.\n\n" +
			"EXAMPLES:\n" +
			"   dozo grant JGAD000001 bob --until 2027-06-30 --application J-DU000123 --institution 'Univ. of Tokyo'\n" +
			"   dozo grant JGAD000001 bob --until 2027-09-30 --application J-DU000123 \\\n" +
			"        --institution 'Univ. of Tokyo' --reason 'extension approved'   # from today\n" +
			"   dozo grant JGAD000001 bob --from 2027-10-01 --until 2028-03-31 --application J-DU000123 \\\n" +
			"        --institution 'Univ. of Tokyo' --reason 'next fiscal year'   # scheduled: starts when the current one ends\n" +
			"   dozo grant JGAD000001 carol --from 2027-01-04 --until 2027-03-31 --application J-DU000124 \\\n" +
			"        --institution 'Kyoto Univ.'   # a user without a current grant may start later",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "until", Usage: "last day of access, `YYYY-MM-DD` (UTC)", Required: true},
			&cli.StringFlag{Name: "from", Usage: "first day of access, `YYYY-MM-DD` (UTC); default today"},
			&cli.StringFlag{Name: "application", Usage: "NBDC data-use application `ID` (J-DU + 6 digits)"},
			&cli.StringFlag{Name: "institution", Usage: "the user's `INSTITUTION` as approved (required)"},
			&cli.StringFlag{Name: "reason", Usage: "why, for the register (`TEXT`)"},
			allowUnknownFlag, // access.go
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "DATASET USER"); err != nil {
				return err
			}
			ds, user := c.Args().Get(0), c.Args().Get(1)
			until, err := parseDate(c.String("until"))
			if err != nil {
				return badArg(c, err)
			}
			if until.Before(today()) {
				return badArg(c, i18n.Errorf("--until %s is in the past", c.String("until")))
			}
			req := api.GrantRequest{Until: until.Format(time.DateOnly), ApplicationID: c.String("application"),
				Institution: c.String("institution"), Reason: c.String("reason"), AllowUnknown: c.Bool("allow-unknown")}
			if f := c.String("from"); f != "" {
				from, err := parseDate(f)
				if err != nil {
					return badArg(c, i18n.Errorf("--from: %w", err))
				}
				if until.Before(from) {
					return badArg(c, i18n.Errorf("--until %s is before --from %s", req.Until, f))
				}
				req.From = from.Format(time.DateOnly)
			}
			if req.ApplicationID != "" {
				if err := api.ValidateApplicationID(req.ApplicationID); err != nil {
					return badArg(c, i18n.Errorf("bad --application: %w", err))
				}
			}
			if strings.TrimSpace(req.Institution) == "" {
				return badArg(c, i18n.New("--institution is required (the user's institution as approved)"))
			}
			cl, _, err := newClient(c)
			if err != nil {
				return err
			}
			g, err := cl.Grant(c.Context, ds, user, req)
			if err != nil {
				return &client.Error{Op: i18n.Sprintf("granting %s access to %s", user, ds), Err: err}
			}
			if c.Bool("json") {
				return printJSON(stdout(c), g)
			}
			i18n.Fprintf(stdout(c), "Granted %s access to %s from %s until %s (%s).%s\n", g.User, g.Dataset, g.From, g.Until.UTC().Format(time.DateOnly), g.State,
				pendingNote(g.Pending))
			return nil
		},
	}
}

func revokeCommand() *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "end a user's access to a dataset now",
		ArgsUsage: "DATASET USER",
		Description: "Takes effect at once: the next request is refused. The grant row stays in\n" +
			"the register with who revoked it, when and --reason. (Copies already fetched\n" +
			"are the user's responsibility under their data-use agreement.)\n\n" +
			"EXAMPLES:\n" +
			"   dozo revoke JGAD000001 bob --reason 'left the project'",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "reason", Usage: "why, for the register (`TEXT`; required)"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "DATASET USER"); err != nil {
				return err
			}
			ds, user := c.Args().Get(0), c.Args().Get(1)
			if strings.TrimSpace(c.String("reason")) == "" {
				return badArg(c, i18n.New("--reason is required (it goes in the register)"))
			}
			cl, _, err := newClient(c)
			if err != nil {
				return err
			}
			g, err := cl.Revoke(c.Context, ds, user, c.String("reason"))
			if err != nil {
				return &client.Error{Op: i18n.Sprintf("revoking %s's access to %s", user, ds), Err: err}
			}
			if c.Bool("json") {
				return printJSON(stdout(c), g)
			}
			i18n.Fprintf(stdout(c), "Revoked %s's access to %s.\n", g.User, g.Dataset)
			return nil
		},
	}
}

func grantsCommand() *cli.Command {
	return &cli.Command{
		Name:      "grants",
		Usage:     "show the user register: grants of one dataset, or all you may review",
		ArgsUsage: "[DATASET]",
		Description: "Without DATASET: every grant you may review (admins: all; custodians: their\n" +
			"datasets'; everyone: their own). By default the current row per user and\n" +
			"dataset (active, future, expired or revoked); --history adds every earlier\n" +
			"period that an extension superseded. --csv and --json export the register\n" +
			"(one row per period, with application, institution, who granted or revoked\n" +
			"it, when and why). A next period booked ahead shows as scheduled beside the\n" +
			"running one. --expiring lists the running grants that end within a period\n" +
			"and that nothing follows: whom to book the next period for.\n\n" +
			"EXAMPLES:\n" +
			"   dozo grants JGAD000001\n" +
			"   dozo grants --expiring 30d\n" +
			"   dozo grants --history --csv > register.csv\n" +
			"   dozo grants JGAD000001 --json | jq -r '.[] | select(.active) | .user'",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "history", Usage: "include superseded periods (every change)"},
			&cli.StringFlag{Name: "expiring", Usage: "only running grants ending within `DAYS` (e.g. 30d or 30; today is 0) that nothing follows"},
			&cli.BoolFlag{Name: "csv", Usage: "print CSV (for the NBDC register) on standard output"},
			excelFlag,
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return needArgs(c, 1, "at most one DATASET")
			}
			if c.Bool("csv") && c.Bool("json") {
				return badArg(c, i18n.New("--csv and --json: choose one"))
			}
			if err := checkExcel(c); err != nil {
				return err
			}
			ds := c.Args().First()
			days := -1
			if e := c.String("expiring"); e != "" {
				n, err := strconv.Atoi(strings.TrimSuffix(e, "d"))
				if err != nil || n < 0 || n > 366 {
					return badArg(c, i18n.Errorf("--expiring %q: want a number of days 0..366, e.g. 30d", e))
				}
				if c.Bool("history") {
					return badArg(c, i18n.New("--expiring lists running grants; it does not combine with --history"))
				}
				days = n
			}
			cl, _, err := newClient(c)
			if err != nil {
				return err
			}
			var gs []api.Grant
			switch {
			case days >= 0:
				gs, err = cl.ExpiringGrants(c.Context, ds, days)
			case ds == "":
				gs, err = cl.GrantRegister(c.Context, c.Bool("history"))
			default:
				gs, err = cl.Grants(c.Context, ds, c.Bool("history"))
			}
			if err != nil {
				op := i18n.T("listing grants")
				if ds != "" {
					op = i18n.Sprintf("listing grants of %s", ds)
				}
				return &client.Error{Op: op, Err: err}
			}
			if gs == nil {
				gs = []api.Grant{}
			}
			switch {
			case c.Bool("json"):
				return printJSON(stdout(c), gs)
			case c.Bool("csv"):
				w, err := csvOut(c)
				if err != nil {
					return err
				}
				return writeGrantsCSV(w, gs)
			}
			w := table(stdout(c))
			columns(w, "ID", "DATASET", "USER", "FROM", "UNTIL", "STATE", "APPLICATION", "INSTITUTION", "GRANTED BY", "GRANTED AT")
			for _, g := range gs {
				state := stateWord(g.State)
				switch {
				case g.RevokedAt != nil:
					state = i18n.Sprintf("revoked %s by %s", g.RevokedAt.UTC().Format(time.DateOnly), g.RevokedBy)
				case g.SupersededBy != 0:
					state = i18n.Sprintf("superseded by #%d", g.SupersededBy)
				case g.State == api.GrantScheduled:
					state = i18n.Sprintf("scheduled after #%d", g.Follows)
				}
				if g.Pending {
					state += i18n.T(" (pending first login)")
				}
				who := g.User
				if g.LoginName != "" {
					who += i18n.Sprintf(" (now %s)", g.LoginName)
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Dataset, who, g.From, g.Until.UTC().Format(time.DateOnly),
					state, orNone(g.ApplicationID), orNone(g.Institution), g.GrantedBy, g.GrantedAt.UTC().Format("2006-01-02 15:04"))
			}
			return w.Flush()
		},
	}
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:      "members",
		Usage:     "list a dataset's custodians and submitters",
		ArgsUsage: "ID",
		Description: "Custodians grant and revoke access and review the register; submitters\n" +
			"upload. The dataset's creator starts as both. Custodians and admins only.\n\n" +
			"EXAMPLES:\n" +
			"   dozo dataset members JGAD000001",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			ds, cl, err := datasetClient(c)
			if err != nil {
				return err
			}
			ms, err := cl.Members(c.Context, ds)
			if err != nil {
				return &client.Error{Op: i18n.Sprintf("listing members of %s", ds), Err: err}
			}
			if ms == nil {
				ms = []api.Member{}
			}
			if c.Bool("json") {
				return printJSON(stdout(c), ms)
			}
			w := table(stdout(c))
			columns(w, "USER", "ROLE", "ADDED BY", "ADDED AT")
			for _, m := range ms {
				who := m.User
				switch {
				case m.Pending:
					who += i18n.T(" (pending first login)")
				case m.LoginName != "":
					who += i18n.Sprintf(" (now %s)", m.LoginName)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", who, m.Role, m.AddedBy, m.AddedAt.UTC().Format("2006-01-02 15:04"))
			}
			return w.Flush()
		},
	}
}

func memberCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "role", Usage: "`ROLE`: custodian or submitter (required)"},
		jsonFlag,
	}
	return &cli.Command{
		Name:  "member",
		Usage: "give or take a per-dataset role (custodian, submitter)",
		Description: "EXAMPLES:\n" +
			"   dozo dataset member add JGAD000001 carol --role custodian\n" +
			"   dozo dataset member remove JGAD000001 sam --role submitter",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "give USER a role on the dataset",
				ArgsUsage: "ID USER",
				Description: "Refused on a frozen dataset and for a frozen user, and for a name nobody\n" +
					"has logged in to dozo as unless --allow-unknown.\n\n" +
					"EXAMPLES:\n" +
					"   dozo dataset member add JGAD000001 carol --role custodian\n" +
					"   dozo dataset member add JGAD000001 dave --role submitter --allow-unknown",
				Flags:  append([]cli.Flag{allowUnknownFlag}, flags...),
				Action: runMember,
			},
			{
				Name:      "remove",
				Usage:     "take a role on the dataset away from USER",
				ArgsUsage: "ID USER",
				Description: "The last custodian cannot be removed.\n\n" +
					"EXAMPLES:\n" +
					"   dozo dataset member remove JGAD000001 dave --role submitter",
				Flags:  flags,
				Action: runMember,
			},
		},
	}
}

func runMember(c *cli.Context) error {
	if err := needArgs(c, 2, "ID USER"); err != nil {
		return err
	}
	ds, user, role := c.Args().Get(0), c.Args().Get(1), c.String("role")
	if role != api.RoleCustodian && role != api.RoleSubmitter {
		return badArg(c, i18n.Errorf("--role %q: want custodian or submitter", role))
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	m := &api.Member{Dataset: ds, User: user, Role: role}
	if c.Command.Name == "add" {
		m, err = cl.AddMember(c.Context, ds, user, role, c.Bool("allow-unknown"))
	} else {
		err = cl.RemoveMember(c.Context, ds, user, role)
	}
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("%s %s %s on %s", c.Command.Name, role, user, ds), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), m)
	}
	if c.Command.Name == "add" {
		i18n.Fprintf(stdout(c), "%s is now %s of %s.%s\n", m.User, m.Role, m.Dataset, pendingNote(m.Pending))
	} else {
		i18n.Fprintf(stdout(c), "%s is no longer %s of %s.\n", user, role, ds)
	}
	return nil
}
