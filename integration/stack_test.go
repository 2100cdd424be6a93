package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// stack is the real local dozo the tests run against: three S3 servers
// (two MinIO, one versitygw: two S3 implementations) and a Vault server
// (scripts/stack.sh) plus dozod over TLS with demo users (scripts/dev.sh),
// started once per test binary.
type stack struct {
	devDir    string // DOZO_DEV_DIR
	dir       string // DOZO_STACK_DIR, inside devDir
	script    string // scripts/stack.sh
	bin       string // where dozo and dozod were built
	env       map[string]string
	endpoints []string
	kinds     []string // the S3 server behind each endpoint: "minio" or "versitygw"
	buckets   []string
	accessKey string
	secretKey string
	vaultAddr string
	rootToken string
	owned     bool   // started by this process, so stopped by it too
	pgDir     string // its PostgreSQL cluster (with replicas), removed with it
}

var (
	theStack   *stack
	stackError error
)

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		replicas, err := replicaMode() // replicamode_test.go
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			os.Exit(2)
		}
		theStack, stackError = startStack()
		if stackError != nil {
			fmt.Fprintln(os.Stderr, "integration: stack unavailable:", stackError)
		} else if replicas > 1 {
			fmt.Fprintf(os.Stderr, "integration: %d dozods on PostgreSQL behind %s, round robin\n", replicas, theStack.env["DOZO_BROKER"])
		}
	} else {
		stackError = fmt.Errorf("-short: integration stack not started")
	}
	code := m.Run()
	if theProxy != nil {
		fmt.Fprintf(os.Stderr, "integration: requests served by each replica: %v\n", theProxy.Served())
		theProxy.Close()
	}
	if theStack != nil && theStack.owned && os.Getenv("DOZO_KEEP_STACK") == "" {
		_ = theStack.dev("down")
		os.RemoveAll(theStack.devDir)
		os.RemoveAll(theStack.pgDir)
	}
	if theStack != nil {
		os.RemoveAll(theStack.bin)
	}
	os.Exit(code)
}

// startStack builds dozo and dozod, then uses the dev stack named by
// DOZO_DEV_DIR when it is already up, and otherwise starts a private one
// in a temporary directory.
func startStack() (*stack, error) {
	root := repoRoot()
	s := &stack{script: filepath.Join(root, "scripts", "stack.sh")}
	var err error
	if s.bin, err = os.MkdirTemp("", "dozo-it-bin-"); err != nil {
		return nil, err
	}
	for _, c := range []string{"dozo", "dozod"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(s.bin, c), "./cmd/"+c)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s: %v: %s", c, err, out)
		}
	}
	if d := os.Getenv("DOZO_DEV_DIR"); d != "" {
		s.devDir = d
		if err := s.dev("status"); err != nil {
			return nil, fmt.Errorf("DOZO_DEV_DIR=%s is not a running dev stack (scripts/dev.sh status): %v", d, err)
		}
	} else {
		if s.devDir, err = os.MkdirTemp("", "dozo-it-"); err != nil {
			return nil, err
		}
		s.owned = true
		// scripts/dev.sh keeps the replicas' PostgreSQL cluster outside
		// the (private) state directory, where the postgres user can
		// reach it; named here so it goes with the stack.
		if os.Getenv("DOZO_DEV_POSTGRES_DIR") == "" {
			s.pgDir = filepath.Join("/var/tmp", "dozo-it-postgres-"+filepath.Base(s.devDir))
			if err := os.Setenv("DOZO_DEV_POSTGRES_DIR", s.pgDir); err != nil {
				return nil, err
			}
		}
		if err := s.dev("up"); err != nil {
			s.dev("down")
			return nil, fmt.Errorf("scripts/dev.sh up: %w", err)
		}
	}
	s.dir = filepath.Join(s.devDir, "stack")
	if err := s.loadEnv(); err != nil {
		return s, err
	}
	if err := s.usePGPassFile(); err != nil { // replicamode_test.go
		return s, err
	}
	return s, s.spreadBrokers()
}

// dev runs scripts/dev.sh; its output goes to a file, not a pipe, so the
// servers it leaves running cannot hold this process up.
func (s *stack) dev(args ...string) error {
	return s.runScript(filepath.Join(repoRoot(), "scripts", "dev.sh"), args...)
}

func (s *stack) run(args ...string) error { return s.runScript(s.script, args...) }

func (s *stack) runScript(script string, args ...string) error {
	out, err := os.CreateTemp("", "dozo-it-script-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(script, args...)
	cmd.Env = append(os.Environ(), "DOZO_DEV_DIR="+s.devDir, "DOZO_STACK_DIR="+filepath.Join(s.devDir, "stack"),
		"DOZOD_BIN="+filepath.Join(s.bin, "dozod"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s %v: %v: %s", filepath.Base(script), args, err, strings.TrimSpace(string(b)))
	}
	return nil
}

func (s *stack) loadEnv() error {
	f, err := os.Open(filepath.Join(s.devDir, "env"))
	if err != nil {
		return err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			env[k] = strings.Trim(v, "'\"")
		}
	}
	s.env = env
	s.endpoints = strings.Split(env["DOZO_DEV_S3_ENDPOINTS"], ",")
	s.buckets = strings.Split(env["DOZO_DEV_S3_BUCKETS"], ",")
	s.kinds = strings.Split(env["DOZO_DEV_S3_KINDS"], ",")
	if env["DOZO_DEV_S3_KINDS"] == "" { // written by a stack.sh that ran MinIO only
		s.kinds = slices.Repeat([]string{"minio"}, len(s.endpoints))
	}
	if len(s.kinds) != len(s.endpoints) {
		return fmt.Errorf("env file %s: DOZO_DEV_S3_KINDS does not name the server of each of the %d endpoints", f.Name(), len(s.endpoints))
	}
	s.accessKey, s.secretKey = env["DOZO_DEV_S3_ACCESS_KEY"], env["DOZO_DEV_S3_SECRET_KEY"]
	s.vaultAddr, s.rootToken = env["VAULT_ADDR"], env["VAULT_TOKEN"]
	if len(s.endpoints) != 3 || s.accessKey == "" || s.vaultAddr == "" || s.rootToken == "" || env["DOZO_BROKER"] == "" {
		return fmt.Errorf("incomplete env file %s", f.Name())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if theProxy != nil { // read again: the tests keep talking to the proxy
		return s.spreadBrokers()
	}
	return nil
}

// needStack returns the stack or ends the test: under CI=true a missing
// stack is a failure, never a skip.
func needStack(t testing.TB) *stack {
	t.Helper()
	if theStack != nil {
		return theStack
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("integration stack unavailable under CI=true: %v", stackError)
	}
	t.Skipf("integration stack unavailable: %v", stackError)
	return nil
}

// targets returns the six S3 targets of the local stack: two buckets on
// each of three servers, each server its own failure domain; target i
// is bucket i%2 on server i/2+1.
func (s *stack) targets(t testing.TB) []storage.Target {
	t.Helper()
	var ts []storage.Target
	for i, ep := range s.endpoints {
		for _, b := range s.buckets {
			tg, err := storage.NewS3Target(storage.S3Config{
				ID:        fmt.Sprintf("s%d-%s", i+1, strings.TrimPrefix(b, "dozo-")),
				Domain:    fmt.Sprintf("server%d", i+1),
				Endpoint:  "http://" + ep, // DOZO_DEV_S3_ENDPOINTS lists host:port
				AccessKey: s.accessKey,
				SecretKey: s.secretKey,
				Bucket:    b,
			})
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, tg)
		}
	}
	return ts
}

func (s *stack) vault(t testing.TB) *vault.Client {
	t.Helper()
	c, err := vault.New(vault.Config{Address: s.vaultAddr, Token: s.rootToken})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// minioServers returns the (1-based) numbers of the S3 servers that are
// MinIO, for tests that use what only MinIO has: its metrics, its admin
// credentials' Prometheus token, its on-disk layout.
func (s *stack) minioServers() []int {
	var out []int
	for i, k := range s.kinds {
		if k == "minio" {
			out = append(out, i+1)
		}
	}
	return out
}

// hostPort returns server n's (1-based) endpoint as host:port.
func (s *stack) hostPort(n int) string {
	ep := s.endpoints[n-1]
	if _, rest, ok := strings.Cut(ep, "://"); ok {
		ep = rest
	}
	return strings.TrimSuffix(ep, "/")
}

// stopMinio stops S3 server n (1-based; MinIO or versitygw) until the
// returned func restarts it (at the latest when the test ends).
// Integration tests do not run in parallel, so no other test sees the
// server down.
func (s *stack) stopMinio(t testing.TB, n int) (restart func()) {
	t.Helper()
	if err := s.run("stop-minio", fmt.Sprint(n)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restart = func() {
		once.Do(func() {
			if err := s.run("start-minio", fmt.Sprint(n)); err != nil {
				t.Errorf("restarting minio%d: %v", n, err)
			}
		})
	}
	t.Cleanup(restart)
	return restart
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// brokerHTTP is an HTTP client that trusts only the dev stack's CA.
func (s *stack) brokerHTTP(t testing.TB) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.env["DOZO_CA_CERT"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in DOZO_CA_CERT")
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
