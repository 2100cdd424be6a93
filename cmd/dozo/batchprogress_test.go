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

// TestProgressEscapes pins what both progress displays write to a
// terminal: each redraw starts with a return and an erase and draws over
// the lines it drew before; clearing erases each drawn line once (going
// up over a batch's), and clearing again, or off a terminal, writes
// nothing.
func TestProgressEscapes(t *testing.T) {
	const erase, up = "\r\x1b[K", "\x1b[A\x1b[K"
	clock := time.Unix(1000, 0)
	now := func() time.Time { return clock }

	var one bytes.Buffer
	p := newProgress(&one, 100, 1)
	p.enabled, p.fd, p.now = true, -1, now
	p.file("a.vcf", 100)
	p.update("upload", 10, 100)
	first := one.String()
	clock = clock.Add(time.Second)
	p.update("upload", 50, 100)
	second := strings.TrimPrefix(one.String(), first)
	p.clear()
	cleared := strings.TrimPrefix(one.String(), first+second)
	p.clear()
	if !strings.HasPrefix(first, erase) || strings.Contains(first[len(erase):], "\x1b") || !strings.Contains(first, "10.0%") ||
		!strings.HasPrefix(second, erase) || strings.Contains(second[len(erase):], "\x1b") || !strings.Contains(second, "50.0%") ||
		cleared != erase || one.String() != first+second+erase {
		t.Errorf("one file: %q", one.String())
	}
	one.Reset()
	p.file("b.vcf", 100)
	p.update("upload", 100, 100)
	drawn := one.String()
	p.finish()
	if one.String() != drawn+erase {
		t.Errorf("finish after a draw: %q", one.String())
	}

	var batch bytes.Buffer
	b := newBatchProgress(&batch, "upload", 200, 2)
	b.enabled, b.fd, b.now, b.start = true, -1, now, clock
	x := b.begin("x.vcf", 100)
	b.begin("y.vcf", 100)
	clock = clock.Add(time.Second)
	b.update(x, "upload", 50, 100)
	first = batch.String()
	clock = clock.Add(time.Second)
	b.update(x, "upload", 60, 100)
	second = strings.TrimPrefix(batch.String(), first)
	b.clear()
	cleared = strings.TrimPrefix(batch.String(), first+second)
	b.clear()
	if strings.Count(first, "\n") != 2 || !strings.HasPrefix(first, erase) || strings.Contains(first[len(erase):], "\x1b") ||
		!strings.HasPrefix(second, erase+up+up) || strings.Contains(second[len(erase+up+up):], "\x1b") ||
		cleared != erase+up+up || batch.String() != first+second+cleared {
		t.Errorf("batch: %q", batch.String())
	}

	var quiet bytes.Buffer
	q := newProgress(&quiet, 10, 1)
	q.file("q", 10)
	q.update("fetch", 10, 10)
	q.finish()
	q.clear()
	if quiet.Len() != 0 {
		t.Errorf("off a terminal: %q", quiet.String())
	}
}
