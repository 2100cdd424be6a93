package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

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
		if width > 0 && utf8.RuneCountInString(body) > width {
			r := []rune(body)
			body = string(r[:width-1]) + "…"
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
