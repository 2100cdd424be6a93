package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ddbj/kura/api"
	"github.com/ddbj/kura/client"
	"github.com/ddbj/kura/crypto"
	"github.com/ddbj/kura/storage"
)

func datasetCommand() *cli.Command {
	return &cli.Command{
		Name:  "dataset",
		Usage: "create, list and show datasets",
		Description: "A dataset groups files under one Vault key, one erasure code and one set of\n" +
			"grants (e.g. one JGA dataset).\n\n" +
			"EXAMPLES:\n" +
			"   kura dataset create JGAD000001 --title 'WGS of 100 samples'\n" +
			"   kura dataset list\n" +
			"   kura dataset show JGAD000001",
		Subcommands: append([]*cli.Command{
			{
				Name:      "create",
				Usage:     "create a dataset (you become its custodian)",
				ArgsUsage: "ID",
				Description: "ID uses A-Z a-z 0-9 . _ - (e.g. a JGA accession). --rs K+M stores each\n" +
					"segment as K data and M parity pieces on distinct storage targets: any M\n" +
					"may be lost. --segment-size is the plaintext per segment, a multiple of\n" +
					"64KiB; larger segments mean fewer, larger objects.\n\n" +
					"EXAMPLES:\n" +
					"   kura dataset create JGAD000001 --title 'WGS of 100 samples'\n" +
					"   kura dataset create JGAD000002 --title 'RNA-seq' --rs 6+3 --segment-size 128MiB",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "title", Usage: "human-readable `TITLE`", Required: true},
					&cli.StringFlag{Name: "rs", Value: "4+2", Usage: "erasure code `K+M`"},
					&cli.StringFlag{Name: "segment-size", Value: "32MiB", Usage: "plaintext `SIZE` per segment, e.g. 32MiB, 1GiB, 65536"},
					jsonFlag,
				},
				Action: runDatasetCreate,
			},
			{
				Name:  "list",
				Usage: "list the datasets you may see",
				Description: "EXAMPLES:\n" +
					"   kura dataset list\n" +
					"   kura dataset list --json | jq -r '.[].id'",
				Flags:  []cli.Flag{jsonFlag},
				Action: runDatasetList,
			},
			{
				Name:      "show",
				Usage:     "show one dataset",
				ArgsUsage: "ID",
				Description: "EXAMPLES:\n" +
					"   kura dataset show JGAD000001",
				Flags:  []cli.Flag{jsonFlag},
				Action: runDatasetShow,
			},
		}, datasetLifecycleCommands()...), // lifecycle.go
	}
}

// ParseDatasetLayout checks --rs and --segment-size before kurad sees them.
func parseDatasetLayout(rs, seg string) (k, m int, plain int64, err error) {
	if k, m, err = storage.ParseRS(rs); err != nil {
		return 0, 0, 0, fmt.Errorf("bad --rs %q: want K+M, e.g. 4+2", rs)
	}
	if plain, err = client.ParseSize(seg); err != nil {
		return 0, 0, 0, fmt.Errorf("bad --segment-size: %w", err)
	}
	if plain <= 0 || plain%crypto.ChunkSize != 0 {
		return 0, 0, 0, fmt.Errorf("bad --segment-size %q: must be a positive multiple of 64KiB", seg)
	}
	if _, err := crypto.StoredSegmentSize(plain); err != nil {
		return 0, 0, 0, err
	}
	stored, _ := crypto.StoredSegmentSize(plain)
	if err := (storage.Layout{K: k, M: m, SegmentSize: stored}).Validate(); err != nil {
		// Only the multiple-of-K rule can fail here; say so plainly.
		return 0, 0, 0, fmt.Errorf("--segment-size %s does not suit --rs %s (stored segments of %d bytes must split into %d equal pieces); try a power-of-two size", seg, rs, stored, k)
	}
	return k, m, plain, nil
}

func runDatasetCreate(c *cli.Context) error {
	if err := needArgs(c, 1, "the dataset ID"); err != nil {
		return err
	}
	id := c.Args().First()
	if err := client.ValidateDatasetID(id); err != nil {
		return badArg(c, err)
	}
	k, m, plain, err := parseDatasetLayout(c.String("rs"), c.String("segment-size"))
	if err != nil {
		return badArg(c, err)
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	ds, err := cl.CreateDataset(c.Context, api.CreateDatasetRequest{ID: id, Title: c.String("title"), K: k, M: m, PlainSegmentSize: plain})
	if err != nil {
		return &client.Error{Op: "creating dataset " + id, Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), ds)
	}
	fmt.Fprintf(stdout(c), "Created dataset %s (%d+%d, %s segments).\n", ds.ID, ds.K, ds.M, client.FormatSize(ds.PlainSegmentSize))
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
		return &client.Error{Op: "listing datasets", Err: err}
	}
	if c.Bool("json") {
		if ds == nil {
			ds = []api.Dataset{}
		}
		return printJSON(stdout(c), ds)
	}
	w := table(stdout(c))
	fmt.Fprintln(w, "ID\tFILES\tSIZE\tCODE\tACCESS\tTITLE")
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d+%d\t%s\t%s\n", d.ID, d.Files, client.FormatSize(d.Bytes), d.K, d.M, joinOr(d.Access, "-"), d.Title)
	}
	return w.Flush()
}

func runDatasetShow(c *cli.Context) error {
	if err := needArgs(c, 1, "the dataset ID"); err != nil {
		return err
	}
	id := c.Args().First()
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	d, err := cl.Dataset(c.Context, id)
	if err != nil {
		return &client.Error{Op: "showing dataset " + id, Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), d)
	}
	w := table(stdout(c))
	fmt.Fprintf(w, "id\t%s\n", d.ID)
	fmt.Fprintf(w, "title\t%s\n", d.Title)
	fmt.Fprintf(w, "erasure code\t%d+%d (any %d of %d pieces may be lost)\n", d.K, d.M, d.M, d.K+d.M)
	fmt.Fprintf(w, "segment size\t%s plaintext\n", client.FormatSize(d.PlainSegmentSize))
	fmt.Fprintf(w, "files\t%d (%s)\n", d.Files, client.FormatSize(d.Bytes))
	fmt.Fprintf(w, "created\t%s by %s\n", d.CreatedAt.UTC().Format(time.RFC3339), d.CreatedBy)
	fmt.Fprintf(w, "your access\t%s\n", joinOr(d.Access, "-"))
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
			"   kura ls JGAD000001\n" +
			"   kura ls JGAD000001 --json | jq -r '.[] | \"\\(.md5)  \\(.name)\"' > md5sums.txt",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "md5", Usage: "show MD5 instead of SHA-256 (JGA download lists use MD5)"},
			jsonFlag,
		},
		Action: runLs,
	}
}

func runLs(c *cli.Context) error {
	if err := needArgs(c, 1, "the dataset ID"); err != nil {
		return err
	}
	id := c.Args().First()
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	fs, err := cl.ListFiles(c.Context, id)
	if err != nil {
		return &client.Error{Op: "listing files of " + id, Err: err}
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
	fmt.Fprintf(w, "NAME\tSIZE\tBYTES\tSTATE\t%s\tCREATED\n", sum)
	for _, f := range fs {
		s := f.SHA256
		if c.Bool("md5") {
			s = f.MD5
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", f.Name, client.FormatSize(f.Size), f.Size, f.State, orNone(s), f.CreatedAt.UTC().Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

func grantCommand() *cli.Command {
	return &cli.Command{
		Name:      "grant",
		Usage:     "let a user fetch a dataset's files until a date",
		ArgsUsage: "DATASET USER",
		Description: "The grant ends at the end of --until (UTC); kurad checks it at every fetch,\n" +
			"so an expired or revoked grant stops access immediately. Granting never\n" +
			"re-encrypts data: each fetch wraps the file key for the grantee's own key.\n\n" +
			"EXAMPLES:\n" +
			"   kura grant JGAD000001 bob --until 2026-12-31\n" +
			"   kura grant JGAD000001 bob --until $(date -u -d '+30 days' +%F)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "until", Usage: "last day of access, `YYYY-MM-DD` (UTC)", Required: true},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "DATASET USER"); err != nil {
				return err
			}
			ds, user := c.Args().Get(0), c.Args().Get(1)
			until, err := client.ParseDate(c.String("until"))
			if err != nil {
				return badArg(c, err)
			}
			if until.Before(time.Now().UTC().Truncate(24 * time.Hour)) {
				return badArg(c, fmt.Errorf("--until %s is in the past", c.String("until")))
			}
			cl, _, err := newClient(c)
			if err != nil {
				return err
			}
			g, err := cl.Grant(c.Context, ds, user, until.Format(time.DateOnly))
			if err != nil {
				return &client.Error{Op: "granting " + user + " access to " + ds, Err: err}
			}
			if c.Bool("json") {
				return printJSON(stdout(c), g)
			}
			fmt.Fprintf(stdout(c), "Granted %s access to %s until %s.\n", g.User, g.Dataset, g.Until.UTC().Format(time.DateOnly))
			return nil
		},
	}
}

func revokeCommand() *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "end a user's access to a dataset now",
		ArgsUsage: "DATASET USER",
		Description: "Takes effect at once: the next fetch is refused. (Copies already fetched\n" +
			"are the user's responsibility under their data-use agreement.)\n\n" +
			"EXAMPLES:\n" +
			"   kura revoke JGAD000001 bob",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "DATASET USER"); err != nil {
				return err
			}
			ds, user := c.Args().Get(0), c.Args().Get(1)
			cl, _, err := newClient(c)
			if err != nil {
				return err
			}
			g, err := cl.Revoke(c.Context, ds, user)
			if err != nil {
				return &client.Error{Op: "revoking " + user + "'s access to " + ds, Err: err}
			}
			if c.Bool("json") {
				return printJSON(stdout(c), g)
			}
			fmt.Fprintf(stdout(c), "Revoked %s's access to %s.\n", g.User, g.Dataset)
			return nil
		},
	}
}

func grantsCommand() *cli.Command {
	return &cli.Command{
		Name:      "grants",
		Usage:     "list a dataset's grants, active and past",
		ArgsUsage: "DATASET",
		Description: "EXAMPLES:\n" +
			"   kura grants JGAD000001\n" +
			"   kura grants JGAD000001 --json | jq -r '.[] | select(.active) | .user'",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "the dataset ID"); err != nil {
				return err
			}
			ds := c.Args().First()
			cl, _, err := newClient(c)
			if err != nil {
				return err
			}
			gs, err := cl.Grants(c.Context, ds)
			if err != nil {
				return &client.Error{Op: "listing grants of " + ds, Err: err}
			}
			if c.Bool("json") {
				if gs == nil {
					gs = []api.Grant{}
				}
				return printJSON(stdout(c), gs)
			}
			w := table(stdout(c))
			fmt.Fprintln(w, "USER\tUNTIL\tSTATE\tGRANTED BY\tGRANTED AT")
			for _, g := range gs {
				state := "active"
				switch {
				case g.RevokedAt != nil:
					state = "revoked " + g.RevokedAt.UTC().Format(time.DateOnly) + " by " + g.RevokedBy
				case !g.Active:
					state = "expired"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", g.User, g.Until.UTC().Format(time.DateOnly), state, g.GrantedBy, g.GrantedAt.UTC().Format("2006-01-02 15:04"))
			}
			return w.Flush()
		},
	}
}
