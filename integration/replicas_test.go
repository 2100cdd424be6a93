package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/dozo-vault/dozo/audit"
)

// TestReplicasShareOneChain runs two dozods on one PostgreSQL catalog (a
// private cluster, scripts/postgres.sh) beside the stack's own dozod, with
// the stack's Vault and storage, and sends requests to them in turn and
// then at once: every request is in one audit chain that verifies, once,
// and the serial ones in the order they were answered.
func TestReplicasShareOneChain(t *testing.T) {
	s := needStack(t)
	pgURL := privatePostgres(t)
	conf, err := os.ReadFile(filepath.Join(s.devDir, "dozod.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := range 2 {
		urls = append(urls, s.startReplica(t, conf, pgURL, i))
	}
	hc := s.brokerHTTP(t)
	tok := s.adminToken(t)
	whoami := func(u string) string {
		req, _ := http.NewRequest("GET", u+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			return ""
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s/v1/whoami: %d", u, resp.StatusCode)
		}
		return resp.Header.Get("X-Request-Id")
	}
	var serial []string
	for i := range 20 {
		serial = append(serial, whoami(urls[i%2]))
	}
	var mu sync.Mutex
	concurrent := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			id := whoami(urls[i%2])
			mu.Lock()
			concurrent[id] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	req, _ := http.NewRequest("GET", urls[1]+"/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res, err := audit.VerifyExport(bytes.NewReader(exp))
	// The chain holds our requests and the export's own record, no more.
	if resp.StatusCode != 200 || err != nil || !res.OK || res.Records != len(serial)+len(concurrent)+1 {
		t.Fatalf("export (%d) verifies as %+v %v; want %d records", resp.StatusCode, res, err, len(serial)+len(concurrent)+1)
	}
	seqOf := map[string][]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(exp))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Seq       uint64 `json:"seq"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		seqOf[r.RequestID] = append(seqOf[r.RequestID], r.Seq)
	}
	var last uint64
	for i, id := range serial {
		seqs := seqOf[id]
		if len(seqs) != 1 || seqs[0] <= last {
			t.Fatalf("serial request %d (%s, replica %d): records %v after seq %d", i, id, i%2, seqs, last)
		}
		last = seqs[0]
	}
	for id := range concurrent {
		if len(seqOf[id]) != 1 {
			t.Errorf("concurrent request %s has records %v", id, seqOf[id])
		}
	}
	t.Logf("%d records from two replicas verify; the last request's seq is %d", res.Records, last)
}

// privatePostgres starts the private PostgreSQL cluster (the catalog
// tests' one) and returns the URL of a new empty database, dropped at the
// end. It skips the test when PostgreSQL is not installed.
func privatePostgres(t testing.TB) string {
	t.Helper()
	script := filepath.Join(repoRoot(), "scripts", "postgres.sh")
	if out, err := exec.Command(script, "up").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postgres.sh up: %v\n%s", err, out)
		}
		t.Skipf("PostgreSQL unavailable: %v %s", err, out)
	}
	out, err := exec.Command(script, "env").Output()
	if err != nil {
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "DOZO_TEST_POSTGRES_URL=")
	if !ok {
		t.Fatalf("postgres.sh env: %s", out)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	name := "dozo_replicas_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-added first: the replicas (started after this)
	// are stopped before the database is dropped.
	t.Cleanup(func() { admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// replica is a dozod started by startReplicaProc.
type replica struct {
	URL  string
	Proc *os.Process
}

// startReplica starts a dozod with the stack's configuration but its own
// port and catalog pgURL, and returns its base URL once it is healthy.
func (s *stack) startReplica(t testing.TB, conf []byte, pgURL string, i int) string {
	return s.startReplicaProc(t, conf, pgURL, i).URL
}

// startReplicaProc is startReplica returning the process too. The
// PostgreSQL password goes in PGPASSWORD, not in the file.
func (s *stack) startReplicaProc(t testing.TB, conf []byte, pgURL string, i int) *replica {
	t.Helper()
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := regexp.MustCompile(`(?m)^listen = .*$`).ReplaceAllString(string(conf), fmt.Sprintf("listen = %q", addr))
	c = regexp.MustCompile(`(?m)^catalog = .*$`).ReplaceAllString(c, fmt.Sprintf("catalog = %q", u.String()))
	dir := t.TempDir()
	path := filepath.Join(dir, fmt.Sprintf("dozod%d.toml", i))
	if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "dozod.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(s.bin, "dozod"), "serve", "--config", path)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("replica %d log:\n%s", i, b)
		}
	})
	base := "https://" + addr
	hc := s.brokerHTTP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/health", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return &replica{URL: base, Proc: cmd.Process}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replica %d did not become healthy at %s", i, base)
	return nil
}
