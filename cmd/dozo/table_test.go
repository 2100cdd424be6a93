package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// Japanese titles and names line up: every cell after the first starts
// at the same display column on every row.
func TestTableAlignsWideText(t *testing.T) {
	var b bytes.Buffer
	w := table(&b)
	fmt.Fprintln(w, "ID\tTITLE\tINSTITUTION\tFILES")
	fmt.Fprintln(w, "JGAD000001\t全ゲノム解析 100 検体\t東京大学\t12")
	fmt.Fprintln(w, "JGAD000002\tWGS of 100 samples\tKyoto Univ.\t3")
	fmt.Fprintln(w, "wgs-2026\tｶﾅ mixed 混在 text\t国立遺伝学研究所 (NIG)\t1")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines:\n%s", len(lines), b.String())
	}
	starts := columnStarts(lines)
	for i, s := range starts {
		if len(s) != 4 {
			t.Fatalf("line %d: %d columns: %q", i, len(s), lines[i])
		}
	}
	for c, col := range []string{"ID", "TITLE", "INSTITUTION", "FILES"} {
		want := strings.Index(lines[0], col) // the header is ASCII
		for i := range lines {
			if starts[i][c] != want {
				t.Errorf("%s starts at column %d on line %d, %d on the header:\n%s", col, starts[i][c], i, want, b.String())
			}
		}
	}
}

// columnStarts are the display columns where each cell of each line
// begins (cells are separated by two or more spaces).
func columnStarts(lines []string) [][]int {
	var out [][]int
	for _, l := range lines {
		var starts []int
		col, spaces := 0, 2
		for _, r := range l {
			if r == ' ' {
				spaces++
			} else {
				if spaces >= 2 {
					starts = append(starts, col)
				}
				spaces = 0
			}
			col += displayWidth(string(r))
		}
		out = append(out, starts)
	}
	return out
}

// On ASCII text the table is what text/tabwriter printed before, also for
// lines with fewer cells and text after the last tab.
func TestTableMatchesTabwriter(t *testing.T) {
	in := "NAME\tSIZE\tSTATE\n" +
		"a.bam\t12\tavailable\n" +
		"long-file-name.cram\t1234567\tuploading\n" +
		"no tabs here\n" +
		"x\ty\n" +
		"k\tv\textra\tmore\n" +
		"\t\tempty cells\n" +
		"last line without newline\tz"
	var want, got bytes.Buffer
	tw := tabwriter.NewWriter(&want, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, in)
	tw.Flush()
	w := table(&got)
	fmt.Fprint(w, in)
	w.Flush()
	if got.String() != want.String() {
		t.Errorf("got\n%s\nwant (text/tabwriter)\n%s", got.String(), want.String())
	}
}

func TestCutWidth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abcdef", 6, "abcdef"},
		{"abcdef", 4, "abc…"},
		{"東京大学医科学研究所", 20, "東京大学医科学研究所"},
		{"東京大学医科学研究所", 9, "東京大学…"},
		{"東京大学医科学研究所", 10, "東京大学…"}, // 東京大学 is 8, … 1; the next character would straddle
		{"ab東京", 4, "ab…"},
		{"x", 0, ""},
	} {
		got := cutWidth(tc.in, tc.n)
		if got != tc.want || displayWidth(got) > tc.n {
			t.Errorf("cutWidth(%q, %d) = %q (width %d), want %q", tc.in, tc.n, got, displayWidth(got), tc.want)
		}
	}
	if w := displayWidth("全ゲノム abc"); w != 12 {
		t.Errorf("displayWidth = %d, want 12", w)
	}
}

// A progress line with a Japanese file name fits 80 columns (the width
// without a terminal): names are cut by display width, not by letters.
func TestProgressFitsWideNames(t *testing.T) {
	var b bytes.Buffer
	now := time.Unix(1000, 0)
	p := &progress{liveLines: liveLines{w: &b, enabled: true}, all: 3 << 30, files: 3, now: func() time.Time { return now }}
	p.file("全ゲノム解析_日本人集団_検体番号0001_高深度シーケンス_最終版.cram", 1<<30)
	now = now.Add(2 * time.Second)
	p.update("", 300<<20, 1<<30)
	line := strings.TrimPrefix(b.String(), "\r\033[K")
	if w := displayWidth(line); w > 79 || !strings.Contains(line, "%") {
		t.Errorf("progress line %d columns wide (want at most 79):\n%s", w, line)
	}
	if !strings.Contains(line, "全ゲノム") {
		t.Errorf("progress line lost the name: %s", line)
	}
}
