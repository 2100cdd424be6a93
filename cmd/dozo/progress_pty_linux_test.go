package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// openPTY opens a pseudo-terminal of cols columns: the program's side
// (what isTerminal and term.GetSize see) and the reader's side.
func openPTY(t *testing.T, cols int) (tty, master *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	var unlock int32
	var n uint32
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); e != 0 {
			t.Fatalf("ioctl %#x: %v", req, e)
		}
	}
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := struct{ rows, cols, x, y uint16 }{24, uint16(cols), 0, 0}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, s.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); e != 0 {
		t.Fatal(e)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return s, m
}

// TestProgressOnTerminal draws the progress of a two-file upload on an
// 80-column pseudo-terminal: every redraw starts at the line's beginning,
// fits in 79 columns (never wraps), carries the rate and an ETA once the
// rate is known, and the line is cleared at the end.
func TestProgressOnTerminal(t *testing.T) {
	for _, cols := range []int{80, 120} {
		tty, master := openPTY(t, cols)
		var screen bytes.Buffer
		done := make(chan struct{})
		go func() { io.Copy(&screen, master); close(done) }()

		clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		const mib = 1 << 20
		p := newProgress(tty, 300*mib, 2)
		if !p.enabled {
			t.Fatal("progress is off on a terminal")
		}
		p.now = func() time.Time { return clock }
		p.file("NA12878.with-a-very-long-name.final.recalibrated.bam", 100*mib)
		for done := int64(0); done <= 100*mib; done += 10 * mib {
			p.update("upload", done, 100*mib)
			clock = clock.Add(time.Second) // 10 MiB/s
		}
		p.finish()
		p.file("b.cram", 200*mib)
		p.update("upload", 0, 200*mib)
		clock = clock.Add(2 * time.Second)
		p.update("upload", 20*mib, 200*mib)
		p.finish()
		tty.Close()
		master.SetReadDeadline(time.Now().Add(2 * time.Second))
		<-done

		out := screen.String()
		draws := strings.Split(out, "\r\033[K")
		var lines []string
		for _, d := range draws {
			if d != "" {
				lines = append(lines, d)
			}
		}
		if len(lines) < 5 {
			t.Fatalf("%d columns: %d lines drawn: %q", cols, len(lines), out)
		}
		sawETA := false
		for _, l := range lines {
			if w := utf8.RuneCountInString(l); w > cols-1 || strings.ContainsAny(l, "\r\n") {
				t.Errorf("%d columns: a line of %d columns: %q", cols, w, l)
			}
			if strings.Contains(l, "ETA ") {
				sawETA = true
			}
		}
		if !sawETA {
			t.Errorf("%d columns: no ETA: %q", cols, lines)
		}
		// 10 MiB/s with 100 + 20 of 300 MiB sent: 180 MiB left.
		last := lines[len(lines)-1]
		if !strings.Contains(last, "10.0 MiB/s ETA 18s") || !strings.Contains(last, "file 2/2") {
			t.Errorf("%d columns: last line %q", cols, last)
		}
		if !strings.HasSuffix(out, "\r\033[K") {
			t.Errorf("%d columns: the line is not cleared at the end: %q", cols, out[max(0, len(out)-40):])
		}
		t.Logf("%d columns: %q", cols, lines[len(lines)-2])
	}
}

func TestFormatETA(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45s", 725 * time.Second: "12m05s", 3*time.Hour + 20*time.Minute: "3h20m",
	} {
		if got := formatETA(d); got != want {
			t.Errorf("formatETA(%v) = %q, want %q", d, got, want)
		}
	}
}
