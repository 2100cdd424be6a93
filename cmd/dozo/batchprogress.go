package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
)

// batchProgress draws, on a terminal, one line per file being transferred
// (its bar) and a last line for the whole batch: files done, bytes, rate
// and time left. It is silent when its writer is not a terminal (logs and
// pipes get the result lines and the summary only). Lines printed through
// it appear above the bars. Safe for concurrent use.
type batchProgress struct {
	liveLines

	verb     string
	bars     []*fileBar // in the order the files started
	files    int
	finished int
	all      int64 // bytes of every file of the batch
	base     int64 // bytes of finished files
	start    time.Time
	last     time.Time
	now      func() time.Time
}

// fileBar is the progress of one file of a batch.
type fileBar struct {
	label      string
	phase      string
	done, size int64
}

func newBatchProgress(w io.Writer, verb string, totalBytes int64, files int) *batchProgress {
	p := &batchProgress{verb: verb, all: totalBytes, files: files, now: time.Now}
	p.attach(w)
	p.start = p.now()
	return p
}

// begin adds a file's bar.
func (p *batchProgress) begin(label string, size int64) *fileBar {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &fileBar{label: label, size: size}
	p.bars = append(p.bars, b)
	return b
}

// update sets a file's progress.
func (p *batchProgress) update(b *fileBar, phase string, done, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.phase, b.done, b.size = phase, done, size
	if !p.enabled || p.now().Sub(p.last) < 150*time.Millisecond {
		return
	}
	p.drawLocked()
}

// end removes a file's bar; size counts as done (a skipped or failed file
// is done with too: the total is of the work left).
func (p *batchProgress) end(b *fileBar, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.bars {
		if x == b {
			p.bars = append(p.bars[:i], p.bars[i+1:]...)
			break
		}
	}
	p.base += size
	p.finished++
	if p.enabled {
		p.drawLocked()
	}
}

// print writes a line above the bars.
func (p *batchProgress) print(w io.Writer, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	io.WriteString(w, line)
	if p.enabled && len(p.bars) > 0 {
		p.drawLocked()
	}
}

func (p *batchProgress) drawLocked() {
	p.last = p.now()
	width := p.width()
	var lines []string
	for _, b := range p.bars {
		lines = append(lines, barLine(b, width))
	}
	p.showLocked(append(lines, p.totalLine()), width)
}

// barLine is one file's line: name, bar, percent and bytes.
func barLine(b *fileBar, width int) string {
	label := b.label
	if b.phase == "verify" {
		label = i18n.T("verifying ") + label
	}
	if displayWidth(label) > 30 {
		label = widthCond.Truncate(label, 30, "...")
	}
	label += strings.Repeat(" ", 30-displayWidth(label))
	pct := percent(b.done, b.size)
	tail := fmt.Sprintf(" %5.1f%% %s/%s", pct, units.FormatSize(b.done), units.FormatSize(b.size))
	bar := ""
	if n := min(width-1-30-displayWidth(tail)-3, 30); n >= 10 {
		fill := min(max(int(float64(n)*pct/100), 0), n)
		bar = " [" + strings.Repeat("=", fill) + strings.Repeat(" ", n-fill) + "]"
	}
	return label + bar + tail
}

// totalLine is the batch's line: files done of all, bytes, rate, ETA.
func (p *batchProgress) totalLine() string {
	done := p.base
	for _, b := range p.bars {
		done += b.done
	}
	line := i18n.Sprintf("%s: %d/%d files, %.1f%% of %s", i18n.T(p.verb), p.finished, p.files, percent(done, p.all), units.FormatSize(p.all))
	if el := p.now().Sub(p.start).Seconds(); el > 0.5 && done > 0 {
		bps := float64(done) / el
		line += " " + units.FormatSize(int64(bps)) + "/s"
		if left := p.all - done; left > 0 {
			line += " ETA " + formatETA(time.Duration(float64(left)/bps*float64(time.Second)))
		}
	}
	return line
}

func percent(a, b int64) float64 {
	if b <= 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}
