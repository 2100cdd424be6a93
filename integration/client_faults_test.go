package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Faults of the CLI's local side, through the real CLI and stack: what
// -o may name, a source that changes while it is uploaded, and how much a
// fetch keeps when it is stopped.

// lastLine is the last line a command wrote to stderr.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// stoppedWhen starts cmd, waits until ready holds and stops it (SIGSTOP),
// so the test can act while the CLI is mid-transfer; it fails the test if
// the command ends first. cont resumes it; wait returns its exit.
func stoppedWhen(t *testing.T, cmd *exec.Cmd, ready func() bool) (cont func(), wait func() error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	started := time.Now()
	for !ready() {
		select {
		case err := <-waited:
			t.Fatalf("%s ended before the test could stop it: %v", cmd.Args[1], err)
		default:
		}
		if time.Since(started) > 2*time.Minute {
			cmd.Process.Kill()
			t.Fatalf("%s made no progress", cmd.Args[1])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return func() { cmd.Process.Signal(syscall.SIGCONT) }, func() error { return <-waited }
}

func sizeAtLeast(path string, n int64) func() bool {
	return func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() >= n
	}
}

// TestCLIFetchOutputTargets: -o names a directory (the file goes in it), a
// character device or a FIFO (written through; the device stays a device),
// /dev/stdout (standard output); a socket or a directory at DIR/NAME is
// refused before anything is fetched, leaving nothing behind.
func TestCLIFetchOutputTargets(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "output targets", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "reads.fq")
	want := writeRandomFile(t, src, 81, 3*mib+123, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	ref := ds + "/reads.fq"
	isCharDev := func(path string) bool {
		fi, err := os.Lstat(path)
		return err == nil && fi.Mode().Type() == fs.ModeDevice|fs.ModeCharDevice
	}

	// /dev/stdout, as the "already exists" hint once suggested with --force.
	for _, args := range [][]string{{"-o", "/dev/stdout"}, {"-o", "/dev/stdout", "--force"}} {
		out, errOut, err := sam.dozo(append([]string{"fetch", ref}, args...)...)
		if err != nil {
			t.Fatalf("fetch %v: %v: %s", args, err, errOut)
		}
		if sum := sha256.Sum256([]byte(out)); hex.EncodeToString(sum[:]) != want {
			t.Fatalf("fetch %v: standard output got %d bytes, not the file", args, len(out))
		}
		if fi, err := os.Lstat("/dev/stdout"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
			t.Fatalf("/dev/stdout was replaced: %v", err)
		}
	}
	// /dev/null, with and without --force.
	sam.must(t, "fetch", ref, "-o", "/dev/null")
	sam.must(t, "fetch", ref, "-o", "/dev/null", "--force")
	if !isCharDev("/dev/null") {
		t.Fatal("/dev/null is no longer a character device")
	}
	// A character device made with mknod (like /dev/null).
	devDir := t.TempDir()
	dev := filepath.Join(devDir, "null")
	var st syscall.Stat_t
	if err := syscall.Stat("/dev/null", &st); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, int(st.Rdev)); err != nil {
		if os.Getenv("CI") == "" {
			t.Logf("mknod not permitted, device case skipped: %v", err)
		} else {
			t.Fatalf("mknod: %v", err)
		}
	} else {
		sam.must(t, "fetch", ref, "-o", dev, "--force")
		if !isCharDev(dev) {
			t.Fatal("the mknod'ed device was replaced")
		}
		if ents, _ := os.ReadDir(devDir); len(ents) != 1 {
			t.Errorf("files left beside the device: %d", len(ents))
		}
	}
	// A FIFO with a reader.
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- err.Error()
			return
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		got <- hex.EncodeToString(h.Sum(nil))
	}()
	sam.must(t, "fetch", ref, "-o", fifo)
	if sum := <-got; sum != want {
		t.Fatalf("the FIFO's reader got %s, want %s", sum, want)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Fatal("the FIFO was replaced")
	}

	// -o DIR writes DIR/reads.fq; again with --force replaces it.
	outDir := t.TempDir()
	sam.must(t, "fetch", ref, "-o", outDir)
	sam.must(t, "fetch", ref, "-o", outDir, "--force")
	if fileSHA(t, filepath.Join(outDir, "reads.fq")) != want {
		t.Fatal("-o DIR did not write DIR/reads.fq")
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
		t.Errorf("-o DIR left %d entries", len(ents))
	}
	// Refused up front: a directory at DIR/reads.fq, a socket.
	blocked := t.TempDir()
	os.Mkdir(filepath.Join(blocked, "reads.fq"), 0o755)
	sock := filepath.Join(blocked, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, out := range []string{blocked, sock} {
		started := time.Now()
		line := sam.refused(t, "fetch", ref, "-o", out, "--force")
		t.Logf("-o %s: %s (%s)", out, line, time.Since(started).Round(time.Millisecond))
	}
	if ents, _ := os.ReadDir(filepath.Join(blocked, "reads.fq")); len(ents) != 0 {
		t.Errorf("files left in the directory at DIR/reads.fq: %d", len(ents))
	}
	if ents, _ := os.ReadDir(blocked); len(ents) != 2 {
		t.Errorf("files left beside: %d entries", len(ents))
	}
}

// TestCLIUploadSourceChanges: a file that grows or shrinks while dozo
// uploads it ends the upload with one clear message; the session is
// aborted and its pieces deleted at once, and a rerun starts afresh. A
// /proc file is refused before a session begins.
func TestCLIUploadSourceChanges(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	dir := t.TempDir()
	var ds string
	for _, c := range []struct {
		name   string
		change func(path string) error
	}{
		{"grows", func(path string) error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(make([]byte, 11*mib))
			return err
		}},
		{"shrinks", func(path string) error { return os.Truncate(path, 12*mib) }},
	} {
		ds = newDatasetID()
		sam.must(t, "dataset", "create", ds, "--title", "changing source", "--segment-size", "1MiB")
		src := filepath.Join(dir, c.name+".fq")
		writeRandomFile(t, src, 91, 48*mib, nil)
		cmd := sam.command("upload", "--dataset", ds, src)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		cont, wait := stoppedWhen(t, cmd, func() bool { return len(s.pieceStates(t, ds)) >= 2*6 })
		if err := c.change(src); err != nil {
			t.Fatal(err)
		}
		cont()
		if err := wait(); err == nil {
			t.Fatalf("%s: the upload succeeded", c.name)
		}
		line := lastLine(stderr.String())
		if !strings.HasPrefix(line, "dozo: ") || !strings.Contains(line, "the file changed while it was being uploaded") || strings.Contains(line, "resume") {
			t.Fatalf("%s: %q", c.name, stderr.String())
		}
		t.Logf("%s: %s", c.name, line)
		if left := s.pieceStates(t, ds); len(left) != 0 {
			t.Fatalf("%s: %d pieces left on storage after the failure", c.name, len(left))
		}
		if f, ok := lsFiles(t, sam, ds)[c.name+".fq"]; ok {
			t.Fatalf("%s: listed after the failure: %+v", c.name, f)
		}
		// The rerun is a fresh upload of the file as it is now.
		var up []struct {
			SHA256  string
			Resumed bool
		}
		if err := json.Unmarshal([]byte(sam.must(t, "upload", "--dataset", ds, src, "--json")), &up); err != nil {
			t.Fatal(err)
		}
		if len(up) != 1 || up[0].Resumed || up[0].SHA256 != fileSHA(t, src) {
			t.Fatalf("%s: rerun %+v", c.name, up)
		}
	}
	line := sam.refused(t, "upload", "--dataset", ds, "/proc/self/status")
	if !strings.Contains(line, "proc") {
		t.Errorf("/proc/self/status: %s", line)
	}
	t.Logf("/proc/self/status: %s", line)
}

// TestCLIFetchKeepsProgress: a fetch killed (SIGKILL) after some segments
// resumes from its last verified segment, not from 0; interrupting fetches
// that cannot resume (-o -, --raw, --range) does not promise a resume.
func TestCLIFetchKeepsProgress(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "fetch progress", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "big.bam")
	const size = 96 * mib
	want := writeRandomFile(t, src, 101, size, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	ref := ds + "/big.bam"

	out := filepath.Join(dir, "back.bam")
	cmd := sam.command("fetch", ref, "-o", out)
	_, wait := stoppedWhen(t, cmd, sizeAtLeast(out+".partial", 8*mib))
	kept, _ := os.Stat(out + ".partial")
	cmd.Process.Kill()
	wait()
	var res struct {
		From     int64 `json:"from"`
		Written  int64 `json:"written_bytes"`
		Resumed  bool  `json:"resumed"`
		Verified bool  `json:"checksums_verified"`
	}
	if err := json.Unmarshal([]byte(sam.must(t, "fetch", ref, "-o", out, "--json")), &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d bytes in the partial file; the rerun resumed at %d and fetched %d", kept.Size(), res.From, res.Written)
	if !res.Resumed || res.From < 4*mib || res.From%mib != 0 || res.Written != size-res.From || !res.Verified {
		t.Fatalf("rerun %+v: want a verified resume from a segment boundary past 4 MiB", res)
	}
	if fileSHA(t, out) != want {
		t.Fatal("resumed fetch differs")
	}

	// Interrupted (SIGINT) fetches that cannot resume say so.
	for _, c := range []struct {
		name string
		args []string
		file string // grows while it runs
	}{
		{"stdout", []string{"-o", "-"}, filepath.Join(dir, "stdout")},
		{"raw", []string{"--raw", "-o", filepath.Join(dir, "raw.age")}, filepath.Join(dir, "raw.age.partial")},
		{"range", []string{"--range", "0-80000000", "-o", filepath.Join(dir, "range")}, filepath.Join(dir, "range.partial")},
	} {
		cmd := sam.command(append([]string{"fetch", ref}, c.args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if c.name == "stdout" {
			f, err := os.Create(c.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd.Stdout = f
		}
		cont, wait := stoppedWhen(t, cmd, sizeAtLeast(c.file, 4*mib))
		cmd.Process.Signal(syscall.SIGINT)
		cont()
		if err := wait(); err == nil {
			t.Logf("%s: finished before the interrupt took effect; nothing to check", c.name)
			continue
		}
		line := lastLine(stderr.String())
		if !strings.Contains(line, "interrupted") || strings.Contains(line, "resume") {
			t.Errorf("%s: %q", c.name, line)
		}
		t.Logf("%s: %s", c.name, line)
	}
	// A full fetch interrupted the same way promises the resume it does.
	out2 := filepath.Join(dir, "again.bam")
	cmd = sam.command("fetch", ref, "-o", out2)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cont, wait := stoppedWhen(t, cmd, sizeAtLeast(out2+".partial", 8*mib))
	cmd.Process.Signal(syscall.SIGINT)
	cont()
	if err := wait(); err != nil {
		if line := lastLine(stderr.String()); !strings.Contains(line, "to resume") {
			t.Errorf("full fetch: %q", line)
		}
	}
}
