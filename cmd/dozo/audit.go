package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/transfer"
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
				Description: "The table fits 120 columns (ids, long objects and details are cut; --wide\n" +
					"prints everything, with source address and request id) and shows times in\n" +
					"this machine's time zone with its UTC offset (--utc for UTC). FILE/OBJECT\n" +
					"names the file a record concerns, also for files of deleted datasets.\n" +
					"Presigned-URL records (many per transfer) and the records of listing the log\n" +
					"itself are left out of the table and the CSV unless --all or --action asks\n" +
					"for them; --json always prints every matching record (times in UTC).\n" +
					"A finished fetch adds a file.fetch.done record with the bytes it wrote; the\n" +
					"client reports it, so its result reads client-reported.\n\n" +
					"EXAMPLES:\n" +
					"   dozo audit list                                  # admins: the latest 100 records\n" +
					"   dozo audit list --dataset JGAD000001 --user bob  # a custodian: bob's use of the dataset\n" +
					"   dozo audit list --dataset JGAD000001 --file sample1.cram --action file.fetch,file.fetch.done\n" +
					"   dozo audit list --result refused --since 2026-11-01 --until 2026-12-01 --csv > refusals.csv\n" +
					"   dozo audit list --since 2026-11-01T00:00:00Z --limit 1000 --json",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dataset", Usage: "only records about dataset `ID`"},
					&cli.StringFlag{Name: "user", Usage: "only records of user `U`"},
					&cli.StringFlag{Name: "file", Usage: "only records about files named `NAME` (fetches, presigns, uploads, refusals)"},
					&cli.StringFlag{Name: "action", Usage: "only these actions, comma-separated (`A[,B]`, e.g. file.fetch,file.fetch.done)"},
					&cli.StringFlag{Name: "result", Usage: "only records with result `R`: ok, refused, error or client-reported"},
					&cli.StringFlag{Name: "since", Usage: "only records from `T` on (YYYY-MM-DD or RFC 3339, UTC)"},
					&cli.StringFlag{Name: "until", Usage: "only records before `T` (YYYY-MM-DD or RFC 3339, UTC)"},
					&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most `N` records (1..10000), the newest"},
					&cli.BoolFlag{Name: "all", Usage: "also presigned-URL and audit-listing records"},
					&cli.BoolFlag{Name: "wide", Usage: "print every column in full (no 120-column fit)"},
					&cli.BoolFlag{Name: "utc", Usage: "print times in UTC instead of the local time zone"},
					&cli.BoolFlag{Name: "csv", Usage: "print CSV on standard output (text cells defused for spreadsheets)"},
					excelFlag,
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

// auditHidden are the actions the reading view (table, CSV) leaves out
// unless --all or --action asks for them: presigned URLs, many per
// transfer, and the records of listing the log itself.
func auditHidden() []string { return append(slices.Clone(api.PresignActions), "audit.list") }

func runAuditList(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	if c.Bool("csv") && c.Bool("json") {
		return badArg(c, i18n.New("--csv and --json: choose one"))
	}
	if err := checkExcel(c); err != nil {
		return err
	}
	q := client.AuditQuery{Dataset: c.String("dataset"), User: c.String("user"), File: c.String("file"),
		Result: c.String("result"), Limit: c.Int("limit")}
	for _, name := range []string{"since", "until"} {
		s := c.String(name)
		if s == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return badArg(c, i18n.Errorf("--%s %q: want YYYY-MM-DD or RFC 3339 (2026-01-02T15:04:05Z)", name, s))
			}
		}
	}
	q.Since, q.Until = c.String("since"), c.String("until")
	switch q.Result {
	case "", audit.ResultOK, audit.ResultRefused, audit.ResultError, audit.ResultClientReported:
	default:
		return badArg(c, i18n.Errorf("--result %q: want ok, refused, error or client-reported", q.Result))
	}
	if a := c.String("action"); a != "" {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s == "" {
				return badArg(c, i18n.Errorf("--action %q: want action names separated by commas", a))
			}
			q.Actions = append(q.Actions, s)
		}
	} else if !c.Bool("all") && !c.Bool("json") {
		q.ExcludeActions = auditHidden()
	}
	if q.Limit < 1 || q.Limit > 10000 {
		return badArg(c, i18n.Errorf("--limit %d: want 1..10000", q.Limit))
	}
	cl, _, err := newClient(c)
	if err != nil {
		return err
	}
	rs, err := cl.AuditList(c.Context, q)
	if err != nil {
		return &client.Error{Op: i18n.T("listing the audit log"), Err: err}
	}
	if rs == nil {
		rs = []api.AuditEntry{}
	}
	loc := time.Local
	if c.Bool("utc") {
		loc = time.UTC
	}
	switch {
	case c.Bool("json"):
		for i := range rs {
			rs[i].Time = rs[i].Time.UTC()
		}
		return printJSON(stdout(c), rs)
	case c.Bool("csv"):
		w, err := csvOut(c)
		if err != nil {
			return err
		}
		return writeAuditCSV(w, rs, loc)
	case c.Bool("wide"):
		return writeAuditWide(stdout(c), rs, loc)
	}
	return writeAuditTable(stdout(c), rs, loc, auditWidth)
}

// auditWidth is the width the default audit table fits.
const auditWidth = 120

// auditTime is a record's time in loc with its offset ("Z" in UTC).
func auditTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05Z07:00")
}

// auditResult is the result, with the HTTP status when it was not a
// success.
func auditResult(r api.AuditEntry) string {
	if r.Status >= 400 {
		return fmt.Sprintf("%s %d", stateWord(r.Result), r.Status)
	}
	return stateWord(r.Result)
}

// auditDetail is the record's detail; a finished upload, whose record
// dozod writes with no detail, shows the size of the file it stored.
func auditDetail(r api.AuditEntry) string {
	if r.Action == "upload.complete" && r.Result == audit.ResultOK && r.Detail == "" && r.FileSize > 0 {
		return i18n.Sprintf("%d bytes (the file's size)", r.FileSize)
	}
	return r.Detail
}

// shortObject cuts the long ids in an object ("file/f9c3e1…") so the
// table stays narrow; --wide prints them whole.
func shortObject(o string) string {
	parts := strings.Split(o, "/")
	for i, p := range parts {
		if utf8.RuneCountInString(p) > 16 {
			parts[i] = string([]rune(p)[:8]) + "…"
		}
	}
	return strings.Join(parts, "/")
}

// writeAuditTable prints records in at most width columns: each column
// is as wide as its widest cell up to a cap, and the detail gets what is
// left. Control characters in free text are shown escaped, so a record
// cannot redraw the terminal.
func writeAuditTable(w io.Writer, rs []api.AuditEntry, loc *time.Location, width int) error {
	head := headings("SEQ", "TIME", "USER", "ACTION", "FILE/OBJECT", "RESULT", "DETAIL")
	caps := []int{10, 25, 10, 19, 24, 15, 0}
	rows := [][]string{head}
	for _, r := range rs {
		obj := r.File
		if obj == "" {
			obj = shortObject(r.Object)
		}
		rows = append(rows, []string{strconv.FormatUint(r.Seq, 10), auditTime(r.Time, loc), orNone(printable(r.Actor)),
			printable(r.Action), orNone(printable(obj)), auditResult(r), printable(auditDetail(r))})
	}
	const gap, minDetail = 2, 24
	widths := make([]int, len(head))
	used := 0
	for i := range len(head) - 1 {
		for _, row := range rows {
			widths[i] = max(widths[i], min(displayWidth(row[i]), caps[i]))
		}
		used += widths[i] + gap
	}
	// Wide names leave the detail at least minDetail: the widest of
	// user, action and object gives way first, down to a floor.
	floors := map[int]int{2: 8, 3: 19, 4: 18}
	for width-used < minDetail {
		widest := -1
		for i, f := range floors {
			if widths[i] > f && (widest < 0 || widths[i] > widths[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break
		}
		widths[widest]--
		used--
	}
	widths[len(head)-1] = width - used
	var b strings.Builder
	for _, row := range rows {
		b.Reset()
		for i, cell := range row {
			cell = cutWidth(cell, widths[i])
			b.WriteString(cell)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(cell)+gap))
			}
		}
		if _, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " ")); err != nil {
			return err
		}
	}
	return nil
}

// writeAuditWide prints every column in full.
func writeAuditWide(w io.Writer, rs []api.AuditEntry, loc *time.Location) error {
	t := table(w)
	columns(t, "SEQ", "TIME", "USER", "ACTION", "DATASET", "FILE", "OBJECT", "RESULT", "STATUS", "SOURCE", "REQUEST ID", "DETAIL")
	for _, r := range rs {
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Seq, auditTime(r.Time, loc), orNone(printable(r.Actor)),
			printable(r.Action), orNone(r.Dataset), orNone(printable(r.File)), orNone(printable(r.Object)), stateWord(r.Result), r.Status,
			orNone(r.Source), orNone(r.RequestID), printable(auditDetail(r)))
	}
	return t.Flush()
}

// printable escapes control characters (a tab would break the table, an
// escape sequence would reach the terminal).
func printable(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// reportFetchDone tells dozod that a fetch finished, for the audit log.
// The data is already here: a failed report costs a notice, not the fetch.
func reportFetchDone(c *cli.Context, cl *client.Client, res *transfer.FetchResult) {
	if err := cl.FetchDone(c.Context, res.File.ID, res.Report()); err != nil {
		notice(c)("the fetch finished, but telling dozod for its audit log failed: %v", err)
	}
}

func runAuditVerify(c *cli.Context) error {
	if err := needArgs(c, 0, "no arguments"); err != nil {
		return err
	}
	var res audit.Result
	where := "dozod's audit log"
	if path := c.String("file"); path != "" {
		if c.String("anchor") != "" {
			return badArg(c, i18n.Errorf("--anchor checks dozod's log; use it without --file"))
		}
		f, err := os.Open(path)
		if err != nil {
			return badArg(c, err)
		}
		defer f.Close()
		if res, err = client.VerifyAuditExport(f); err != nil {
			return &client.Error{Op: i18n.Sprintf("verifying %s", path), Err: err}
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
				return badArg(c, i18n.Errorf("--anchor %s: %w", path, err))
			}
			anchor = &audit.Anchor{Seq: last.Seq, Hash: last.Hash}
		}
		cl, _, err := newClient(c)
		if err != nil {
			return err
		}
		r, err := cl.AuditVerify(c.Context, anchor)
		if err != nil {
			return &client.Error{Op: i18n.T("verifying the audit log"), Err: err}
		}
		res = *r
	}
	if c.Bool("json") {
		if err := printJSON(stdout(c), res); err != nil {
			return err
		}
	} else if res.OK {
		i18n.Fprintf(stdout(c), "Audit log OK: %d records, chain intact (head %s).\n", res.Records, res.Head)
		if res.Anchors > 0 {
			i18n.Fprintf(stdout(c), "Anchored in Vault: %d anchors verified, the latest at record %d (%s).\n",
				res.Anchors, res.AnchoredSeq, res.AnchoredAt.UTC().Format(time.RFC3339))
		} else if c.String("file") == "" {
			i18n.Fprintln(stdout(c), "No Vault anchor yet: a log cut short would go unnoticed without --anchor (dozod anchors every few minutes and at every export).")
		}
	}
	if !res.OK {
		hint := "the log was altered at or before this record; keep the catalog as evidence and compare with an earlier export"
		if res.Kind == audit.ForgedAnchor {
			hint = "an anchor was altered in the catalog; keep it as evidence and compare with the transit/hmac requests in Vault's audit log"
		}
		return &client.Error{Op: i18n.Sprintf("verifying %s", where), Err: i18n.Errorf("record %d: %s", res.BadSeq, res.Reason), Hint: hint}
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
			return &client.Error{Op: i18n.T("exporting the audit log"), Err: err}
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
		return &client.Error{Op: i18n.T("exporting the audit log"), Err: err}
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
		return &client.Error{Op: i18n.T("checking the export"), Err: err}
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return &client.Error{Op: i18n.T("exporting the audit log"), Err: err}
	}
	if c.Bool("json") {
		return printJSON(stdout(c), map[string]any{"file": out, "bytes": n, "records": res.Records, "ok": res.OK, "head": res.Head})
	}
	i18n.Fprintf(stdout(c), "Exported %d audit records (%d bytes) to %s.\n", res.Records, n, out)
	if !res.OK {
		return &client.Error{Op: i18n.T("exporting the audit log"), Err: i18n.Errorf("the exported chain does not verify: record %d: %s", res.BadSeq, res.Reason),
			Hint: i18n.T("the file is kept as evidence; run dozo audit verify")}
	}
	return nil
}
