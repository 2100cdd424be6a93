package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The local stack's scripts (scripts/stack.sh, scripts/dev.sh) under the
// faults they meet on a developer's machine.

// TestStackTwoS3Implementations: the stack's three failure domains are
// served by two S3 implementations (MinIO and versitygw), so every test
// here runs against both; each server says which it is.
func TestStackTwoS3Implementations(t *testing.T) {
	s := needStack(t)
	var servers []string
	for n := 1; n <= len(s.endpoints); n++ {
		resp, err := http.Get("http://" + s.hostPort(n) + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		servers = append(servers, resp.Header.Get("Server"))
		want := map[string]string{"minio": "MinIO", "versitygw": "VERSITYGW"}[s.kinds[n-1]]
		if !strings.EqualFold(servers[n-1], want) {
			t.Fatalf("server %d is %q, the env file says %s", n, servers[n-1], s.kinds[n-1])
		}
	}
	if !slices.Contains(servers, "MinIO") || !slices.Contains(servers, "VERSITYGW") {
		t.Fatalf("the S3 servers are %v: want both MinIO and versitygw", servers)
	}
}

// TestStackPortFileNotBindable: a port recorded by an earlier run that
// can no longer be bound (here held the way an outgoing connection holds
// its local port: bound, not listening) is not reused; stack.sh picks a
// new one, below the kernel's ephemeral port range, and the server starts.
func TestStackPortFileNotBindable(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a MinIO server")
	}
	dir := filepath.Join(t.TempDir(), "stack")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	held := sa.(*syscall.SockaddrInet4).Port
	portFile := filepath.Join(dir, "minio1.port")
	if err := os.WriteFile(portFile, []byte(fmt.Sprintln(held)), 0o600); err != nil {
		t.Fatal(err)
	}
	stackScript := func(args ...string) error {
		cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "stack.sh"), args...)
		cmd.Env = append(os.Environ(), "DOZO_STACK_DIR="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("stack.sh %v: %v: %s", args, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	t.Cleanup(func() { stackScript("stop-minio", "1") })
	if err := stackScript("start-minio", "1"); err != nil {
		t.Fatalf("with port %d held: %v", held, err)
	}
	b, err := os.ReadFile(portFile)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if port == held {
		t.Fatalf("port %d reused although it cannot be bound", held)
	}
	low := 32768
	if r, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(r), &low)
	}
	if port < 10000 || port >= low {
		t.Fatalf("port %d picked, want one in 10000-%d (below the ephemeral range)", port, low-1)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/minio/health/live", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("MinIO on port %d: %s", port, resp.Status)
	}
}

// TestStackServerSlowToStart: a server whose process is slow to start
// after stack.sh forked it (here held before it runs: its log is a FIFO
// nobody reads yet, so the forked shell blocks opening it, as a child the
// scheduler has not run yet on a loaded machine) is waited for, not taken
// for one that exited; once it runs, start-s3 succeeds.
func TestStackServerSlowToStart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a versitygw server")
	}
	dir := filepath.Join(t.TempDir(), "stack")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	logFIFO := filepath.Join(dir, "versitygw3.log")
	if err := syscall.Mkfifo(logFIFO, 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(repoRoot(), "scripts", "stack.sh")
	env := append(os.Environ(), "DOZO_STACK_DIR="+dir)
	t.Cleanup(func() {
		cmd := exec.Command(script, "stop-s3", "3")
		cmd.Env = env
		cmd.Run()
	})
	cmd := exec.Command(script, "start-s3", "3")
	cmd.Env = env
	// Its own process group, so that a stack.sh left waiting is ended
	// with everything it started in the foreground.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	// Long enough for stack.sh to look at the server a few times.
	select {
	case err := <-exited:
		t.Fatalf("stack.sh ended while versitygw3 had not run yet: %v: %s", err, out.String())
	case <-time.After(3 * time.Second):
	}
	if strings.Contains(out.String(), "exited") {
		t.Fatalf("stack.sh took versitygw3 for exited while it had not run yet: %s", out.String())
	}
	// Let it run: open the log for reading, and keep reading it.
	r, err := os.Open(logFIFO)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(io.Discard, r)
		r.Close()
	}()
	if err := <-exited; err != nil {
		t.Fatalf("start-s3 3: %v: %s", err, out.String())
	}
	exited <- nil // for the cleanup
	if !strings.Contains(out.String(), "versitygw3 up") {
		t.Fatalf("start-s3 3 said: %s", out.String())
	}
}

// TestStackVaultRestart: Vault keeps its Transit keys across restarts. A
// file uploaded before still fetches after the whole storage + key stack
// was stopped and `dev.sh up` (make up) started it again, which must not
// move the catalog aside; and again after Vault alone was stopped and
// started (stack.sh stop-vault, start-vault) under a running dozod.
func TestStackVaultRestart(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "vault restart", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "kept.vcf")
	sha := writeRandomFile(t, src, 91, 2*mib+17, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	fetch := func(when string) {
		t.Helper()
		out := filepath.Join(dir, "fetched-"+when)
		sam.must(t, "fetch", ds+"/kept.vcf", "-o", out)
		if got := fileSHA(t, out); got != sha {
			t.Fatalf("fetched %s with sha %s, want %s", when, got, sha)
		}
	}
	fetch("before")

	if err := s.run("down"); err != nil {
		t.Fatal(err)
	}
	if err := s.dev("up"); err != nil {
		t.Fatal(err)
	}
	if stale, _ := filepath.Glob(filepath.Join(s.devDir, "dozo.db.stale-*")); len(stale) > 0 {
		t.Fatalf("dev.sh up after a stack restart moved the catalog aside: %v", stale)
	}
	if err := s.loadEnv(); err != nil {
		t.Fatal(err)
	}
	fetch("after-stack-restart")

	if err := s.run("stop-vault"); err != nil {
		t.Fatal(err)
	}
	if err := s.run("start-vault"); err != nil {
		t.Fatal(err)
	}
	fetch("after-vault-restart")
}
