package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
)

// datasetLifecycleCommands are `dozo dataset rotate-key`, `delete`,
// `undelete` and `deletion-report`.
func datasetLifecycleCommands() []*cli.Command {
	reportFlag := &cli.StringFlag{Name: "report", Usage: "write the report to `FILE`.json and FILE.txt (default ./ID-deletion-report)"}
	return []*cli.Command{
		{
			Name:      "rotate-key",
			Usage:     "rotate a dataset's Vault key and retire the old versions (custodian, admin)",
			ArgsUsage: "ID",
			Description: "New uploads and new header wraps use a new key version; every stored header\n" +
				"is rewrapped under it, then the old versions are retired\n" +
				"(min_decryption_version): the stored headers can only be opened with the new\n" +
				"version, and a copy of a stored header taken before the rotation (a backup\n" +
				"of the catalog or a bucket) can no longer be opened through Vault.\n\n" +
				"What it does not do: payloads are not re-encrypted (the file keys stay the\n" +
				"same), and a file key a grantee already obtained by fetching a file is not\n" +
				"revoked: it still decrypts that file's ciphertext. To end a grantee's\n" +
				"access, revoke the grant; what they fetched stays with them.\n\n" +
				"Refused while an administrator has frozen the dataset. If interrupted, run\n" +
				"it again: it resumes.\n\n" +
				"EXAMPLES:\n" +
				"   dozo dataset rotate-key JGAD000001\n" +
				"   dozo dataset rotate-key JGAD000001 --json",
			Flags:  []cli.Flag{jsonFlag},
			Action: runRotateKey,
		},
		{
			Name:      "delete",
			Usage:     "schedule a dataset's deletion: hidden now, objects and key destroyed after a grace period (custodian, admin)",
			ArgsUsage: "ID",
			Description: "End of use (NBDC), in two steps. The first `delete` schedules the deletion:\n" +
				"the dataset disappears at once for everyone (no listing, fetch, upload or\n" +
				"grant) and nothing is destroyed yet. Until the grace period ends (dozod's\n" +
				"lifecycle.deletion_grace, 7 days by default) a custodian or admin can cancel\n" +
				"it with `dozo dataset undelete ID` (or `delete --cancel ID`): the dataset\n" +
				"comes back as it was, grants with their dates. Then dozod runs the deletion\n" +
				"by itself; `delete` repeated from then on runs it at once and writes the\n" +
				"report. The run removes every object of the dataset from every storage\n" +
				"target (every version), then destroys its Vault key.\n\n" +
				"What it cannot reach: copies grantees fetched before it (decrypted files,\n" +
				"and the file keys their fetches gave them, each of which decrypts its file's\n" +
				"ciphertext wherever a copy survives), and backups or snapshots of Vault taken\n" +
				"before the key was destroyed. Those are disposed of separately.\n\n" +
				"--confirm must repeat the dataset id. Refused while an administrator has\n" +
				"frozen the dataset. The deletion report (JSON and text, for the data-use\n" +
				"termination report) is written to --report; `dozo dataset deletion-report`\n" +
				"fetches it after dozod ran the deletion. If interrupted, run it again: it\n" +
				"resumes.\n\n" +
				"EXAMPLES:\n" +
				"   dozo dataset delete JGAD000001 --confirm JGAD000001\n" +
				"   dozo dataset delete JGAD000001 --dry-run\n" +
				"   dozo dataset delete --cancel JGAD000001\n" +
				"   dozo dataset delete JGAD000001 --confirm JGAD000001 --report JGAD000001-termination",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "confirm", Usage: "the dataset `ID` again, to confirm"},
				&cli.BoolFlag{Name: "cancel", Usage: "cancel the scheduled deletion instead (same as dozo dataset undelete ID)"},
				&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would be scheduled (files, bytes, who loses access) and change nothing"},
				reportFlag,
				jsonFlag,
			},
			Action: runDatasetDelete,
		},
		{
			Name:      "undelete",
			Usage:     "cancel a scheduled deletion during its grace period (custodian, admin)",
			ArgsUsage: "ID",
			Description: "The dataset is visible again, exactly as it was: files, members, grants\n" +
				"(with their dates) and open uploads that have not expired. Refused once the\n" +
				"deletion has begun to run.\n\n" +
				"EXAMPLES:\n" +
				"   dozo dataset undelete JGAD000001",
			Flags:  []cli.Flag{jsonFlag},
			Action: runDatasetUndelete,
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
	id, err := datasetIDArg(c)
	if err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	r, err := cl.RotateKey(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("rotating the key of %s", id), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), r)
	}
	resumed := ""
	if r.Resumed {
		resumed = i18n.T(" (resumed)")
	}
	i18n.Fprintf(stdout(c), "Rotated the key of %s%s: version %d -> %d; %d of %d files' headers rewrapped; versions below %d retired.\n"+
		"Payloads were not re-encrypted: file keys grantees already obtained still decrypt their files.\n",
		r.Dataset, resumed, r.FromVersion, r.ToVersion, r.Rewrapped, r.Files, r.ToVersion)
	for _, name := range r.AbortedUploads {
		i18n.Fprintf(stderr(c), "dozo: upload of %q began during the rotation and was ended; upload it again\n", name)
	}
	return nil
}

func runDatasetDelete(c *cli.Context) error {
	if c.Bool("cancel") {
		if c.IsSet("confirm") || c.IsSet("report") {
			return badArg(c, i18n.Errorf("--cancel takes no --confirm or --report; nothing was changed"))
		}
		return runDatasetUndelete(c)
	}
	id, err := datasetIDArg(c)
	if err != nil {
		return err
	}
	if c.Bool("dry-run") {
		return deleteDryRun(c, id)
	}
	if c.String("confirm") != id {
		return badArg(c, i18n.Errorf("--confirm %q does not repeat the dataset id %q; nothing was deleted", c.String("confirm"), id))
	}
	base, err := reportBase(c, id)
	if err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	st, err := cl.DeleteDataset(c.Context, id, c.String("confirm"))
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("deleting dataset %s", id), Err: err}
	}
	if st.Report != nil {
		return writeReport(c, st.Report, base, st)
	}
	if c.Bool("json") {
		return printJSON(stdout(c), st)
	}
	i18n.Fprintf(stdout(c), "Deletion of %s scheduled at %s by %s; it runs at %s.\n"+
		"The dataset is hidden from everyone now; nothing is destroyed before then.\n"+
		"Cancel with `dozo dataset undelete %s`. After %s dozod runs it by itself\n"+
		"(`dozo dataset deletion-report %s` then fetches the report), or run this command again.\n",
		st.Dataset, utc(st.ScheduledAt), st.ScheduledBy, utc(st.RunsAt), st.Dataset, utc(st.RunsAt), st.Dataset)
	return nil
}

// deleteDryRun says what `dataset delete` would schedule, changing nothing.
func deleteDryRun(c *cli.Context, id string) error {
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	d, err := cl.Dataset(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("looking up dataset %s", id), Err: err}
	}
	grants, gerr := cl.Grants(c.Context, id, false)
	may := slices.Contains(d.Access, "custodian") || slices.Contains(d.Access, "admin")
	if c.Bool("json") {
		return printJSON(stdout(c), map[string]any{"dataset": d.ID, "files": d.Files, "bytes": d.Bytes,
			"current_grants": len(grants), "frozen": d.Frozen, "allowed": may && !d.Frozen, "dry_run": true})
	}
	w := stdout(c)
	i18n.Fprintf(w, "dry run: `dozo dataset delete %s --confirm %s` would schedule the deletion of %s (%q):\n", id, id, id, d.Title)
	i18n.Fprintf(w, "  %s, %s, hidden from everyone at once", plural(d.Files, "file", "files"), units.FormatSize(d.Bytes))
	if gerr == nil {
		i18n.Fprintf(w, " (%s would end)", plural(len(grants), "current grant", "current grants"))
	}
	i18n.Fprintf(w, ";\n  every object and the Vault key destroyed after dozod's grace period (lifecycle.deletion_grace,\n"+
		"  7 days by default), unless `dozo dataset undelete %s` cancels it first.\n", id)
	switch {
	case d.Frozen:
		i18n.Fprintln(w, "  It would be refused now: an administrator froze the dataset.")
	case !may:
		i18n.Fprintln(w, "  It would be refused: deleting needs a custodian of the dataset or an administrator.")
	}
	i18n.Fprintln(w, "Nothing was changed.")
	return nil
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func runDatasetUndelete(c *cli.Context) error {
	id, err := datasetIDArg(c)
	if err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	st, err := cl.UndeleteDataset(c.Context, id)
	if err != nil {
		return &client.Error{Op: i18n.Sprintf("cancelling the deletion of %s", id), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), st)
	}
	i18n.Fprintf(stdout(c), "Cancelled the deletion of %s (scheduled at %s by %s, due %s): the dataset is visible again, as it was.\n",
		st.Dataset, utc(st.ScheduledAt), st.ScheduledBy, utc(st.RunsAt))
	return nil
}

func runDeletionReport(c *cli.Context) error {
	id, err := datasetArg(c)
	if err != nil {
		return err
	}
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
		return &client.Error{Op: i18n.Sprintf("fetching the deletion report of %s", id), Err: err}
	}
	return writeReport(c, r, base, r)
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
		return "", badArg(c, i18n.Errorf("--report %s: directory %s does not exist", c.String("report"), dir))
	}
	return base, nil
}

// writeReport writes r to base.json and base.txt, then prints asJSON with
// --json or a summary without.
func writeReport(c *cli.Context, r *api.DeletionReport, base string, asJSON any) error {
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	jsonPath, txtPath := base+".json", base+".txt"
	if err := os.WriteFile(jsonPath, append(j, '\n'), 0o600); err != nil {
		return &client.Error{Op: i18n.T("writing the deletion report"), Err: err, Hint: i18n.Sprintf("fetch it again with dozo dataset deletion-report %s", r.Dataset)}
	}
	if err := os.WriteFile(txtPath, []byte(deletionReportText(r)), 0o600); err != nil {
		return &client.Error{Op: i18n.T("writing the deletion report"), Err: err, Hint: i18n.Sprintf("fetch it again with dozo dataset deletion-report %s", r.Dataset)}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), asJSON)
	}
	i18n.Fprintf(stdout(c), "Deleted dataset %s: %d files, %d stored objects on %d targets; key %s (versions 1-%d) destroyed %s.\n"+
		"Copies grantees fetched before (files, file keys) and earlier Vault backups are outside its reach.\nReport: %s, %s\n",
		r.Dataset, len(r.Files), len(r.Objects), len(r.Targets), r.Key.Name, r.Key.Versions, utc(r.Key.DestroyedAt), jsonPath, txtPath)
	return nil
}

// deletionReportText renders a deletion report as plain text for people
// (the NBDC data-use termination report), in the chosen language: summary
// first, then every file and every deleted object. dozod's statement is
// quoted as it wrote it.
func deletionReportText(r *api.DeletionReport) string {
	var b strings.Builder
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	title := i18n.Sprintf("dozo deletion report: dataset %s", r.Dataset)
	fmt.Fprintf(&b, "%s\n%s\n\n", title, strings.Repeat("=", displayWidth(title)))
	w := table(&b)
	i18n.Fprintf(w, "Dataset\t%s (%s)\n", r.Dataset, r.Title)
	i18n.Fprintf(w, "Status\t%s\n", stateWord(r.Status))
	i18n.Fprintf(w, "Asked for\t%s by %s (dataset hidden from then on)\n", ts(r.StartedAt), r.StartedBy)
	if !r.RunStartedAt.IsZero() {
		i18n.Fprintf(w, "Ran from\t%s (after the grace period)\n", ts(r.RunStartedAt))
	}
	i18n.Fprintf(w, "Finished\t%s by %s\n", ts(r.FinishedAt), r.FinishedBy)
	i18n.Fprintf(w, "Storage targets\t%s\n", strings.Join(r.Targets, ", "))
	i18n.Fprintf(w, "Objects deleted\t%d (every version)\n", len(r.Objects))
	i18n.Fprintf(w, "Key destroyed\t%s, versions 1-%d, at %s (HashiCorp Vault Transit)\n", r.Key.Name, r.Key.Versions, ts(r.Key.DestroyedAt))
	w.Flush()
	fmt.Fprintf(&b, "\n%s\n\n", wrapWords(r.Statement, 76))
	i18n.Fprintf(&b, "Files (%d)\n", len(r.Files))
	io.WriteString(w, "  ")
	columns(w, "NAME", "ID", "SIZE", "SHA-256", "STATE")
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %s\t%s\t%d\t%s\t%s\n", f.Name, f.ID, f.Size, orNone(f.SHA256), stateWord(f.State))
	}
	w.Flush()
	b.WriteString("\n")
	i18n.Fprintf(&b, "Deleted objects (%d)\n", len(r.Objects))
	io.WriteString(w, "  ")
	columns(w, "TARGET", "KEY", "VERSION", "SIZE", "DELETED AT")
	for _, o := range r.Objects {
		v := orNone(o.VersionID)
		if o.DeleteMarker {
			v += i18n.T(" (delete marker)")
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%s\n", o.Target, o.Key, v, o.Size, ts(o.DeletedAt))
	}
	w.Flush()
	return b.String()
}

// wrapWords breaks s into lines of at most width columns at spaces.
func wrapWords(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		ww := displayWidth(word)
		if i > 0 && n+1+ww > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += ww
	}
	return b.String()
}
