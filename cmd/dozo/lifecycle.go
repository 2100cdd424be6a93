package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
)

// datasetLifecycleCommands are `dozo dataset rotate-key`, `delete` and
// `deletion-report`.
func datasetLifecycleCommands() []*cli.Command {
	reportFlag := &cli.StringFlag{Name: "report", Usage: "write the report to `FILE`.json and FILE.txt (default ./ID-deletion-report)"}
	return []*cli.Command{
		{
			Name:      "rotate-key",
			Usage:     "rotate a dataset's Vault key and retire the old versions (custodian, admin)",
			ArgsUsage: "ID",
			Description: "Every stored header is rewrapped under the new key version (the file keys\n" +
				"stay the same, so payload objects are not rewritten), then the old versions\n" +
				"are retired (min_decryption_version): a header copied before the rotation\n" +
				"can no longer be opened. If interrupted, run it again: it resumes.\n\n" +
				"EXAMPLES:\n" +
				"   dozo dataset rotate-key JGAD000001\n" +
				"   dozo dataset rotate-key JGAD000001 --json",
			Flags:  []cli.Flag{jsonFlag},
			Action: runRotateKey,
		},
		{
			Name:      "delete",
			Usage:     "delete a dataset for good: every object everywhere, then its key (custodian, admin)",
			ArgsUsage: "ID",
			Description: "End of use (NBDC): the dataset disappears at once for everyone; then every\n" +
				"object of it is removed from every storage target (every version), and only\n" +
				"then its Vault key is destroyed, so no surviving copy of the ciphertext can\n" +
				"ever be decrypted. --confirm must repeat the dataset id. A deletion report\n" +
				"(JSON and text, for the data-use termination report) is written to\n" +
				"--report. If interrupted, run it again: it resumes.\n\n" +
				"EXAMPLES:\n" +
				"   dozo dataset delete JGAD000001 --confirm JGAD000001\n" +
				"   dozo dataset delete JGAD000001 --confirm JGAD000001 --report JGAD000001-termination",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "confirm", Usage: "the dataset `ID` again, to confirm", Required: true},
				reportFlag,
				jsonFlag,
			},
			Action: runDatasetDelete,
		},
		{
			Name:      "deletion-report",
			Usage:     "fetch the report of a finished deletion again (custodian, admin)",
			ArgsUsage: "ID",
			Description: "EXAMPLES:\n" +
				"   dozo dataset deletion-report JGAD000001\n" +
				"   dozo dataset deletion-report JGAD000001 --json | jq '.objects | length'",
			Flags:  []cli.Flag{reportFlag, jsonFlag},
			Action: runDeletionReport,
		},
	}
}

func runRotateKey(c *cli.Context) error {
	if err := needArgs(c, 1, "the dataset ID"); err != nil {
		return err
	}
	id := c.Args().First()
	if err := client.ValidateDatasetID(id); err != nil {
		return badArg(c, err)
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	r, err := cl.RotateKey(c.Context, id)
	if err != nil {
		return &client.Error{Op: "rotating the key of " + id, Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), r)
	}
	resumed := ""
	if r.Resumed {
		resumed = " (resumed)"
	}
	fmt.Fprintf(stdout(c), "Rotated the key of %s%s: version %d -> %d; %d of %d files' headers rewrapped; versions below %d retired. Payload objects untouched.\n",
		r.Dataset, resumed, r.FromVersion, r.ToVersion, r.Rewrapped, r.Files, r.ToVersion)
	for _, name := range r.AbortedUploads {
		fmt.Fprintf(stderr(c), "dozo: upload of %q began during the rotation and was ended; upload it again\n", name)
	}
	return nil
}

func runDatasetDelete(c *cli.Context) error {
	if err := needArgs(c, 1, "the dataset ID"); err != nil {
		return err
	}
	id := c.Args().First()
	if err := client.ValidateDatasetID(id); err != nil {
		return badArg(c, err)
	}
	if c.String("confirm") != id {
		return badArg(c, fmt.Errorf("--confirm %q does not repeat the dataset id %q; nothing was deleted", c.String("confirm"), id))
	}
	base, err := reportBase(c, id)
	if err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	r, err := cl.DeleteDataset(c.Context, id, c.String("confirm"))
	if err != nil {
		return &client.Error{Op: "deleting dataset " + id, Err: err}
	}
	return writeReport(c, r, base)
}

func runDeletionReport(c *cli.Context) error {
	if err := needArgs(c, 1, "the dataset ID"); err != nil {
		return err
	}
	id := c.Args().First()
	base, err := reportBase(c, id)
	if err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	r, err := cl.DeletionReport(c.Context, id)
	if err != nil {
		return &client.Error{Op: "fetching the deletion report of " + id, Err: err}
	}
	return writeReport(c, r, base)
}

// reportBase is --report without a .json/.txt suffix, checked before
// anything is deleted so a bad path cannot lose the report.
func reportBase(c *cli.Context, id string) (string, error) {
	base := c.String("report")
	if base == "" {
		base = id + "-deletion-report"
	}
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".json"), ".txt")
	dir := filepath.Dir(base)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", badArg(c, fmt.Errorf("--report %s: directory %s does not exist", c.String("report"), dir))
	}
	return base, nil
}

func writeReport(c *cli.Context, r *api.DeletionReport, base string) error {
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	jsonPath, txtPath := base+".json", base+".txt"
	if err := os.WriteFile(jsonPath, append(j, '\n'), 0o600); err != nil {
		return &client.Error{Op: "writing the deletion report", Err: err, Hint: "fetch it again with dozo dataset deletion-report " + r.Dataset}
	}
	if err := os.WriteFile(txtPath, []byte(client.FormatDeletionReport(r)), 0o600); err != nil {
		return &client.Error{Op: "writing the deletion report", Err: err, Hint: "fetch it again with dozo dataset deletion-report " + r.Dataset}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), r)
	}
	fmt.Fprintf(stdout(c), "Deleted dataset %s: %d files, %d stored objects on %d targets; key %s (versions 1-%d) destroyed %s.\nReport: %s, %s\n",
		r.Dataset, len(r.Files), len(r.Objects), len(r.Targets), r.Key.Name, r.Key.Versions, r.Key.DestroyedAt.UTC().Format("2006-01-02 15:04:05 UTC"), jsonPath, txtPath)
	return nil
}
