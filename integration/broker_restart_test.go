package integration

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// Broker restarts on the real stack: dozod is SIGKILLed in the middle of
// a transfer and started again 3 s later. The CLI waits for it, says so
// once, and the transfer completes as if nothing had happened.

const brokerOutage = "dozod unreachable, retrying"

// outageNotice is the client's notice while every dozod is down: with one
// dozod it is unreachable; with several behind the suite's round-robin
// proxy, the proxy answers 502, as a load balancer would.
func (s *stack) outageNotice() string {
	if s.dozods() > 1 {
		return "dozod unavailable (Bad Gateway), retrying"
	}
	return brokerOutage
}

// killDozod SIGKILLs every dozod of the dev stack, as a crash or an OOM
// kill would, and waits until they are gone. They are started again
// (scripts/dev.sh up) at the latest when the test ends, so later tests
// find them running.
func (s *stack) killDozod(t testing.TB) (restart func()) {
	t.Helper()
	s.endDozods(t, syscall.SIGKILL)
	done := false
	restart = func() {
		if done {
			return
		}
		done = true
		if err := s.dev("up"); err != nil {
			t.Errorf("restarting dozod: %v", err)
		}
	}
	t.Cleanup(restart)
	return restart
}

// runDuringBrokerRestart starts cmd, waits until started() says the
// transfer is under way, pauses it, kills dozod, lets the transfer run on
// against the dead broker for 3 s, restarts dozod and waits for cmd. It
// returns cmd's error and stderr.
func (s *stack) runDuringBrokerRestart(t *testing.T, cmd *exec.Cmd, started func() bool) (error, string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t0 := time.Now()
	for !started() {
		if time.Since(t0) > 2*time.Minute {
			t.Fatal("the transfer made no progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Paused, the client cannot finish before dozod is gone; it resumes
	// with dozod dead, and any request in flight was cut by the kill.
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	restart := s.killDozod(t)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		restart()
		return err, stderr.String()
	case <-time.After(3 * time.Second):
	}
	restart()
	return <-waited, stderr.String()
}

// TestFaultBrokerRestartDuringFetch: dozod dies in the middle of a
// multi-segment fetch and is back 3 s later. The fetch completes
// byte-identical with exit 0, and stderr says once that dozod was
// unreachable; no piece is counted as damaged.
func TestFaultBrokerRestartDuringFetch(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "broker restart during fetch", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "big.bam")
	const size = 96 * mib
	want := writeRandomFile(t, src, 81, size, nil)
	sam.must(t, "upload", "--dataset", ds, src)

	out := filepath.Join(dir, "back.bam")
	cmd := sam.command("fetch", ds+"/big.bam", "-o", out, "--json", "--concurrency", "2")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	var killedAt int64
	err, stderr := s.runDuringBrokerRestart(t, cmd, func() bool {
		fi, err := os.Stat(out + ".partial")
		if err == nil && fi.Size() >= 4*mib {
			killedAt = fi.Size()
			return true
		}
		return false
	})
	if err != nil {
		t.Fatalf("fetch across a broker restart: %v\n%s", err, stderr)
	}
	if killedAt >= size {
		t.Fatal("the fetch finished before dozod was killed; nothing was tested")
	}
	if fileSHA(t, out) != want {
		t.Fatal("fetched bytes differ")
	}
	if n := strings.Count(stderr, s.outageNotice()); n != 1 {
		t.Fatalf("outage notice printed %d times, want once (0: the fetch never needed dozod while it was down):\n%s", n, stderr)
	}
	if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
		t.Fatalf("stderr has %d lines, want only the outage notice:\n%s", lines, stderr)
	}
	t.Logf("fetch across the restart (dozod killed at %d of %d bytes): %s", killedAt, int64(size), strings.TrimSpace(stderr))
	var res struct {
		Verified bool  `json:"checksums_verified"`
		Degraded int64 `json:"segments_degraded"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Degraded != 0 {
		t.Fatalf("fetch report %+v: want checksums verified and no degraded segment", res)
	}
}

// TestFaultBrokerRestartDuringUpload: dozod dies in the middle of an
// upload and is back 3 s later. The upload completes with exit 0, saying
// once that dozod was unreachable, and the file fetches byte-identical.
func TestFaultBrokerRestartDuringUpload(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "broker restart during upload", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "reads.fastq")
	const size = 64 * mib
	want := writeRandomFile(t, src, 82, size, nil)

	cmd := sam.command("upload", "--dataset", ds, src, "--json")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	err, stderr := s.runDuringBrokerRestart(t, cmd, func() bool { return len(s.pieceStates(t, ds)) >= 4*6 })
	if err != nil {
		t.Fatalf("upload across a broker restart: %v\n%s", err, stderr)
	}
	if n := strings.Count(stderr, s.outageNotice()); n != 1 {
		t.Fatalf("outage notice printed %d times, want once:\n%s", n, stderr)
	}
	if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
		t.Fatalf("stderr has %d lines, want only the outage notice:\n%s", lines, stderr)
	}
	var up []struct {
		SHA256, State string
	}
	if err := json.Unmarshal([]byte(stdout.String()), &up); err != nil {
		t.Fatal(err)
	}
	if len(up) != 1 || up[0].SHA256 != want || up[0].State != api.FileAvailable {
		t.Fatalf("upload report %+v, want one available file with sha %s", up, want)
	}
	t.Logf("upload across the restart: %s", strings.TrimSpace(stderr))

	// With a dead broker listed first, the CLI moves on to the live one
	// and says nothing about it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + l.Addr().String()
	l.Close()
	out := filepath.Join(dir, "back.fastq")
	_, errOut, err := sam.dozo("--broker", dead+","+s.env["DOZO_BROKER"], "fetch", ds+"/reads.fastq", "-o", out)
	if err != nil || errOut != "" {
		t.Fatalf("fetch with a dead first broker: %v\n%s", err, errOut)
	}
	if fileSHA(t, out) != want {
		t.Fatal("fetched bytes differ")
	}
}
