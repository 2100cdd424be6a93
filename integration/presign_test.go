package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// presignExpiry is the URL lifetime these tests run dozod with: the
// shortest dozod accepts, so a fetch outlasts it several times over in
// well under a minute.
const presignExpiry = 10 * time.Second

// restartDozod stops the stack's dozods and starts them again with extra
// DOZOD_* environment overrides; when the test ends dozod is restarted
// as it was. Integration tests do not run in parallel, so no other test
// sees the changed dozod.
func (s *stack) restartDozod(t *testing.T, env ...string) {
	t.Helper()
	up := func(env []string) error {
		out, err := os.CreateTemp("", "dozo-it-script-")
		if err != nil {
			return err
		}
		defer os.Remove(out.Name())
		defer out.Close()
		cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "dev.sh"), "up")
		cmd.Env = append(append(os.Environ(), "DOZO_DEV_DIR="+s.devDir, "DOZO_STACK_DIR="+filepath.Join(s.devDir, "stack"),
			"DOZOD_BIN="+filepath.Join(s.bin, "dozod")), env...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(out.Name())
			return fmt.Errorf("dev.sh up %v: %v: %s", env, err, strings.TrimSpace(string(b)))
		}
		return nil
	}
	stop := func() { s.endDozods(t, syscall.SIGTERM) }
	stop()
	if err := up(env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if err := up(nil); err != nil {
			t.Errorf("restoring dozod: %v", err)
		}
	})
}

// slowFetch is `dozo fetch -o -` read through a pipe at rate bytes per
// second, as by a slow consumer: the client can run only that far ahead
// of it, so the fetch lasts about size/rate.
type slowFetch struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	rate   float64

	mu    sync.Mutex
	n     int64 // bytes read so far
	sha   []byte
	read  chan struct{}
	ended time.Time // when stdout closed
}

func startSlowFetch(t *testing.T, u *user, rate float64, args ...string) *slowFetch {
	t.Helper()
	f := &slowFetch{cmd: u.command(append([]string{"fetch"}, args...)...), rate: rate, read: make(chan struct{})}
	f.cmd.Stderr = &f.stderr
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(f.read)
		h := sha256.New()
		buf := make([]byte, 64<<10)
		start := time.Now()
		for {
			k, err := out.Read(buf)
			h.Write(buf[:k])
			f.mu.Lock()
			f.n += int64(k)
			n := f.n
			f.mu.Unlock()
			if err != nil {
				break
			}
			time.Sleep(time.Until(start.Add(time.Duration(float64(n) / f.rate * float64(time.Second)))))
		}
		f.mu.Lock()
		f.sha, f.ended = h.Sum(nil), time.Now()
		f.mu.Unlock()
	}()
	return f
}

func (f *slowFetch) bytesRead() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// wait waits for the process and returns its error and when it exited.
func (f *slowFetch) wait() (time.Time, error) {
	<-f.read
	err := f.cmd.Wait()
	return time.Now(), err
}

// presignBatches counts dozod's log lines of fetch batch presigns of file
// id that succeeded.
func presignBatches(t *testing.T, s *stack, id string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(s.dozodLog(t), "\n") {
		if strings.Contains(line, `"action":"fetch.presign-batch"`) && strings.Contains(line, `"object":"file/`+id+`"`) &&
			strings.Contains(line, `"status":200`) {
			n++
		}
	}
	return n
}

// presignFixture is a dataset of 1 MiB segments holding one file of size
// bytes that researcher rita may read.
func presignFixture(t *testing.T, s *stack, size int64) (sam, rita *user, ds, name, sha, id string) {
	t.Helper()
	sam, rita = s.users(t)
	ds = newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "presign expiry test", "--segment-size", "1MiB")
	name = "slow.bam"
	src := filepath.Join(t.TempDir(), name)
	sha = writeRandomFile(t, src, 31, size, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	until := time.Now().AddDate(0, 0, 30).Format("2006-01-02")
	sam.must(t, "grant", ds, rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
	id = lsFiles(t, sam, ds)[name].ID
	return
}

// TestFetchOutlivesPresignedURLs: with URLs valid 10 s, a fetch that a
// slow reader stretches over several lifetimes completes byte-identical,
// the client presigning again as its URLs near expiry.
func TestFetchOutlivesPresignedURLs(t *testing.T) {
	s := needStack(t)
	s.restartDozod(t, "DOZOD_PRESIGN_EXPIRY="+presignExpiry.String())
	_, rita, ds, name, want, id := presignFixture(t, s, 40*mib+321)

	const rate = 1 * mib // bytes/s: ~40 s, pieces fetched over ~28 s
	began := time.Now()
	f := startSlowFetch(t, rita, rate, ds+"/"+name, "-o", "-")
	_, err := f.wait()
	took := time.Since(began)
	if err != nil {
		t.Fatalf("slow fetch failed after %v: %v: %s", took, err, f.stderr.String())
	}
	if got := hex.EncodeToString(f.sha); got != want || f.bytesRead() != 40*mib+321 {
		t.Fatalf("fetched %d bytes, sha %s; want %d bytes, sha %s", f.bytesRead(), got, 40*mib+321, want)
	}
	if took < 2*presignExpiry {
		t.Fatalf("the fetch took %v, not longer than two URL lifetimes (%v): nothing proven", took, 2*presignExpiry)
	}
	// 40 segments are three windows of 16, the first presigned with the
	// fetch call; more batches are re-presigns.
	if n := presignBatches(t, s, id); n <= 2 {
		t.Errorf("%d batch presigns for a fetch of %v: URLs were not presigned again as they expired", n, took)
	}
	t.Logf("fetch took %v with %v URLs, %d batch presigns", took.Round(time.Second), presignExpiry, presignBatches(t, s, id))
}

// TestRevokeStopsRunningFetch: a researcher whose grant is revoked (or
// whose dataset an admin freezes) while a fetch runs is stopped within one
// URL lifetime (plus the time to drain what was already fetched and
// verified), with one error line that names the revocation or freeze, not
// a report of damaged storage; the bytes delivered after it are bounded by
// the same time.
func TestRevokeStopsRunningFetch(t *testing.T) {
	s := needStack(t)
	s.restartDozod(t, "DOZOD_PRESIGN_EXPIRY="+presignExpiry.String())
	admin := s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, sam, rita *user, ds string)
		word string // the error line must contain it
	}{
		{"revoke", func(t *testing.T, sam, rita *user, ds string) {
			sam.must(t, "revoke", ds, rita.name, "--reason", "application withdrawn")
		}, "revoked"},
		{"dataset freeze", func(t *testing.T, _, _ *user, ds string) {
			admin.must(t, "admin", "freeze", "--dataset", ds, "--reason", "suspected leak")
			t.Cleanup(func() { admin.dozo("admin", "unfreeze", "--dataset", ds, "--reason", "test over") })
		}, "frozen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size = 40*mib + 321
			sam, rita, ds, name, _, _ := presignFixture(t, s, size)

			const rate = 1 * mib
			f := startSlowFetch(t, rita, rate, ds+"/"+name, "-o", "-")
			for f.bytesRead() < 4*mib {
				select {
				case <-f.read:
					t.Fatalf("the fetch ended early: %s", f.stderr.String())
				case <-time.After(50 * time.Millisecond):
				}
			}
			tc.stop(t, sam, rita, ds)
			stopped, atStop := time.Now(), f.bytesRead()
			exited, err := f.wait()
			after := f.bytesRead() - atStop

			line := strings.TrimSpace(f.stderr.String())
			if err == nil {
				t.Fatalf("the fetch completed after the %s (%d bytes after it)", tc.name, after)
			}
			if !strings.HasPrefix(line, "dozo: ") || strings.Contains(line, "\n") || !strings.Contains(line, tc.word) ||
				strings.Contains(line, "pieces usable") {
				t.Errorf("error is not one line naming the %s: %q", tc.name, line)
			}
			// Within a URL lifetime of the change no new URL is issued;
			// the client then needs one within a segment's time (1 s at
			// this rate) and exits once the sink has drained the blocks
			// already verified (at most ~12 MiB: 8 pipe blocks, 3
			// segments, age's buffers).
			const buffered = 12 * mib
			drain := time.Duration(float64(buffered) / rate * float64(time.Second))
			bound := presignExpiry + drain + 10*time.Second // generous: a loaded machine
			if took := exited.Sub(stopped); took > bound {
				t.Errorf("the fetch ran on %v after the %s, want at most %v", took.Round(time.Second), tc.name, bound)
			}
			// Bytes fetched after the change: at most what the reader
			// consumed in one lifetime plus what was buffered ahead of it.
			if limit := int64(rate*(presignExpiry+2*time.Second).Seconds()) + buffered + 4*mib; after > limit || f.bytesRead() >= size {
				t.Errorf("%d bytes (%d in all of %d) delivered after the %s, want at most %d", after, f.bytesRead(), size, tc.name, limit)
			}
			t.Logf("stopped %v after the %s, %.1f MiB after it: %s", exited.Sub(stopped).Round(100*time.Millisecond), tc.name, float64(after)/mib, line)
		})
	}
}
