package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// liveLines are the lines at the foot of a terminal that a progress
// display redraws in place. Nothing is drawn when the writer is not a
// terminal. mu guards them and the display's own state.
type liveLines struct {
	w       io.Writer
	fd      int
	enabled bool

	mu    sync.Mutex
	lines int // lines on screen now
}

// attach sets the writer, which is drawn on only if it is a terminal.
func (l *liveLines) attach(w io.Writer) {
	l.w = w
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		l.enabled, l.fd = true, int(f.Fd())
	}
}

// width is the terminal's width in columns (80 when it cannot be read).
func (l *liveLines) width() int {
	if w, _, err := term.GetSize(l.fd); err == nil && w > 20 {
		return w
	}
	return 80
}

// clear removes the lines (before printing something else, or at the end).
func (l *liveLines) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
}

func (l *liveLines) clearLocked() {
	if !l.enabled || l.lines == 0 {
		return
	}
	s := "\r\033[K"
	for range l.lines - 1 {
		s += "\033[A\033[K"
	}
	fmt.Fprint(l.w, s)
	l.lines = 0
}

// showLocked puts lines in place of those drawn before, each cut to fit
// width: never wrapped, as a wrapped line cannot be redrawn in place.
func (l *liveLines) showLocked(lines []string, width int) {
	for i, s := range lines {
		if displayWidth(s) > width-1 {
			lines[i] = widthCond.Truncate(s, width-1, "")
		}
	}
	if l.lines == 0 {
		fmt.Fprint(l.w, "\r\033[K")
	}
	l.clearLocked()
	fmt.Fprint(l.w, strings.Join(lines, "\n"))
	l.lines = len(lines)
}
