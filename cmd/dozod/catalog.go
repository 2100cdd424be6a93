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

	"github.com/dozo-vault/dozo/broker"
	"github.com/dozo-vault/dozo/catalog"
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
		}},
	}
}

func catalogRebuild(c *cli.Context) error {
	syscall.Umask(0o077)
	cfg, err := broker.LoadConfig(c.String("config"), os.Getenv)
	if err != nil {
		return err
	}
	if err := broker.ValidateDatasetID(c.String("dataset")); err != nil {
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
	rep, err := broker.Rebuild(ctx, broker.RebuildOptions{
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
func skippedExit(rep *broker.RebuildReport) error {
	if len(rep.Skipped) == 0 {
		return nil
	}
	return cli.Exit(fmt.Sprintf("dozod: %d file(s) on storage could not be verified and were skipped (see the report)", len(rep.Skipped)), 3)
}
