package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/internal/i18n"
	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/transfer"
)

// progress draws one status line on a terminal: the current file's bar and
// the overall total. It is silent when its writer is not a terminal (logs
// and pipes get the final summaries only). Safe for concurrent use.
type progress struct {
	liveLines

	label      string
	phase      string
	done, size int64 // current file
	base, all  int64 // bytes of finished files, total of all files
	files      int
	index      int
	start      time.Time
	startDone  int64
	last       time.Time
	now        func() time.Time // time.Now; tests set it
}

func newProgress(w io.Writer, totalBytes int64, files int) *progress {
	p := &progress{all: totalBytes, files: files, now: time.Now}
	p.attach(w)
	return p
}

// file starts the bar of the next file.
func (p *progress) file(label string, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	p.label, p.size, p.done, p.phase = label, size, 0, ""
	p.start, p.startDone = p.now(), 0
}

// update sets the current file's progress; phase changes restart the rate.
func (p *progress) update(phase string, done, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if phase != p.phase {
		p.phase, p.start, p.startDone = phase, p.now(), done
	}
	p.done, p.size = done, size
	if !p.enabled || p.now().Sub(p.last) < 150*time.Millisecond && done < size {
		return
	}
	p.last = p.now()
	p.drawLocked()
}

// finish ends the current file: its bytes count toward the total.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base += p.size
	p.clearLocked()
}

func (p *progress) drawLocked() {
	width := p.width()
	rate, eta := "", ""
	if el := p.now().Sub(p.start).Seconds(); el > 0.5 {
		bps := float64(p.done-p.startDone) / el
		rate = units.FormatSize(int64(bps)) + "/s"
		left := p.size - p.done
		if p.files > 1 {
			left = p.all - p.base - p.done
		}
		if bps > 0 && left > 0 {
			eta = i18n.Sprintf(" ETA %s", formatETA(time.Duration(float64(left)/bps*float64(time.Second))))
		}
	}
	phase := ""
	if p.phase == "verify" {
		phase = i18n.T("verifying ")
	}
	// Most important first: what is cut at a narrow terminal is the end.
	tail := fmt.Sprintf(" %5.1f%% %s/%s", percent(p.done, p.size), units.FormatSize(p.done), units.FormatSize(p.size))
	if rate != "" {
		tail += " " + rate + eta
	}
	if p.files > 1 {
		tail += i18n.Sprintf(" | file %d/%d, %.0f%% of all", p.index, p.files, percent(p.base+p.done, p.all))
	}
	// Widths are display columns: a Japanese file name takes two a letter.
	label := phase + p.label
	tailWidth := displayWidth(tail)
	if n := width - 1 - tailWidth; n < displayWidth(label) {
		// Cut the name before the figures, down to a few letters.
		if m := max(n, 12); m < displayWidth(label) {
			label = widthCond.Truncate(label, m, "...")
		}
	}
	barWidth := width - tailWidth - 4 - min(displayWidth(label), 30)
	if barWidth > 40 {
		barWidth = 40
	}
	bar := ""
	if barWidth >= 10 {
		fill := int(float64(barWidth) * percent(p.done, p.size) / 100)
		fill = min(max(fill, 0), barWidth)
		bar = " [" + strings.Repeat("=", fill) + strings.Repeat(" ", barWidth-fill) + "]"
	}
	if displayWidth(label) > 30 {
		label = widthCond.Truncate(label, 30, "...")
	}
	p.showLocked([]string{label + bar + tail}, width)
}

// formatETA is a time left as people read it: "45s", "12m05s", "3h20m".
func formatETA(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// uploadSummary is the parenthesis of an upload's result line. The rate
// is of what this run sent; a resumed run says so and how much was already
// stored (its time went to re-checking that part of the file).
func uploadSummary(res *transfer.UploadResult) string {
	took := res.Elapsed.Round(10 * time.Millisecond)
	size := units.FormatSize(res.File.Size)
	switch {
	case !res.Resumed:
		return i18n.Sprintf("%s in %s, %s", size, took, rate(res.Sent, res.Elapsed))
	case res.StartSegment >= res.Segments:
		return i18n.Sprintf("%s; resumed: %s already stored, nothing left to send; checked in %s", size, allOf(res.Segments, "segment", "segments"), took)
	}
	return i18n.Sprintf("%s; resumed: %d of %s already stored, sent %s in %s, %s",
		size, res.StartSegment, plural(res.Segments, "segment", "segments"), units.FormatSize(res.Sent), took, rate(res.Sent, res.Elapsed))
}
