package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/mattn/go-runewidth"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/internal/i18n"
)

// displayWidth is the number of terminal columns s takes: two for each
// wide (CJK) character, none for combining marks.
func displayWidth(s string) int { return widthCond.StringWidth(s) }

// cutWidth shortens s to at most n columns, marking a cut with "…"; a
// wide character that would straddle the edge is left out.
func cutWidth(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if displayWidth(s) <= n {
		return s
	}
	return widthCond.Truncate(s, n, "…")
}

// widthCond measures as terminals do for Japanese text: ambiguous-width
// characters (…, ×, Greek) are narrow whatever the locale, as in
// UTF-8 terminals, so a table does not change with LANG.
var widthCond = func() *runewidth.Condition {
	c := runewidth.NewCondition()
	c.EastAsianWidth = false
	return c
}()

// tableWriter lines up tab-separated cells in columns by their display
// width, as text/tabwriter (minimum width 0, padding 2) does by rune
// count, so rows with Japanese names line up. A column block is a run of
// consecutive lines that have a cell in that column; the text after a
// line's last tab is not a cell and is not padded.
type tableWriter struct {
	w   io.Writer
	buf bytes.Buffer
}

func table(w io.Writer) *tableWriter { return &tableWriter{w: w} }

func (t *tableWriter) Write(p []byte) (int, error) { return t.buf.Write(p) }

// Flush writes the buffered lines, aligned, and empties the buffer.
func (t *tableWriter) Flush() error {
	const padding = 2
	text := t.buf.String()
	t.buf.Reset()
	if text == "" {
		return nil
	}
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	cells := make([][]string, len(lines))
	for i, l := range lines {
		cells[i] = strings.Split(l, "\t")
	}
	widths := make([][]int, len(lines))
	var block func(col, from, to int)
	block = func(col, from, to int) {
		for i := from; i < to; i++ {
			if col >= len(cells[i])-1 {
				continue
			}
			j, w := i, 0
			for ; j < to && col < len(cells[j])-1; j++ {
				w = max(w, displayWidth(cells[j][col])+padding)
			}
			for k := i; k < j; k++ {
				widths[k] = append(widths[k], w)
			}
			block(col+1, i, j)
			i = j - 1
		}
	}
	block(0, 0, len(lines))
	var b strings.Builder
	for i, row := range cells {
		for c, cell := range row {
			b.WriteString(cell)
			if c < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i][c]-displayWidth(cell)))
			}
		}
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

// termWidth is the width to fit tables to: the terminal's, else $COLUMNS,
// else 0 (not a terminal: no limit, so pipes and files get whole lines).
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 0
}

// writeFitted writes text, a rendered table, cutting each line that is
// wider than the terminal with "…" unless wide; the JSON output is whole.
func writeFitted(w io.Writer, text string, wide bool) {
	width := 0
	if !wide {
		width = termWidth(w)
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		if line == "" {
			continue
		}
		body := strings.TrimSuffix(line, "\n")
		if width > 0 && displayWidth(body) > width {
			body = cutWidth(body, width)
		}
		fmt.Fprintln(w, body)
	}
}

// shortHash is a hash cut for a table column ("3f2a9c1e…"); --wide and
// --json show it whole.
func shortHash(h string, wide bool) string {
	if wide || len(h) <= 12 {
		return h
	}
	return h[:12] + "…"
}

// oneLine keeps a message on one table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// excelFlag goes with --csv: the CSV starts with a UTF-8 byte order mark,
// which Excel needs to read UTF-8 (without it, Excel on Japanese Windows
// reads the file as Shift_JIS and garbles every Japanese name).
var excelFlag = &cli.BoolFlag{Name: "excel", Usage: "with --csv: start with a UTF-8 byte order mark, so Excel (also on Japanese Windows) reads names correctly"}

// utf8BOM is the byte order mark Excel looks for.
const utf8BOM = "\uFEFF"

// checkExcel refuses --excel without --csv.
func checkExcel(c *cli.Context) error {
	if c.Bool("excel") && !c.Bool("csv") {
		return badArg(c, i18n.New("--excel goes with --csv"))
	}
	return nil
}

// csvOut is where --csv writes: standard output, after the byte order
// mark when --excel asks for it.
func csvOut(c *cli.Context) (io.Writer, error) {
	w := stdout(c)
	if c.Bool("excel") {
		if _, err := io.WriteString(w, utf8BOM); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// columns writes the heading row of a table, each name in the chosen
// language. (--json and --csv keep their English names: scripts read
// those.)
func columns(w io.Writer, names ...string) {
	io.WriteString(w, strings.Join(headings(names...), "\t")+"\n")
}

// headings are the names of a table's columns in the chosen language.
func headings(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = i18n.T(n)
	}
	return out
}

// stateWord is a state (of a grant, a file, a target, a deletion) or an
// audit result as a table shows it: a word in the chosen language. --json
// and --csv keep the value dozod sent.
func stateWord(s string) string { return i18n.T(s) }

// stateWords are the states and results tables show through stateWord.
var stateWords = []string{
	api.GrantActive, api.GrantFuture, api.GrantScheduled, api.GrantExpired, api.GrantRevoked, api.GrantSuperseded,
	api.FileUploading, api.FileAvailable, api.FileDamaged, api.FileAborted,
	api.DeletionScheduled, api.DeletionRunning, api.DeletionComplete, api.DeletionCancelled,
	audit.ResultOK, audit.ResultRefused, audit.ResultError, audit.ResultClientReported,
	"up", "DOWN",
	api.JobQueued, api.JobRunning, api.JobDone, api.JobFailed, api.JobCancelled,
}
