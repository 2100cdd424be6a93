package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needFUSE ends the test unless FUSE mounts and samtools are available:
// under CI=true their absence is a failure, never a skip.
func needFUSE(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	for _, bin := range []string{"fusermount3", "samtools", "md5sum", "sha256sum"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("mount tests need %s (scripts/tools.sh installs fuse3 and samtools)", strings.Join(missing, ", "))
	}
	t.Skipf("mount tests need %s", strings.Join(missing, ", "))
}

// diskWrites watches every file system holding dirs, with fanotify, for
// writes to files by the processes it is told of.
type diskWrites struct {
	fd   int
	mu   sync.Mutex
	pids map[int32]string
	hits []string
	stop chan struct{}
	done chan struct{}
}

// It needs CAP_SYS_ADMIN; without it, it watches nothing (nil) and the
// per-process write accounting (writeBytes) still applies.
func watchDiskWrites(t testing.TB, dirs ...string) *diskWrites {
	t.Helper()
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_REPORT_FID|unix.FAN_NONBLOCK|unix.FAN_CLOEXEC, unix.O_RDONLY)
	if err != nil {
		t.Logf("fanotify unavailable (%v): checking the mount's own write accounting only", err)
		return nil
	}
	for _, d := range dirs {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_MODIFY, unix.AT_FDCWD, d); err != nil {
			unix.Close(fd)
			t.Fatalf("fanotify mark of %s's file system: %v", d, err)
		}
	}
	w := &diskWrites{fd: fd, pids: map[int32]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.read()
	t.Cleanup(w.close)
	return w
}

func (w *diskWrites) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if err == unix.EAGAIN || n <= 0 {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		for b := buf[:n]; len(b) >= 24; {
			// struct fanotify_event_metadata: event_len u32, vers u8,
			// reserved u8, metadata_len u16, mask u64, fd s32, pid s32.
			l := binary.NativeEndian.Uint32(b[0:4])
			pid := int32(binary.NativeEndian.Uint32(b[20:24]))
			w.mu.Lock()
			if who, ok := w.pids[pid]; ok {
				w.hits = append(w.hits, fmt.Sprintf("%s (pid %d)", who, pid))
			}
			w.mu.Unlock()
			if l < 24 || int(l) > len(b) {
				break
			}
			b = b[l:]
		}
	}
}

// track adds a process whose writes count.
func (w *diskWrites) track(pid int, who string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.pids[int32(pid)] = who
	w.mu.Unlock()
}

// writes returns the writes seen so far by tracked processes, after giving
// pending events time to be read.
func (w *diskWrites) writes() []string {
	if w == nil {
		return nil
	}
	time.Sleep(200 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.hits...)
}

func (w *diskWrites) close() {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	<-w.done
	unix.Close(w.fd)
}

// tool runs a program the watcher tracks and returns its standard output.
func (w *diskWrites) tool(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.track(cmd.Process.Pid, name)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// writeBytes is what process pid has caused to be written to storage so
// far (/proc/PID/io write_bytes: bytes of file pages it dirtied, on any
// disk file system; pipes, sockets and FUSE replies do not count).
func writeBytes(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatalf("per-process I/O accounting: %v", err)
	}
	return parseWriteBytes(t, string(b))
}

func parseWriteBytes(t testing.TB, io string) int64 {
	t.Helper()
	for _, l := range strings.Split(io, "\n") {
		var n int64
		if _, err := fmt.Sscanf(l, "write_bytes: %d", &n); err == nil {
			return n
		}
	}
	t.Fatalf("no write_bytes in %q", io)
	return 0
}

// bigBAM writes a coordinate-sorted, indexed BAM of several MiB to dir
// from a samtools test file (its reads repeated along chromosome 17) and
// returns its path.
func bigBAM(t testing.TB, dir string) string {
	t.Helper()
	src := "/usr/share/samtools/test/mpileup/mpileup.1.bam"
	if _, err := os.Stat(src); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (install samtools-test)", src, err)
		}
		t.Skipf("%s: %v (install samtools-test)", src, err)
	}
	hdr, err := exec.Command("samtools", "view", "-H", src).Output()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := exec.Command("samtools", "view", src).Output()
	if err != nil {
		t.Fatal(err)
	}
	var sam bytes.Buffer
	sam.Write(hdr)
	lines := strings.Split(strings.TrimSpace(string(recs)), "\n")
	for i := range 80 {
		for _, l := range lines {
			f := strings.Split(l, "\t")
			f[0] += fmt.Sprintf("_%d", i)
			for _, c := range []int{3, 7} { // POS, PNEXT
				var p int
				fmt.Sscan(f[c], &p)
				if p > 0 {
					f[c] = fmt.Sprint(p + i*3000)
				}
			}
			sam.WriteString(strings.Join(f, "\t") + "\n")
		}
	}
	out := filepath.Join(dir, "big.bam")
	sort := exec.Command("samtools", "sort", "-l", "1", "-o", out, "-")
	sort.Stdin = &sam
	if b, err := sort.CombinedOutput(); err != nil {
		t.Fatalf("samtools sort: %v\n%s", err, b)
	}
	if b, err := exec.Command("samtools", "index", out).CombinedOutput(); err != nil {
		t.Fatalf("samtools index: %v\n%s", err, b)
	}
	return out
}

// mounted is a running 'dozo mount'.
type mounted struct {
	cmd    *exec.Cmd
	dir    string
	stderr *safeBuffer
	exited chan error
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMount runs 'dozo mount' as u and waits until the tree is up.
func startMount(t testing.TB, u *user, w *diskWrites, dir string, args ...string) *mounted {
	t.Helper()
	cmd := u.command(append([]string{"mount", dir}, args...)...)
	m := &mounted{cmd: cmd, dir: dir, stderr: &safeBuffer{}, exited: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(m.stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if w != nil {
		w.track(cmd.Process.Pid, "dozo mount")
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "unmount with") {
				close(up)
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() { m.exited <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			exec.Command("fusermount3", "-u", "-z", dir).Run()
			cmd.Process.Kill()
		}
	})
	select {
	case <-up:
		return m
	case err := <-m.exited:
		t.Fatalf("dozo mount exited before mounting: %v\n%s", err, m.stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("dozo mount not up after 2 minutes:\n%s", m.stderr.String())
	}
	return nil
}

// wait waits for the mount process to end and checks it exited cleanly
// with the directory unmounted.
func (m *mounted) wait(t testing.TB) {
	t.Helper()
	select {
	case err := <-m.exited:
		if err != nil {
			t.Fatalf("dozo mount: %v\n%s", err, m.stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("dozo mount still running a minute after unmounting:\n%s", m.stderr.String())
	}
	if isMountPoint(t, m.dir) {
		t.Fatalf("%s is still mounted after dozo mount exited", m.dir)
	}
}

func isMountPoint(t testing.TB, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func fieldOne(b []byte) string {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// TestMount: through 'dozo mount', samtools counts and region queries
// (with the index uploaded beside the BAM), md5sum and sha256sum give what
// they give on the original; the dozo mount process writes nothing to any
// disk file system; every open is an audited fetch; Ctrl-C and 'dozo
// umount' unmount cleanly (a busy mount stays until a second Ctrl-C); after a revoke the next open fails with EACCES
// at once and reads of a file already open within a minute.
func TestMount(t *testing.T) {
	needFUSE(t)
	s := needStack(t)
	sam, rita := s.users(t)
	admin := s.admin(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "mount", "--segment-size", "1MiB")
	srcDir := t.TempDir()
	bam := bigBAM(t, srcDir)
	sam.must(t, "upload", "--dataset", ds, bam, bam+".bai")
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format(time.DateOnly),
		"--application", "J-DU000001", "--institution", "NIG")
	fi, err := os.Stat(bam)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 4*mib {
		t.Fatalf("test BAM is %d bytes; want several 1 MiB segments", fi.Size())
	}

	// Watch every disk file system the run could write plaintext to; a
	// tracked process that writes a file must be seen.
	home, _ := os.UserHomeDir()
	w := watchDiskWrites(t, srcDir, os.TempDir(), home, rita.dir, "/")
	probe := filepath.Join(t.TempDir(), "probe")
	acct := w.tool(t, "sh", "-c", "echo plaintext > "+probe+"; cat /proc/$$/io")
	if parseWriteBytes(t, string(acct)) == 0 {
		t.Fatal("write accounting missed a process writing a file in the test's temporary directory")
	}
	if w != nil {
		if len(w.writes()) == 0 {
			t.Fatal("the disk-write watcher missed a tracked process writing a file")
		}
		w.mu.Lock()
		w.hits = nil
		w.mu.Unlock()
	}

	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}

	// First mount: the tree, then Ctrl-C unmounts it.
	m := startMount(t, rita, w, mnt, "--dataset", ds, "--cache-size", "16MiB")
	ents, err := os.ReadDir(filepath.Join(mnt, ds))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "big.bam big.bam.bai" {
		t.Fatalf("%s/%s lists %v, want big.bam big.bam.bai", mnt, ds, names)
	}
	// Ctrl-C while a file is open: the mount stays and says why; a second
	// Ctrl-C once the file is closed unmounts.
	busy, err := os.Open(filepath.Join(mnt, ds, "big.bam.bai"))
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Process.Signal(os.Interrupt)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(m.stderr.String(), "cannot unmount"); {
		if time.Now().After(deadline) {
			t.Fatalf("Ctrl-C with a file open: no word about the busy mount:\n%s", m.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := busy.ReadAt(make([]byte, 16), 0); err != nil {
		t.Fatalf("reading after a refused unmount: %v", err)
	}
	busy.Close()
	m.cmd.Process.Signal(os.Interrupt)
	m.wait(t)

	// --background returns once the mount is up; dozo umount ends it.
	out, errOut, err := rita.dozo("mount", mnt, "--dataset", ds, "--background", "--json")
	if err != nil {
		t.Fatalf("dozo mount --background: %v\n%s", err, errOut)
	}
	var up struct {
		Mounted bool `json:"mounted"`
		PID     int  `json:"pid"`
	}
	if err := json.Unmarshal([]byte(out), &up); err != nil || !up.Mounted || up.PID == 0 {
		t.Fatalf("dozo mount --background --json: %v: %q", err, out)
	}
	w.track(up.PID, "dozo mount --background")
	if !isMountPoint(t, mnt) || !strings.Contains(errOut, fmt.Sprint(up.PID)) {
		t.Fatalf("after dozo mount --background: mounted %v; stderr %q does not name pid %d", isMountPoint(t, mnt), errOut, up.PID)
	}
	if got, want := fieldOne(w.tool(t, "md5sum", filepath.Join(mnt, ds, "big.bam.bai"))), fieldOne(w.tool(t, "md5sum", bam+".bai")); got != want {
		t.Fatalf("md5sum of the index through the background mount %s, original %s", got, want)
	}
	rita.must(t, "umount", mnt)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", up.PID)); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background mount (pid %d) still runs 30 s after dozo umount", up.PID)
		}
	}

	m = startMount(t, rita, w, mnt, "--dataset", ds, "--cache-size", "16MiB")
	path := filepath.Join(mnt, ds, "big.bam")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Size() != fi.Size() || st.Mode() != 0o400 || int(sys.Uid) != os.Getuid() {
		t.Fatalf("%s: size %d mode %v uid %d; want %d, -r--------, %d", path, st.Size(), st.Mode(), sys.Uid, fi.Size(), os.Getuid())
	}
	if err := os.WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Fatal("writing into the mount succeeded")
	}

	fetchesBefore := countFetches(t, admin, ds, rita.name)
	if got, want := w.tool(t, "samtools", "view", "-c", path), w.tool(t, "samtools", "view", "-c", bam); !bytes.Equal(got, want) {
		t.Errorf("samtools view -c through the mount: %q, original %q", got, want)
	}
	const region = "17:30000-40000"
	got, want := w.tool(t, "samtools", "view", path, region), w.tool(t, "samtools", "view", bam, region)
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("samtools view %s through the mount: %d bytes, original %d bytes, equal %v", region, len(got), len(want), bytes.Equal(got, want))
	}
	for _, sum := range []string{"md5sum", "sha256sum"} {
		if got, want := fieldOne(w.tool(t, sum, path)), fieldOne(w.tool(t, sum, bam)); got != want || got == "" {
			t.Errorf("%s through the mount %s, original %s", sum, got, want)
		}
	}
	if n := countFetches(t, admin, ds, rita.name) - fetchesBefore; n < 5 {
		t.Errorf("%d audited fetches for the opens of samtools (x2, the region query opens the BAM and its index), md5sum and sha256sum; want at least 5", n)
	}
	if ws := w.writes(); len(ws) > 0 {
		t.Fatalf("files were written on disk while reading through the mount, by: %v", ws)
	}
	if n := writeBytes(t, m.cmd.Process.Pid); n != 0 {
		t.Fatalf("dozo mount wrote %d bytes to storage while serving reads", n)
	}

	// Revoke: the next open fails at once; reads of an open file within a
	// minute (dozod is asked every 20 s).
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	sam.must(t, "revoke", ds, rita.name, "--reason", "mount test")
	revoked := time.Now()
	// The whole file is cached by now: only the periodic check can stop
	// these reads (a failed open would, too, so none comes first).
	var readErr error
	for off := int64(0); time.Since(revoked) < time.Minute+10*time.Second; off = (off + 3*mib/2) % fi.Size() {
		if _, readErr = f.ReadAt(buf, off); readErr != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if !errors.Is(readErr, fs.ErrPermission) {
		t.Fatalf("reading an open file %v after the revoke: %v, want permission denied", time.Since(revoked).Round(time.Second), readErr)
	}
	t.Logf("reads of the open file failed %v after the revoke", time.Since(revoked).Round(time.Second))
	if _, err := os.Open(path); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("opening after the revoke: %v, want permission denied", err)
	}
	f.Close()

	rita.must(t, "umount", mnt)
	m.wait(t)
	if ws := w.writes(); len(ws) > 0 {
		t.Fatalf("files were written on disk by: %v", ws)
	}
	// With the grant gone the mount does not start.
	if out := rita.refused(t, "mount", mnt, "--dataset", ds); !strings.Contains(out, ds) {
		t.Errorf("mount after the revoke: %q does not name the dataset", out)
	}
}

// countFetches counts user's successful file.fetch records on ds.
func countFetches(t testing.TB, admin *user, ds, name string) int {
	t.Helper()
	n := 0
	for _, r := range auditList(t, admin, "--dataset", ds) {
		if r.Actor == name && r.Action == "file.fetch" && r.Result == "ok" {
			n++
		}
	}
	return n
}
