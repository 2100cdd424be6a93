package integration

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/transfer"
)

// commitBlocker is a TLS proxy in front of dozod that refuses segment
// commits while block is set: pieces reach storage, their segment is
// never committed — as when the client dies between PUT and commit.
type commitBlocker struct {
	srv    *httptest.Server
	caFile string
	block  atomic.Bool
}

func (s *stack) commitBlocker(t *testing.T) *commitBlocker {
	t.Helper()
	target, err := url.Parse(s.env["DOZO_BROKER"])
	if err != nil {
		t.Fatal(err)
	}
	cb := &commitBlocker{}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: s.brokerHTTP(t).Transport,
	}
	cb.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cb.block.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/segments/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"test proxy: commit refused"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(cb.srv.Close)
	cb.caFile = filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(cb.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cb.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cb
}

// dozo runs the CLI as u through the proxy. The client does not retry the
// refused commits (DOZO_BROKER_RETRY=0): a commit that never lands is the
// point here, and retrying it for minutes would only make the test slow.
func (cb *commitBlocker) dozo(u *user, args ...string) (string, string, error) {
	cmd := u.command(args...)
	cmd.Env = append(cmd.Env, "DOZO_BROKER="+cb.srv.URL, "DOZO_CA_CERT="+cb.caFile, "DOZO_BROKER_RETRY=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

type uploadJSON struct {
	SHA256, State string
	Resumed       bool
}

// interruptedUpload uploads src through cb with commits refused, so the
// run fails with pieces of uncommitted segments on storage and their
// hashes in the journal. It returns the pieces' states.
func interruptedUpload(t *testing.T, s *stack, cb *commitBlocker, u *user, ds, src string) map[string]string {
	t.Helper()
	cb.block.Store(true)
	defer cb.block.Store(false)
	if _, errOut, err := cb.dozo(u, "upload", "--dataset", ds, src); err == nil {
		t.Fatal("upload succeeded although every commit was refused")
	} else if _, ok := err.(*exec.ExitError); !ok {
		t.Fatal(err)
	} else {
		t.Logf("first run failed: %s", strings.TrimSpace(errOut))
	}
	before := s.pieceStates(t, ds)
	if len(before) == 0 {
		t.Fatal("no piece reached storage before the commit was refused")
	}
	return before
}

// TestResumeSafety: an upload fails after pieces of a segment were stored
// but before the segment was committed. (1) The file then changes inside
// that segment with size, mtime and inode restored: the rerun must not
// store different ciphertext under the first run's key and chunk
// counters. (2) The journal is replaced by one sealing another key to the
// user's public key: the rerun must start over rather than encrypt with a
// key dozod's session does not hold.
func TestResumeSafety(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	cb := s.commitBlocker(t)

	t.Run("changed uncommitted segment", func(t *testing.T) {
		ds := newDatasetID()
		sam.must(t, "dataset", "create", ds, "--title", "resume safety", "--segment-size", "1MiB")
		src := filepath.Join(t.TempDir(), "reads.fastq")
		writeRandomFile(t, src, 71, 6*mib, nil)
		fi, _ := os.Stat(src)
		ino := fi.Sys().(*syscall.Stat_t).Ino
		before := interruptedUpload(t, s, cb, sam, ds, src)

		// Change a byte of segment 0, in place, and restore the mtime.
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		data[10] ^= 0xff
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(src, fi.ModTime(), fi.ModTime())
		if fi2, _ := os.Stat(src); fi2.Sys().(*syscall.Stat_t).Ino != ino || !fi2.ModTime().Equal(fi.ModTime()) {
			t.Fatal("could not keep the inode and mtime")
		}
		want := fileSHA(t, src)

		out, errOut, err := cb.dozo(sam, "upload", "--dataset", ds, src, "--json")
		if err != nil {
			t.Fatalf("rerun: %v: %s", err, errOut)
		}
		var up []uploadJSON
		if err := json.Unmarshal([]byte(out), &up); err != nil || len(up) != 1 {
			t.Fatalf("rerun output %q: %v", out, err)
		}
		if up[0].Resumed || up[0].SHA256 != want || up[0].State != api.FileAvailable {
			t.Errorf("rerun: %+v, want a fresh, available upload with sha %s", up[0], want)
		}
		after := s.pieceStates(t, ds)
		for k, v := range before {
			if a, ok := after[k]; ok && a != v {
				t.Errorf("%s: rewritten by the rerun under the first run's key and chunk counters", k)
			}
		}
		back := filepath.Join(t.TempDir(), "back.fastq")
		sam.must(t, "fetch", ds+"/reads.fastq", "-o", back)
		if fileSHA(t, back) != want {
			t.Fatal("fetched bytes differ")
		}
	})

	t.Run("planted journal key", func(t *testing.T) {
		ds := newDatasetID()
		sam.must(t, "dataset", "create", ds, "--title", "resume safety", "--segment-size", "1MiB")
		src := filepath.Join(t.TempDir(), "reads.fastq")
		want := writeRandomFile(t, src, 72, 6*mib, nil)
		interruptedUpload(t, s, cb, sam, ds, src)

		journals, _ := filepath.Glob(filepath.Join(sam.dir, "uploads", "*.json"))
		if len(journals) != 1 {
			t.Fatalf("journals: %v", journals)
		}
		j, err := transfer.LoadJournal(journals[0])
		if err != nil || j == nil {
			t.Fatalf("journal: %v", err)
		}
		d, err := client.OpenDir(sam.dir)
		if err != nil {
			t.Fatal(err)
		}
		id, err := d.Identity()
		if err != nil {
			t.Fatal(err)
		}
		if j.SealedKey, err = transfer.SealKey(id.Recipient, bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{8}, 16)); err != nil {
			t.Fatal(err)
		}
		if err := j.Save(); err != nil {
			t.Fatal(err)
		}

		out, errOut, err := cb.dozo(sam, "upload", "--dataset", ds, src, "--json")
		if err != nil {
			t.Fatalf("rerun: %v: %s", err, errOut)
		}
		var up []uploadJSON
		if err := json.Unmarshal([]byte(out), &up); err != nil || len(up) != 1 {
			t.Fatalf("rerun output %q: %v", out, err)
		}
		if up[0].Resumed || up[0].SHA256 != want {
			t.Errorf("rerun resumed with the planted key: %+v", up[0])
		}
		back := filepath.Join(t.TempDir(), "back.fastq")
		if _, errOut, err := sam.dozo("fetch", ds+"/reads.fastq", "-o", back); err != nil {
			t.Fatalf("fetch: %v: %s", err, errOut)
		}
		if fileSHA(t, back) != want {
			t.Fatal("fetched bytes differ")
		}
	})
}

// TestCLIFetchLocalFiles: through the real CLI, a 255-byte name uploads
// and fetches to its own name, and a symbolic link planted at the partial
// file or the lock is refused with one clear line, its target untouched.
func TestCLIFetchLocalFiles(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "local files", "--segment-size", "1MiB")
	name := strings.Repeat("n", 251) + ".bam"
	src := filepath.Join(t.TempDir(), name)
	want := writeRandomFile(t, src, 73, 3*mib+5, nil)
	sam.must(t, "upload", "--dataset", ds, src)

	out := filepath.Join(t.TempDir(), name)
	sam.must(t, "fetch", ds+"/"+name, "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("fetched bytes differ")
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("side files left beside the output: %d entries", len(ents))
	}

	for _, suffix := range []string{".partial", ".partial.lock"} {
		victim := filepath.Join(t.TempDir(), "victim")
		os.WriteFile(victim, []byte("keep me\n"), 0o600)
		old := time.Unix(1e9, 0)
		os.Chtimes(victim, old, old)
		out := filepath.Join(t.TempDir(), "out.bam")
		if err := os.Symlink(victim, out+suffix); err != nil {
			t.Fatal(err)
		}
		line := sam.refused(t, "fetch", ds+"/"+name, "-o", out)
		if !strings.Contains(line, out+suffix) || !strings.Contains(line, "symbolic link") {
			t.Errorf("symlink at %s: unclear refusal: %s", suffix, line)
		}
		got, _ := os.ReadFile(victim)
		fi, _ := os.Stat(victim)
		if string(got) != "keep me\n" || !fi.ModTime().Equal(old) {
			t.Errorf("symlink at %s: the target was written", suffix)
		}
		if _, err := os.Lstat(out); err == nil {
			t.Errorf("symlink at %s: the output appeared", suffix)
		}
	}
}
