package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/broker"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/rebuild"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

func catalogCommand() *cli.Command {
	return &cli.Command{
		Name:  "catalog",
		Usage: "catalog maintenance",
		Subcommands: []*cli.Command{{
			Name:  "rebuild",
			Usage: "rebuild a dataset's file catalog from the manifests on storage",
			Description: "Lists the manifests of the dataset on every storage target, verifies each\n" +
				"manifest's MAC with the dataset's Vault Transit key and opens the header\n" +
				"beside it, then recreates the file rows (and the dataset row, if it is\n" +
				"missing) in the catalog. Names, checksums and uploaders come from the sealed\n" +
				"file info stored with each file; files stored before dozo kept it are named\n" +
				"by their file id. Copies that do not verify are skipped and reported; a\n" +
				"Vault outage stops the rebuild. Files already in the catalog are left alone.\n" +
				"Storage does not hold grants, members (other than --owner), users' registered\n" +
				"keys or the audit log: re-grant, and users run 'dozo key register' again.\n\n" +
				"Dry run by default: --apply writes. Stop dozod first (SQLite is\n" +
				"single-writer), and keep a copy of the old catalog file if there is one.\n\n" +
				"EXAMPLES:\n" +
				"   dozod catalog rebuild --config dozod.toml --dataset JGAD000001 --owner sam\n" +
				"   dozod catalog rebuild --config dozod.toml --dataset JGAD000001 --owner sam --apply --json",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Usage: "TOML config `FILE` (as for serve)", EnvVars: []string{"DOZOD_CONFIG"}},
				&cli.StringFlag{Name: "dataset", Usage: "dataset `ID` to rebuild", Required: true},
				&cli.StringFlag{Name: "owner", Usage: "`USER` made custodian and submitter if the dataset row must be recreated"},
				&cli.StringFlag{Name: "title", Usage: "`TITLE` of a recreated dataset row (default: the stored one)"},
				&cli.StringFlag{Name: "transit-key", Usage: "the dataset's Transit key `NAME`", DefaultText: "the catalog's, else dozo-ds-<ID>"},
				&cli.BoolFlag{Name: "apply", Usage: "write the catalog (default: report only)"},
				&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			},
			Action: catalogRebuild,
		}, {
			Name:  "migrate",
			Usage: "apply pending catalog migrations (serve does too, at start)",
			Description: "Opens the catalog named by --catalog, else by the config's catalog setting,\n" +
				"applies every pending migration (each in its own transaction; dozods sharing\n" +
				"a PostgreSQL catalog apply each once) and prints the schema version.\n\n" +
				"EXAMPLES:\n" +
				"   dozod catalog migrate --config dozod.toml\n" +
				"   PGPASSFILE=/etc/dozo/pgpass dozod catalog migrate --catalog postgres://dozo@db.example/dozo",
			Flags:  []cli.Flag{configFlag(), catalogFlag()},
			Action: catalogMigrate,
		}, {
			Name:  "copy",
			Usage: "copy a catalog into an empty one, e.g. a SQLite site's to PostgreSQL",
			Description: "Reads every row of --from in one snapshot and writes it to --to in one\n" +
				"transaction, keeping keys and bytes, then checks the copy: every table has as\n" +
				"many rows as the source and the audit chain verifies and ends in the source's\n" +
				"last hash. --to must be empty (freshly created); both are migrated first. Stop\n" +
				"dozod before copying (changes made meanwhile are not copied), then point its\n" +
				"catalog setting at --to. Give a PostgreSQL password in PGPASSWORD or\n" +
				"~/.pgpass (PGPASSFILE), not in the URL: command lines are visible to others.\n\n" +
				"EXAMPLES:\n" +
				"   dozod catalog copy --from sqlite:///var/lib/dozo/dozo.db --to postgres://dozo@db.example/dozo",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "from", Usage: "source catalog `LOCATION` (sqlite:///path, a path, or postgres://...)", Required: true},
				&cli.StringFlag{Name: "to", Usage: "destination catalog `LOCATION`, empty", Required: true},
				&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			},
			Action: catalogCopy,
		}, {
			Name:  "backup",
			Usage: "write a consistent copy of a SQLite catalog to a new file, while dozod runs",
			Description: "SQLite's VACUUM INTO: one read transaction, so dozod keeps serving; the copy\n" +
				"is a new file of mode 0600 (an existing file is never overwritten). Restore:\n" +
				"stop dozod, move the catalog file and its -wal and -shm files aside, put the\n" +
				"backup in its place, start dozod. A PostgreSQL catalog is backed up with\n" +
				"pg_dump (see README.md).\n\n" +
				"EXAMPLES:\n" +
				"   dozod catalog backup --config dozod.toml --to /backup/dozo-$(date +%F).db",
			Flags: []cli.Flag{configFlag(), catalogFlag(),
				&cli.StringFlag{Name: "to", Usage: "backup `FILE` to create", Required: true},
			},
			Action: catalogBackup,
		}},
	}
}

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Usage: "TOML config `FILE` (as for serve)", EnvVars: []string{"DOZOD_CONFIG"}}
}

func catalogFlag() cli.Flag {
	return &cli.StringFlag{Name: "catalog", Usage: "catalog `LOCATION` (default: the config's catalog setting)"}
}

// catalogLocation is --catalog, else the config's catalog setting.
func catalogLocation(c *cli.Context) (string, error) {
	if c.IsSet("catalog") {
		loc := c.String("catalog")
		_, err := catalog.ParseLocation(loc)
		return loc, err
	}
	cfg, err := broker.LoadConfig(c.String("config"), os.Getenv)
	if err != nil {
		return "", err
	}
	return cfg.Catalog, nil
}

// openExisting opens a catalog that must already exist: Open would create
// a missing SQLite file, and an empty catalog is never what a maintenance
// command means to read.
func openExisting(ctx context.Context, loc string) (*catalog.Catalog, error) {
	l, err := catalog.ParseLocation(loc)
	if err != nil {
		return nil, err
	}
	if l.Backend == catalog.SQLite && l.Path != ":memory:" {
		if _, err := os.Stat(l.Path); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", l.Path, err)
		}
	}
	return catalog.Open(ctx, loc)
}

func catalogMigrate(c *cli.Context) error {
	syscall.Umask(0o077)
	loc, err := catalogLocation(c)
	if err != nil {
		return err
	}
	cat, err := catalog.Open(c.Context, loc)
	if err != nil {
		return err
	}
	defer cat.Close()
	v, err := cat.Version(c.Context)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "catalog %s (%s): schema version %d\n", catalog.Redact(loc), cat.Backend(), v)
	return nil
}

func catalogCopy(c *cli.Context) error {
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	src, err := openExisting(ctx, c.String("from"))
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := catalog.Open(ctx, c.String("to"))
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	rep, err := catalog.Copy(ctx, dst, src)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "copied %s (%s) to %s (%s)\n", catalog.Redact(c.String("from")), src.Backend(), catalog.Redact(c.String("to")), dst.Backend())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range rep.Tables {
		fmt.Fprintf(tw, "  %s\t%d rows\n", t.Table, t.Rows)
	}
	tw.Flush()
	if rep.AuditRecords == 0 {
		fmt.Fprintln(w, "no audit records")
	} else {
		fmt.Fprintf(w, "audit chain verified on the copy: %d records, head %s\n", rep.AuditRecords, rep.AuditHead)
	}
	return nil
}

func catalogBackup(c *cli.Context) error {
	syscall.Umask(0o077)
	loc, err := catalogLocation(c)
	if err != nil {
		return err
	}
	cat, err := openExisting(c.Context, loc)
	if err != nil {
		return err
	}
	defer cat.Close()
	to := c.String("to")
	if err := cat.Backup(c.Context, to); err != nil {
		return err
	}
	fi, err := os.Stat(to)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "backed up %s to %s (%d bytes)\n", catalog.Redact(loc), to, fi.Size())
	return nil
}

func catalogRebuild(c *cli.Context) error {
	syscall.Umask(0o077)
	cfg, err := broker.LoadConfig(c.String("config"), os.Getenv)
	if err != nil {
		return err
	}
	if err := api.ValidateDatasetID(c.String("dataset")); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	vc, err := vault.New(vault.Config{Address: cfg.Vault.Address, Token: cfg.Vault.Token, TransitMount: cfg.Vault.TransitMount, CACert: cfg.Vault.CACert})
	if err != nil {
		return err
	}
	if _, err := vc.LookupSelf(ctx); err != nil {
		return fmt.Errorf("checking dozod's vault token: %w", err)
	}
	// Unlike serve, no bucket is created or checked here: a rebuild only
	// reads, and it works with a failure domain down (the manifests and
	// headers are stored once per domain); unlistable targets are reported.
	var targets []storage.Target
	for _, tc := range cfg.Targets {
		t, err := storage.NewS3Target(storage.S3Config{
			ID: tc.ID, Domain: tc.Domain, Endpoint: tc.Endpoint, Bucket: tc.Bucket, Region: tc.Region,
			AccessKey: tc.AccessKey, SecretKey: tc.SecretKey,
		})
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	cat, err := catalog.Open(ctx, cfg.Catalog)
	if err != nil {
		return err
	}
	defer cat.Close()
	rep, err := rebuild.Run(ctx, rebuild.Options{
		Catalog: cat, Keys: vc, Targets: targets, DatasetID: c.String("dataset"),
		TransitKey: c.String("transit-key"), Owner: c.String("owner"), Title: c.String("title"), Apply: c.Bool("apply"),
	})
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return skippedExit(rep)
	}
	mode := "dry run (nothing written; --apply writes)"
	if rep.Applied {
		mode = "applied"
	}
	fmt.Fprintf(w, "dataset %s: %s; transit key %s; dataset row: %s\n", rep.Dataset, mode, rep.TransitKey, rep.DatasetRow)
	if rep.Layout != "" {
		fmt.Fprintf(w, "layout: %s\n", rep.Layout)
	}
	for id, e := range rep.TargetsMissing {
		fmt.Fprintf(w, "warning: target %s could not be listed: %s\n", id, e)
	}
	fmt.Fprintf(w, "%d manifest(s) on storage, %d file(s), %d skipped\n", rep.Manifests, len(rep.Files), len(rep.Skipped))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range rep.Files {
		note := f.Note
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\n", f.FileID, f.Name, f.Size, f.Action, note)
	}
	tw.Flush()
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", s.FileID, s.Reason)
	}
	return skippedExit(rep)
}

// skippedExit makes a rebuild that left files out exit non-zero, so a
// script notices.
func skippedExit(rep *rebuild.Report) error {
	if len(rep.Skipped) == 0 {
		return nil
	}
	return cli.Exit(fmt.Sprintf("dozod: %d file(s) on storage could not be verified and were skipped (see the report)", len(rep.Skipped)), 3)
}
