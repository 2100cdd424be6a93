package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/client"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "list, verify and export dozod's tamper-evident audit log",
		Description: "Every request that reads data, changes state or is refused is a record in a\n" +
			"hash chain: each record commits to the one before, so an edited, deleted or\n" +
			"reordered record is found by `dozo audit verify`. Admins see the whole log;\n" +
			"a dataset's custodian sees that dataset's records (--dataset).\n\n" +
			"EXAMPLES:\n" +
			"   dozo audit list --dataset JGAD000001 --since 2026-01-01\n" +
			"   dozo audit verify\n" +
			"   dozo audit export -o audit-2026-11.jsonl && dozo audit verify --file audit-2026-11.jsonl",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "show audit records (newest --limit, oldest first)",
				Description: "EXAMPLES:\n" +
					"   dozo audit list                                  # admins: the latest 100 records\n" +
					"   dozo audit list --dataset JGAD000001 --user bob  # a custodian: bob's use of the dataset\n" +
					"   dozo audit list --since 2026-11-01T00:00:00Z --limit 1000 --json",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dataset", Usage: "only records about dataset `ID`"},
					&cli.StringFlag{Name: "user", Usage: "only records of user `U`"},
					&cli.StringFlag{Name: "since", Usage: "only records from `T` on (YYYY-MM-DD or RFC 3339, UTC)"},
					&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most `N` records (1..10000), the newest"},
					jsonFlag,
				},
				Action: runAuditList,
			},
			{
				Name:  "verify",
				Usage: "check the hash chain; exits non-zero naming the first bad record",
				Description: "Without --file, dozod verifies the log in its catalog (admin). With --file,\n" +
					"an export is verified here, offline, by the same code. A hash chain alone\n" +
					"cannot show that its tail was cut off or that it was rewritten wholesale.\n" +
					"dozod anchors the chain's head every few minutes and at every export with\n" +
					"an HMAC of its Vault audit key (which also lands in Vault's audit log); verify\n" +
					"checks each anchor with Vault and fails when the log no longer holds an\n" +
					"anchored record. --anchor adds an export kept elsewhere as one more anchor.\n\n" +
					"EXAMPLES:\n" +
					"   dozo audit verify\n" +
					"   dozo audit verify --file audit.jsonl --json\n" +
					"   dozo audit verify --anchor audit-2026-10.jsonl",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "file", Usage: "verify the export in `FILE` (JSON lines) instead of asking dozod"},
					&cli.StringFlag{Name: "anchor", Usage: "also check that dozod's log still holds the last record of the earlier export `FILE` (catches a log cut short or rewritten since)"},
					jsonFlag,
				},
				Action: runAuditVerify,
			},
			{
				Name:  "export",
				Usage: "write the whole log as JSON lines (admin)",
				Description: "The file (mode 0600: it names people and addresses) can be kept off the\n" +
					"server and verified later with `dozo audit verify --file`.\n\n" +
					"EXAMPLES:\n" +
					"   dozo audit export -o audit.jsonl\n" +
					"   dozo audit export | jq -c 'select(.result != \"ok\")'",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write to `FILE` (- for standard output)"},
					jsonFlag,
				},
				Action: runAuditExport,
			},
		},
	}
}

func runAuditList(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	q := client.AuditQuery{Dataset: c.String("dataset"), User: c.String("user"), Limit: c.Int("limit")}
	if s := c.String("since"); s != "" {
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return badArg(c, fmt.Errorf("--since %q: want YYYY-MM-DD or RFC 3339 (2026-01-02T15:04:05Z)", s))
			}
		}
		q.Since = s
	}
	if q.Limit < 1 || q.Limit > 10000 {
		return badArg(c, fmt.Errorf("--limit %d: want 1..10000", q.Limit))
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	rs, err := cl.AuditList(c.Context, q)
	if err != nil {
		return &client.Error{Op: "listing the audit log", Err: err}
	}
	if c.Bool("json") {
		if rs == nil {
			rs = []api.AuditRecord{}
		}
		return printJSON(stdout(c), rs)
	}
	w := table(stdout(c))
	fmt.Fprintln(w, "SEQ\tTIME\tUSER\tACTION\tOBJECT\tRESULT\tSTATUS\tSOURCE\tDETAIL")
	for _, r := range rs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Seq, r.Time.UTC().Format("2006-01-02 15:04:05"), orNone(r.Actor),
			r.Action, orNone(r.Object), r.Result, r.Status, orNone(r.Source), r.Detail)
	}
	return w.Flush()
}

func runAuditVerify(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	var res audit.Result
	where := "dozod's audit log"
	if path := c.String("file"); path != "" {
		if c.String("anchor") != "" {
			return badArg(c, fmt.Errorf("--anchor checks dozod's log; use it without --file"))
		}
		f, err := os.Open(path)
		if err != nil {
			return badArg(c, err)
		}
		defer f.Close()
		if res, err = client.VerifyAuditExport(f); err != nil {
			return &client.Error{Op: "verifying " + path, Err: err}
		}
		where = path
	} else {
		var anchor *audit.Anchor
		if path := c.String("anchor"); path != "" {
			f, err := os.Open(path)
			if err != nil {
				return badArg(c, err)
			}
			last, err := audit.LastRecord(f)
			f.Close()
			if err != nil {
				return badArg(c, fmt.Errorf("--anchor %s: %w", path, err))
			}
			anchor = &audit.Anchor{Seq: last.Seq, Hash: last.Hash}
		}
		cl, _, err := newClient(c)
		if err != nil {
			return err
		}
		r, err := cl.AuditVerify(c.Context, anchor)
		if err != nil {
			return &client.Error{Op: "verifying the audit log", Err: err}
		}
		res = *r
	}
	if c.Bool("json") {
		if err := printJSON(stdout(c), res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(stdout(c), "Audit log OK: %d records, chain intact (head %s).\n", res.Records, res.Head)
		if res.Anchors > 0 {
			fmt.Fprintf(stdout(c), "Anchored in Vault: %d anchors verified, the latest at record %d (%s).\n",
				res.Anchors, res.AnchoredSeq, res.AnchoredAt.UTC().Format(time.RFC3339))
		} else if c.String("file") == "" {
			fmt.Fprintln(stdout(c), "No Vault anchor yet: a log cut short would go unnoticed without --anchor (dozod anchors every few minutes and at every export).")
		}
	}
	if !res.OK {
		hint := "the log was altered at or before this record; keep the catalog as evidence and compare with an earlier export"
		if res.Kind == audit.ForgedAnchor {
			hint = "an anchor was altered in the catalog; keep it as evidence and compare with the transit/hmac requests in Vault's audit log"
		}
		return &client.Error{Op: "verifying " + where, Err: fmt.Errorf("record %d: %s", res.BadSeq, res.Reason), Hint: hint}
	}
	return nil
}

func runAuditExport(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	out := c.String("output")
	if out == "-" {
		_, err := cl.AuditExport(c.Context, stdout(c))
		if err != nil {
			return &client.Error{Op: "exporting the audit log", Err: err}
		}
		return nil
	}
	// Write beside the destination, then rename: a failed export never
	// leaves a truncated file under the requested name.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return badArg(c, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	n, err := cl.AuditExport(c.Context, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &client.Error{Op: "exporting the audit log", Err: err}
	}
	// Check what arrived before keeping it: a cut-off stream verifies as
	// far as it goes, so also say how many records it holds.
	f, err := os.Open(tmp.Name())
	if err != nil {
		return err
	}
	res, err := client.VerifyAuditExport(f)
	f.Close()
	if err != nil {
		return &client.Error{Op: "checking the export", Err: err}
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return &client.Error{Op: "exporting the audit log", Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), map[string]any{"file": out, "bytes": n, "records": res.Records, "ok": res.OK, "head": res.Head})
	}
	fmt.Fprintf(stdout(c), "Exported %d audit records (%d bytes) to %s.\n", res.Records, n, out)
	if !res.OK {
		return &client.Error{Op: "exporting the audit log", Err: errors.New("the exported chain does not verify: record " + fmt.Sprint(res.BadSeq) + ": " + res.Reason),
			Hint: "the file is kept as evidence; run dozo audit verify"}
	}
	return nil
}
