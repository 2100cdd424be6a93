package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestBatchProgress: a bar per file in flight and a total line with the
// files done and an ETA, no line past the terminal's width; a result line
// printed through it lands above the bars, which are redrawn; a finished
// file's bar goes; off a terminal nothing is drawn.
func TestBatchProgress(t *testing.T) {
	const mib = 1 << 20
	var buf bytes.Buffer
	p := newBatchProgress(&buf, "upload", 40*mib, 4)
	p.enabled, p.fd = true, -1 // 80 columns
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	p.start = clock
	a := p.begin("lane1/S1_R1.fastq.gz", 10*mib)
	b := p.begin("lane2/a-very-long-directory-name/S1_R1.fastq.gz", 10*mib)
	clock = clock.Add(2 * time.Second)
	p.update(a, "upload", 5*mib, 10*mib)
	clock = clock.Add(time.Second) // redraws are at most every 150ms
	p.update(b, "upload", 5*mib, 10*mib)
	screen := buf.String()
	last := screen[strings.LastIndex(screen, "\x1b[K")+3:]
	lines := strings.Split(last, "\n")
	if len(lines) != 3 {
		t.Fatalf("drew %q, want two bars and a total", last)
	}
	if !strings.HasPrefix(lines[0], "lane1/S1_R1.fastq.gz") || !strings.Contains(lines[0], " 50.0% 5.0 MiB/10.0 MiB") {
		t.Errorf("bar %q", lines[0])
	}
	if !strings.Contains(lines[1], "...") {
		t.Errorf("long name not cut: %q", lines[1])
	}
	if want := "upload: 0/4 files, 25.0% of 40.0 MiB 3.3 MiB/s ETA 9s"; lines[2] != want {
		t.Errorf("total %q, want %q", lines[2], want)
	}
	for _, l := range lines {
		if displayWidth(l) > 79 {
			t.Errorf("line wider than the terminal: %q", l)
		}
	}
	buf.Reset()
	var out bytes.Buffer
	p.end(a, 10*mib)
	p.print(&out, "uploaded lane1/S1_R1.fastq.gz\n")
	if !strings.Contains(buf.String(), "\x1b[A") || !strings.Contains(buf.String(), "1/4 files") || strings.Contains(buf.String(), "lane1/S1_R1") {
		t.Errorf("after a file ends: %q", buf.String())
	}
	p.clear()

	var quiet bytes.Buffer
	q := newBatchProgress(&quiet, "fetch", 10, 2) // not a terminal
	qb := q.begin("x", 10)
	q.update(qb, "fetch", 5, 10)
	q.end(qb, 10)
	q.print(&quiet, "fetched x\n")
	if quiet.String() != "fetched x\n" {
		t.Errorf("off a terminal: %q", quiet.String())
	}
}
