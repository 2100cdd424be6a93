package integration

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// msgVaultUnavailable is dozod's one answer while Vault is unavailable.
const msgVaultUnavailable = "Vault is unavailable; try again later"

// dozod's defaults in the dev stack: [vault] timeout 5s, health_interval
// 2s (so Vault is seen down within 5s, and up again within 0.5s of its
// return). The bounds below add room for a loaded machine; the behaviour
// before them was 30s, or never.
const (
	vaultDownSeen  = 15 * time.Second // stop -> /v1/health says down
	vaultCallBound = 12 * time.Second // a request already waiting on Vault -> 503
	vaultBackBound = 90 * time.Second // restart -> ready again
)

// completeHolder is a TLS proxy in front of dozod that holds the first
// upload complete until released, and remembers it for replay.
type completeHolder struct {
	srv     *httptest.Server
	caFile  string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	path    string
	body    []byte
}

func (s *stack) completeHolder(t *testing.T) *completeHolder {
	t.Helper()
	target, err := url.Parse(s.env["DOZO_BROKER"])
	if err != nil {
		t.Fatal(err)
	}
	h := &completeHolder{arrived: make(chan struct{}), release: make(chan struct{})}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: s.brokerHTTP(t).Transport,
	}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/complete") {
			first := false
			h.once.Do(func() {
				first = true
				h.path = r.URL.Path
				h.body, _ = io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(h.body))
				close(h.arrived)
			})
			if first {
				<-h.release
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.releaseNow()
		h.srv.Close()
	})
	h.caFile = filepath.Join(t.TempDir(), "holder-ca.pem")
	if err := os.WriteFile(h.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *completeHolder) releaseNow() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

// brokerTimed sends one request to dozod and returns the status, the error
// body (if any) and how long the answer took.
func (s *stack) brokerTimed(t testing.TB, method, path, token string, body []byte) (int, api.Error, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(method, s.env["DOZO_BROKER"]+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := s.brokerHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	var e api.Error
	if resp.StatusCode/100 != 2 {
		json.Unmarshal(raw, &e)
	}
	return resp.StatusCode, e, took
}

// health reads /v1/health (with ?ready=1 when ready).
func (s *stack) health(t testing.TB, ready bool) (int, api.Health) {
	t.Helper()
	return s.healthOf(t, s.env["DOZO_BROKER"], ready)
}

// healthOf reads /v1/health of the dozod (or proxy) at base.
func (s *stack) healthOf(t testing.TB, base string, ready bool) (int, api.Health) {
	t.Helper()
	path := "/v1/health"
	if ready {
		path += "?ready=1"
	}
	resp, err := s.brokerHTTP(t).Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var h api.Health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("GET %s%s: %d %s", base, path, resp.StatusCode, body)
	}
	return resp.StatusCode, h
}

// waitHealth polls /v1/health of every dozod until ok(h) holds on each or
// the bound passes, and returns how long it took.
func (s *stack) waitHealth(t testing.TB, what string, bound time.Duration, ok func(api.Health) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for _, base := range s.brokerURLs() {
		for {
			_, h := s.healthOf(t, base, false)
			if ok(h) {
				break
			}
			if time.Since(start) > bound {
				t.Fatalf("%s: not within %v; %s/v1/health: %+v vault %+v catalog %+v", what, bound, base, h, h.Vault, h.Catalog)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// stopVaultProcess pauses (SIGSTOP) the stack's Vault, which then accepts
// connections and never answers, until the returned func resumes it (at
// the latest when the test ends).
func (s *stack) stopVaultProcess(t *testing.T) (resume func()) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "vault.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("vault.pid: %q", b)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(resume)
	// The signal is delivered asynchronously: wait until every thread
	// has stopped (state T), so no request is answered after this returns.
	for i := 0; ; i++ {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command name, which is in parentheses.
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "T") {
			return resume
		}
		if i == 500 {
			t.Fatalf("vault (pid %d) did not stop: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestVaultOutageFailsClosed: with Vault hung (stopped with SIGSTOP) and
// then killed (stack.sh stop-vault), an upload complete, a fetch, a
// dataset create and a whoami with a token dozod looked up a moment
// before all get 503 with the one message, within the bounds the README
// states; /v1/health shows Vault down and the catalog up and readiness
// is refused; once Vault is back everything works, the held upload
// completes.
func TestVaultOutageFailsClosed(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	tok := s.vaultLogin(t, sam.name, sam.password)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "vault outage", "--segment-size", "1MiB")
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept.vcf")
	writeRandomFile(t, kept, 5, mib+3, nil)
	sam.must(t, "upload", "--dataset", ds, kept)

	// An upload whose complete is held at a proxy until Vault is down.
	hold := s.completeHolder(t)
	held := filepath.Join(dir, "held.vcf")
	writeRandomFile(t, held, 6, mib+5, nil)
	cmd := sam.command("upload", "--dataset", ds, held)
	cmd.Env = append(cmd.Env, "DOZO_BROKER="+hold.srv.URL, "DOZO_CA_CERT="+hold.caFile)
	var cliErr bytes.Buffer
	cmd.Stderr = &cliErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cliDone := make(chan error, 1)
	go func() { cliDone <- cmd.Wait() }()
	select {
	case <-hold.arrived:
	case err := <-cliDone:
		t.Fatalf("the upload ended before its complete: %v: %s", err, cliErr.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("no upload complete reached the proxy")
	}

	fetch := []byte(nil)
	create, _ := json.Marshal(api.CreateDatasetRequest{ID: newDatasetID(), Title: "during the outage"})
	refused := func(when, method, path string, body []byte) time.Duration {
		t.Helper()
		code, e, took := s.brokerTimed(t, method, path, tok, body)
		if code != http.StatusServiceUnavailable || e.Error != msgVaultUnavailable {
			t.Errorf("%s: %s %s: %d %q, want 503 %q", when, method, path, code, e.Error, msgVaultUnavailable)
		}
		return took
	}
	outage := func(name string, stop func(), start func()) {
		t.Helper()
		if code, _, _ := s.brokerTimed(t, "GET", "/v1/whoami", tok, nil); code != 200 {
			t.Fatalf("whoami before the outage: %d", code)
		}
		stopped := time.Now()
		stop()
		// A request that reaches Vault before the probe has noticed waits
		// at most dozod's Vault timeout; meanwhile the probe notices.
		fetched := make(chan time.Duration, 1)
		go func() {
			code, e, took := s.brokerTimed(t, "POST", "/v1/datasets/"+ds+"/files/kept.vcf/fetch", tok, fetch)
			if code != http.StatusServiceUnavailable || e.Error != msgVaultUnavailable {
				t.Errorf("%s, at once: fetch: %d %q, want 503 %q", name, code, e.Error, msgVaultUnavailable)
			}
			fetched <- took
		}()
		seen := time.Since(stopped)
		seen += s.waitHealth(t, name+": /v1/health shows Vault down", vaultDownSeen, func(h api.Health) bool {
			return h.Vault != nil && h.Vault.State == "down"
		})
		took := <-fetched
		if took > vaultCallBound {
			t.Errorf("%s: the fetch waited %v for Vault, more than %v", name, took, vaultCallBound)
		}
		t.Logf("%s: /v1/health showed Vault down %v after the stop; a fetch sent at once answered 503 after %v",
			name, seen.Round(time.Millisecond), took.Round(time.Millisecond))
		code, h := s.health(t, true)
		if code != http.StatusServiceUnavailable || h.Ready || h.Status != "unavailable" || h.Catalog == nil || h.Catalog.State != "up" ||
			h.Vault.CheckedAt.IsZero() || h.Targets == nil {
			t.Errorf("%s: readiness %d %+v", name, code, h)
		}
		refused(name, "GET", "/v1/whoami", nil)
		refused(name, "POST", hold.path, hold.body)
		refused(name, "POST", "/v1/datasets/"+ds+"/files/kept.vcf/fetch", fetch)
		refused(name, "POST", "/v1/datasets", create)

		start()
		back := s.waitHealth(t, name+": ready again", vaultBackBound, func(h api.Health) bool { return h.Ready })
		t.Logf("%s: ready %v after Vault was started again", name, back.Round(time.Millisecond))
		if code, _, _ := s.brokerTimed(t, "GET", "/v1/whoami", tok, nil); code != 200 {
			t.Errorf("%s: whoami after Vault is back: %d", name, code)
		}
		if code, e, _ := s.brokerTimed(t, "POST", "/v1/datasets/"+ds+"/files/kept.vcf/fetch", tok, fetch); code != 200 {
			t.Errorf("%s: fetch after Vault is back: %d %s", name, code, e.Error)
		}
	}

	resume := func() {}
	outage("Vault hung", func() { resume = s.stopVaultProcess(t) }, func() { resume() })
	// The held complete goes on now that Vault is back.
	hold.releaseNow()
	if err := <-cliDone; err != nil {
		t.Fatalf("the held upload after Vault came back: %v: %s", err, cliErr.String())
	}
	if f, ok := lsFiles(t, sam, ds)["held.vcf"]; !ok || f.State != api.FileAvailable {
		t.Fatalf("held.vcf after Vault came back: %+v", f)
	}

	outage("Vault killed", func() {
		t.Cleanup(func() { s.run("start-vault") }) // a no-op once it runs
		if err := s.run("stop-vault"); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if err := s.run("start-vault"); err != nil {
			t.Fatal(err)
		}
	})
}
